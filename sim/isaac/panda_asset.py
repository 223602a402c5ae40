"""The Franka Panda as a USD articulation written by the project (no download), for Isaac Lab tasks.

Kinematics come from :mod:`sim.arm.kinematics` (Franka's DH table, the source of the MJCF as well): per joint,
the child link's frame sits at ``RotX(alpha) (a, 0, d)`` in its parent with rotation ``RotX(alpha)`` and turns
about its own z axis. Bodies ``panda_link0`` (fixed to the world) .. ``panda_link7`` and ``panda_hand`` (fixed to
the flange, yawed -45 deg: the MJCF's hand frame, whose origin + 0.1034 m along z is the TCP); revolute joints
``panda_joint1..7`` (Isaac Lab's Franka names) with Franka's limits and position drives (the MJCF's gains);
primitive collision shapes (the MJCF's capsules and hand box); masses of :data:`sim.arm.mjcf.LINK_MASSES`.
No fingers: the reach task has no gripper. USDA through ``pxr``; bodies are written at their q = 0 poses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics

from sim.arm.kinematics import HAND_YAW, JOINT_NAMES, Q_LOWER, Q_UPPER, TAU_LIMIT, joint_frame_offsets
from sim.arm.mjcf import HAND_MASS, KP, KV, LINK_MASSES
from sim.isaac.assets import _new_stage, _save

LINK_NAMES = tuple(f"panda_link{i}" for i in range(8))
HAND = "panda_hand"
BASE_MASS = 4.0  # link0 (the MJCF's base is static, so it has no mass there)


def _quat(r: np.ndarray) -> Gf.Quatf:
    """A rotation matrix as a Gf quaternion (w, x, y, z); r is a proper rotation."""
    w = np.sqrt(max(1e-12, 1.0 + np.trace(r))) / 2.0
    return Gf.Quatf(float(w), float((r[2, 1] - r[1, 2]) / (4 * w)), float((r[0, 2] - r[2, 0]) / (4 * w)),
                    float((r[1, 0] - r[0, 1]) / (4 * w)))


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _body(stage: Usd.Stage, path: str, pos: np.ndarray, rot: np.ndarray, mass: float) -> Usd.Prim:
    xf = UsdGeom.Xform.Define(stage, path)
    xf.AddTranslateOp().Set(Gf.Vec3d(*map(float, pos)))
    xf.AddOrientOp().Set(_quat(rot))
    prim = xf.GetPrim()
    UsdPhysics.RigidBodyAPI.Apply(prim)
    m = UsdPhysics.MassAPI.Apply(prim)
    m.CreateMassAttr(float(mass))
    i = 0.4 * mass * 0.06**2  # a 6 cm solid sphere: the links are driven stiffly, the value hardly matters
    m.CreateDiagonalInertiaAttr(Gf.Vec3f(i, i, i))
    m.CreateCenterOfMassAttr(Gf.Vec3f(0.0, 0.0, 0.0))
    return prim


def _capsule(stage: Usd.Stage, path: str, start: np.ndarray, end: np.ndarray, radius: float) -> None:
    """A collision capsule from ``start`` to ``end`` (link frame)."""
    axis = end - start
    length = float(np.linalg.norm(axis))
    cap = UsdGeom.Capsule.Define(stage, path)
    cap.CreateAxisAttr(UsdGeom.Tokens.z)
    cap.CreateRadiusAttr(radius)
    cap.CreateHeightAttr(length)
    cap.AddTranslateOp().Set(Gf.Vec3d(*map(float, (start + end) / 2)))
    z = axis / length
    ref = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(ref, z)
    x /= np.linalg.norm(x)
    cap.AddOrientOp().Set(_quat(np.stack((x, np.cross(z, x), z), axis=1)))
    UsdPhysics.CollisionAPI.Apply(cap.GetPrim())


def _attach(joint: UsdPhysics.Joint, body0: str | None, body1: str, pos0: np.ndarray, rot0: np.ndarray) -> None:
    if body0 is not None:
        joint.CreateBody0Rel().SetTargets([Sdf.Path(body0)])
    joint.CreateBody1Rel().SetTargets([Sdf.Path(body1)])
    joint.CreateLocalPos0Attr(Gf.Vec3f(*map(float, pos0)))
    joint.CreateLocalRot0Attr(_quat(rot0))
    joint.CreateLocalPos1Attr(Gf.Vec3f(0.0, 0.0, 0.0))
    joint.CreateLocalRot1Attr(Gf.Quatf(1.0))


def write_panda(path: Path) -> Path:
    """Write the Panda articulation (module docstring) to ``path`` (USDA); returns ``path``."""
    stage, root = _new_stage(path, "panda")
    UsdPhysics.ArticulationRootAPI.Apply(root)
    offsets = joint_frame_offsets()  # 7 joints, then the flange
    pos, rot = np.zeros(3), np.eye(3)
    link0 = _body(stage, "/panda/panda_link0", pos, rot, BASE_MASS)
    _capsule(stage, "/panda/panda_link0/collision", np.array([0.0, 0.0, 0.05]), np.array([0.0, 0.0, 0.2]), 0.07)
    fixed = UsdPhysics.FixedJoint.Define(stage, "/panda/root_joint")
    _attach(fixed, None, str(link0.GetPath()), np.zeros(3), np.eye(3))
    parent = link0
    for i in range(7):
        off_pos, off_rot = offsets[i]
        pos, rot = pos + rot @ off_pos, rot @ off_rot  # the link frame at q = 0
        link = _body(stage, f"/panda/{LINK_NAMES[i + 1]}", pos, rot, LINK_MASSES[i])
        radius = 0.06 if i < 4 else 0.045
        nxt = offsets[i + 1][0]
        _capsule(stage, f"{link.GetPath()}/housing", np.array([0.0, 0.0, -0.05]), np.array([0.0, 0.0, 0.05]), radius)
        if np.linalg.norm(nxt) > 1e-6:
            _capsule(stage, f"{link.GetPath()}/segment", np.zeros(3), nxt, radius)
        joint = UsdPhysics.RevoluteJoint.Define(stage, f"/panda/{JOINT_NAMES[i]}")
        _attach(joint, str(parent.GetPath()), str(link.GetPath()), off_pos, off_rot)
        joint.CreateAxisAttr(UsdPhysics.Tokens.z)
        joint.CreateLowerLimitAttr(float(np.degrees(Q_LOWER[i])))  # UsdPhysics angles are in degrees
        joint.CreateUpperLimitAttr(float(np.degrees(Q_UPPER[i])))
        drive = UsdPhysics.DriveAPI.Apply(joint.GetPrim(), "angular")
        drive.CreateTypeAttr("force")
        drive.CreateStiffnessAttr(float(KP[i] * np.pi / 180))  # per degree, as UsdPhysics drives are
        drive.CreateDampingAttr(float(KV[i] * np.pi / 180))
        drive.CreateMaxForceAttr(float(TAU_LIMIT[i]))
        parent = link
    flange_pos, hand_rot = offsets[7][0], _rot_z(HAND_YAW)
    hand = _body(stage, f"/panda/{HAND}", pos + rot @ flange_pos, rot @ hand_rot, HAND_MASS)
    box = UsdGeom.Cube.Define(stage, f"/panda/{HAND}/collision")
    box.CreateSizeAttr(1.0)
    box.AddTranslateOp().Set(Gf.Vec3d(0.0, 0.0, 0.03))
    box.AddScaleOp().Set(Gf.Vec3f(0.04, 0.18, 0.05))
    UsdPhysics.CollisionAPI.Apply(box.GetPrim())
    mount = UsdPhysics.FixedJoint.Define(stage, "/panda/panda_hand_joint")
    _attach(mount, str(parent.GetPath()), str(hand.GetPath()), flange_pos, hand_rot)
    return _save(stage, path)
