"""The Franka Panda as MJCF, generated from the DH table in :mod:`sim.arm.kinematics` (no meshes, no downloads).

Bodies follow the DH frames exactly (``pos = RotX(alpha) (a, 0, d)``, ``quat = RotX(alpha)``, hinge about z),
so the ``flange`` site is the flange of Franka's table. Collision shapes are capsules joining consecutive joint
origins plus a capsule along each joint axis (the motor housing); masses are Franka's published link masses,
inertias follow from the shapes. Joint position servos (kp/kv per joint, torque-limited) act on gravity-
compensated links (``gravcomp`` is in the MJCF, so it is compiled in). The parallel-jaw hand has two slide
fingers coupled by an equality and driven by one position servo on their mean opening.

Collision bits: arm/hand geoms have contype 2, conaffinity 1 (they never touch each other); world geoms
(floor, objects) contype 1, conaffinity 3 (they touch the arm and each other).
"""

from __future__ import annotations

import numpy as np

from sim.arm.kinematics import FINGER_MAX, HAND_YAW, JOINT_NAMES, Q_LOWER, Q_UPPER, TAU_LIMIT, joint_frame_offsets

#: Link masses (kg) of links 1..7 (Franka's published values, rounded) and the hand.
LINK_MASSES = (4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74)
HAND_MASS = 0.73
FINGER_MASS = 0.015
KP = (4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0)
KV = (450.0, 450.0, 350.0, 350.0, 200.0, 200.0, 200.0)
FINGER_KP = 2000.0
FINGER_KV = 30.0
ARM_GEOM = 'contype="2" conaffinity="1"'
WORLD_GEOM = 'contype="1" conaffinity="3"'


def _f(v) -> str:
    return " ".join(f"{x:.10g}" for x in np.ravel(v))


def _quat_from_rot(r: np.ndarray) -> np.ndarray:
    w = np.sqrt(max(1e-12, 1.0 + r[0, 0] + r[1, 1] + r[2, 2])) / 2.0
    return np.array([w, (r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w)])


def _hand(hand_extra: str, ft_sensor: bool) -> str:
    cy, sy = np.cos(HAND_YAW / 2), np.sin(HAND_YAW / 2)
    # the F/T sensor's frame: at the flange, with the flange's axes (the hand body is yawed against them)
    ft = f'<site name="ft_sensor" quat="{_f([cy, 0, 0, -sy])}" size="0.004"/>' if ft_sensor else ""
    finger_range = f"0 {FINGER_MAX}"
    pad = 'type="box" size="0.009 0.005 0.0225" friction="1.5 0.01 0.001" condim="4" rgba="0.2 0.2 0.2 1"'
    return f"""
<body name="hand" quat="{_f([cy, 0, 0, sy])}" gravcomp="1">
  <geom type="box" size="0.02 0.09 0.025" pos="0 0 0.03" mass="{HAND_MASS}" {ARM_GEOM} rgba="0.9 0.9 0.9 1"/>
  <site name="tcp" pos="0 0 0.1034" size="0.005" rgba="1 0 0 1"/>{ft}
  <body name="left_finger" pos="0 0 0.0584" gravcomp="1">
    <joint name="finger_joint1" type="slide" axis="0 1 0" range="{finger_range}" armature="0.01" damping="1"/>
    <geom name="left_pad" {pad} pos="0 0.005 0.0275" mass="{FINGER_MASS}" {ARM_GEOM}/>
  </body>
  <body name="right_finger" pos="0 0 0.0584" gravcomp="1">
    <joint name="finger_joint2" type="slide" axis="0 -1 0" range="{finger_range}" armature="0.01" damping="1"/>
    <geom name="right_pad" {pad} pos="0 -0.005 0.0275" mass="{FINGER_MASS}" {ARM_GEOM}/>
  </body>
  {hand_extra}
</body>"""


def _arm_chain(hand_extra: str, ft_sensor: bool) -> str:
    offsets = joint_frame_offsets()
    inner = _hand(hand_extra, ft_sensor)
    inner = f'<body name="flange_body" pos="{_f(offsets[7][0])}"><site name="flange" size="0.005"/>{inner}</body>'
    for i in range(6, -1, -1):
        pos, rot = offsets[i]
        nxt = offsets[i + 1][0]
        mass = LINK_MASSES[i]
        radius = 0.06 if i < 4 else 0.045
        seg = ""
        if np.linalg.norm(nxt) > 1e-6:
            seg = (f'<geom type="capsule" fromto="0 0 0 {_f(nxt)}" size="{radius}" mass="{0.6 * mass:.4g}" '
                   f'{ARM_GEOM} rgba="0.95 0.95 0.95 1"/>')
        housing_mass = mass if not seg else 0.4 * mass
        housing = (f'<geom type="capsule" fromto="0 0 -0.05 0 0 0.05" size="{radius}" mass="{housing_mass:.4g}" '
                   f'{ARM_GEOM} rgba="0.95 0.95 0.95 1"/>')
        name = JOINT_NAMES[i]
        joint = (f'<joint name="{name}" axis="0 0 1" range="{Q_LOWER[i]:.6g} {Q_UPPER[i]:.6g}" armature="0.1" '
                 f'damping="1"/>')
        inner = (f'<body name="link{i + 1}" pos="{_f(pos)}" quat="{_f(_quat_from_rot(rot))}" gravcomp="1">'
                 f"{joint}{seg}{housing}{inner}</body>")
    return inner


def _actuators() -> str:
    lines = []
    for i, name in enumerate(JOINT_NAMES):
        lines.append(
            f'<position name="act{i + 1}" joint="{name}" kp="{KP[i]}" kv="{KV[i]}" '
            f'ctrlrange="{Q_LOWER[i]:.6g} {Q_UPPER[i]:.6g}" forcerange="{-TAU_LIMIT[i]} {TAU_LIMIT[i]}"/>'
        )
    lines.append(f'<position name="gripper" tendon="split" kp="{FINGER_KP}" kv="{FINGER_KV}" '
                 f'ctrlrange="0 {FINGER_MAX}" forcerange="-140 140"/>')
    return "\n".join(lines)


def _sensors(contacts: tuple[tuple[str, str | None], ...], ft_sensor: bool) -> str:
    lines = [f'<contact geom1="{g1}"' + (f' geom2="{g2}"' if g2 else "") + ' data="found"/>' for g1, g2 in contacts]
    if ft_sensor:
        lines += ['<force name="ft_force" site="ft_sensor"/>', '<torque name="ft_torque" site="ft_sensor"/>']
    return "\n".join(lines)


def panda_mjcf(timestep: float = 0.002, world_extra: str = "", hand_extra: str = "", name: str = "panda",
               contacts: tuple[tuple[str, str | None], ...] = (), ft_sensor: bool = False) -> str:
    """MJCF text of a Panda on a table-height floor plus task bodies (``world_extra``) and hand attachments.

    ``contacts``: ``(geom1, geom2 or None)`` pairs watched by MuJoCo ``contact`` sensors (``data="found"``: the
    number of contacts between the two geoms, or of ``geom1`` with anything), in this order in ``sensordata``.
    ``ft_sensor``: then a MuJoCo ``force`` and ``torque`` sensor at the ``ft_sensor`` site on the hand (flange axes):
    the interaction wrench between the hand's subtree and the arm, six more ``sensordata`` entries.
    """
    if not timestep > 0:
        raise ValueError(f"physics timestep must be > 0, got {timestep}")
    return f"""<mujoco model="{name}">
<compiler angle="radian" autolimits="true"/>
<option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="10"/>
<visual><global offwidth="640" offheight="480"/></visual>
<asset>
  <texture name="grid" type="2d" builtin="checker" width="256" height="256" rgb1="0.35 0.4 0.45" rgb2="0.3 0.35 0.4"/>
  <material name="grid" texture="grid" texrepeat="8 8"/>
</asset>
<worldbody>
  <light pos="0.5 0 2" dir="0 0 -1" directional="true"/>
  <camera name="front" pos="1.6 0 0.9" xyaxes="0 1 0 -0.45 0 0.9"/>
  <geom name="floor" type="plane" size="2 2 0.05" material="grid" {WORLD_GEOM}/>
  <body name="link0">
    <geom type="cylinder" size="0.07 0.07" pos="0 0 0.07" {ARM_GEOM} mass="3.06" rgba="0.95 0.95 0.95 1"/>
    {_arm_chain(hand_extra, ft_sensor)}
  </body>
  {world_extra}
</worldbody>
<tendon>
  <fixed name="split"><joint joint="finger_joint1" coef="0.5"/><joint joint="finger_joint2" coef="0.5"/></fixed>
</tendon>
<equality><joint joint1="finger_joint1" joint2="finger_joint2" polycoef="0 1 0 0 0"/></equality>
<actuator>
{_actuators()}
</actuator>
<sensor>
{_sensors(contacts, ft_sensor)}
</sensor>
</mujoco>"""
