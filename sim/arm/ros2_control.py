"""The MuJoCo Panda as a ros2_control robot would present itself, ROS-free (``robot-rl arm-sim`` adds rclpy).

Behaviour mirrored from ros2_controllers (read at commit 94e74de35 of ros-controls/ros2_controllers):

* ``joint_state_broadcaster``: one ``JointState`` with every joint's position, velocity and effort, in
  state-interface order, which is *not* guaranteed to be the URDF's: :data:`JOINT_STATE_ORDER` is deliberately
  scrambled so that a consumer indexing by position instead of by name fails.
* ``forward_command_controller`` (:class:`ForwardCommandController`): a ``Float64MultiArray`` with any
  non-finite value is dropped (the last command stays); no command yet = nothing written (the hardware holds);
  a command whose size differs from the controller's joints makes ``update`` return ERROR (here: counted,
  nothing written); there is no watchdog, the last command is held forever.

The gripper is a second forward position controller on ``panda_finger_joint1`` (``panda_finger_joint2``
mimics it, as in franka_description): one value, each finger's opening (m, 0..0.04). The real franka_gripper
is driven through actions (Move/Grasp) that the PyPI ROS 2 wheels do not carry.

What a real Panda would refuse is counted, not hidden: arm targets outside the joint position limits
(``limit_violations``) and target steps faster than the joint velocity limits allow over one nominal
command period (``velocity_violations``; libfranka aborts on such commands).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import mujoco
import numpy as np

from sim.arm.kinematics import FINGER_MAX, JOINT_NAMES, Q_LOWER, Q_UPPER, QD_LIMIT, tcp_pose

ARM_JOINTS = tuple(JOINT_NAMES)
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
OBJECT_SPEED_LIMIT = 10.0
"""m/s a task object can reach in a Panda scene (the arm's TCP moves at most ~1.7 m/s, a drop from the table height
lands at ~4 m/s): faster is a physics blow-up. MuJoCo's ``implicitfast`` at the arm scenes' 2 ms step ejected a
spinning cube dropped on the floor at 75 m/s (``tests/sim/arm/test_ros2_control.py``)."""

#: Published joint order: not the URDF's (joint_state_broadcaster follows the state interfaces).
JOINT_STATE_ORDER = ("panda_finger_joint2", "panda_joint4", "panda_joint7", "panda_joint1", "panda_joint5",
                     "panda_finger_joint1", "panda_joint3", "panda_joint6", "panda_joint2")


class ForwardCommandController:
    """``forward_command_controller`` semantics for the position interfaces of ``joints``."""

    def __init__(self, name: str, joints: Sequence[str]) -> None:
        self.name, self.joints = name, tuple(joints)
        self._pending: list[float] | None = None
        self.received = self.dropped_nonfinite = self.update_errors = 0

    def receive(self, data: Sequence[float]) -> str | None:
        """A ``~/commands`` message; returns a warning when it is dropped (non-finite)."""
        values = [float(v) for v in data]
        if not all(math.isfinite(v) for v in values):
            self.dropped_nonfinite += 1
            return f"{self.name}: command with a non-finite value dropped; holding the last command"
        self.received += 1
        self._pending = values
        return None

    def update(self) -> list[float] | None:
        """The command to write this cycle (``None``: write nothing, the hardware keeps its last target)."""
        if self._pending is None:
            return None
        if len(self._pending) != len(self.joints):
            self.update_errors += 1  # the real update() logs and returns return_type::ERROR
            return None
        return self._pending


class SimulatedPanda:
    """One MuJoCo world of a registered arm task (the training scene), commanded like a ros2_control robot.

    Args:
        task: a name in :data:`sim.arm.ARM_TASKS` (its scene, start pose and randomisation, one env).
        seed: episode seed of the scene (start pose, object placement, gains).
        command_period: nominal period of the arm commands (s), for the velocity-violation count.
        wrench_period: the period (s) of :meth:`step` calls; given, the scene has the wrist force/torque sensor
            and :meth:`wrench` reads it (the training sensor model, its low-pass run once per step).
    """

    def __init__(self, task: str, seed: int = 0, command_period: float = 0.02,
                 controller: str = "forward_position_controller",
                 gripper_controller: str = "gripper_controller", wrench_period: float | None = None) -> None:
        from sim.arm import ARM_TASKS
        from sim.arm.config import with_wrist_ft
        from sim.arm.wrench import WristWrench

        if task not in ARM_TASKS:
            raise ValueError(f"unknown arm task {task!r}; choose from {sorted(ARM_TASKS)}")
        cfg_cls, env_cls = ARM_TASKS[task]
        cfg = cfg_cls()
        cfg.num_envs = 1
        if wrench_period is not None:
            cfg = with_wrist_ft(cfg)
        self.env = env_cls(cfg)
        self.env.reset(seed)
        self.task = task
        self.model, self.data = self.env.worlds.models[0], self.env.worlds.datas[0]
        m = self.model
        self.ft = None
        if wrench_period is not None:
            self._ft = int(m.sensor("ft_force").adr[0]), int(m.sensor("ft_torque").adr[0])
            self.ft = WristWrench(cfg.ft_sensor, 1, wrench_period)
            self.ft.seed(seed)
            self.ft.reset(np.arange(1), self._exact_wrench())
        self.physics_dt = float(m.opt.timestep)
        self._qadr = {n: int(m.jnt_qposadr[m.joint(n).id]) for n in ARM_JOINTS}
        self._vadr = {n: int(m.jnt_dofadr[m.joint(n).id]) for n in ARM_JOINTS}
        for ros, mj in zip(FINGER_JOINTS, ("finger_joint1", "finger_joint2"), strict=True):
            self._qadr[ros] = int(m.jnt_qposadr[m.joint(mj).id])
            self._vadr[ros] = int(m.jnt_dofadr[m.joint(mj).id])
        free = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
        self._object = int(m.jnt_qposadr[free[0]]) if free else None
        self._object_dof = int(m.jnt_dofadr[free[0]]) if free else None
        self.unstable_at: float | None = None
        """Sim time of the first step whose object moved faster than :data:`OBJECT_SPEED_LIMIT` (``None``: never)."""
        self.object_name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, int(m.jnt_bodyid[free[0]])) if free else ""
        self.goal = self._task_goal()
        self.arm = ForwardCommandController(controller, ARM_JOINTS)
        self.gripper = ForwardCommandController(gripper_controller, FINGER_JOINTS[:1])
        self.arm_target = self.data.qpos[:7].copy()  # the hardware's command interfaces start at the state
        self.finger_target = float(self.data.ctrl[7])
        self.max_step = QD_LIMIT * command_period * 1.05 + 1e-9
        self.limit_violations = self.velocity_violations = 0
        self.commands: list[tuple[float, list[float]]] = []  # (sim time, arm command received)
        self.gripper_commands: list[tuple[float, float]] = []
        self.time = 0.0

    def _task_goal(self) -> np.ndarray | None:
        for attr in ("goal", "hole"):  # reach: the goal; peg: the hole
            value = getattr(self.env, attr, None)
            if isinstance(value, np.ndarray) and value.shape[-1] == 3:
                return value[0].copy()
        return None

    # ------------------------------------------------------------------ commands in
    def command_arm(self, data: Sequence[float]) -> str | None:
        """A message on the arm controller's ``~/commands``; returns a warning to log (or ``None``)."""
        why = self.arm.receive(data)
        if why is None and len(data) == 7:
            q = np.asarray(data, dtype=np.float64)
            if np.any(q < Q_LOWER - 1e-9) or np.any(q > Q_UPPER + 1e-9):
                self.limit_violations += 1
                why = f"arm target outside the joint limits: {np.round(q, 4).tolist()}"
            last = self.commands[-1][1] if self.commands else self.arm_target
            if np.any(np.abs(q - np.asarray(last)) > self.max_step):
                self.velocity_violations += 1
                why = "arm target step faster than the joint velocity limits"
            self.commands.append((self.time, q.tolist()))
        return why

    def command_gripper(self, data: Sequence[float]) -> str | None:
        why = self.gripper.receive(data)
        if why is None and len(data) == 1:
            if not 0.0 <= float(data[0]) <= FINGER_MAX + 1e-9:
                self.limit_violations += 1
                why = f"finger target {float(data[0]):.4g} m outside [0, {FINGER_MAX}]"
            self.gripper_commands.append((self.time, float(data[0])))
        return why

    # ------------------------------------------------------------------ physics
    def step(self, dt: float) -> None:
        """One controller-manager cycle: controllers write their commands, then ``dt`` of physics."""
        arm = self.arm.update()
        if arm is not None:
            self.arm_target[:] = arm
        grip = self.gripper.update()
        if grip is not None:
            self.finger_target = grip[0]
        d = self.data
        d.ctrl[:7] = np.clip(self.arm_target, Q_LOWER, Q_UPPER)
        d.ctrl[7] = min(max(self.finger_target, 0.0), FINGER_MAX)
        n = max(1, round(dt / self.physics_dt))
        mujoco.mj_step(self.model, d, n)
        self.time += n * self.physics_dt
        if self.unstable_at is None and self.object_speed() > OBJECT_SPEED_LIMIT:
            self.unstable_at = self.time
        if self.ft is not None:
            self.ft.update(self._exact_wrench())

    def _exact_wrench(self) -> np.ndarray:
        f, t = self._ft
        return np.concatenate((self.data.sensordata[f:f + 3], self.data.sensordata[t:t + 3]))[None]

    def wrench(self) -> list[float]:
        """The wrist sensor's reading: force x y z (N), torque x y z (N m) in ``ft_sensor`` (with the sensor
        model's offset, noise and low-pass)."""
        if self.ft is None:
            raise RuntimeError("this SimulatedPanda has no wrist force/torque sensor (give wrench_period)")
        return self.ft.value[0].tolist()

    # ------------------------------------------------------------------ state out
    def joint_state(self) -> tuple[list[str], list[float], list[float], list[float]]:
        """Names (:data:`JOINT_STATE_ORDER`), positions, velocities and efforts (joint_state_broadcaster)."""
        d = self.data
        force = d.qfrc_actuator
        names = list(JOINT_STATE_ORDER)
        return (names, [float(d.qpos[self._qadr[n]]) for n in names], [float(d.qvel[self._vadr[n]]) for n in names],
                [float(force[self._vadr[n]]) for n in names])

    @property
    def q(self) -> np.ndarray:
        return np.array([self.data.qpos[self._qadr[n]] for n in ARM_JOINTS])

    def tcp(self) -> np.ndarray:
        """Tool centre point (m, base frame) from the Panda's forward kinematics."""
        return tcp_pose(self.q[None])[0][0]

    def object_pose(self) -> tuple[list[float], list[float]] | None:
        """Position and quaternion (w, x, y, z) of the task's free object, as a tracker would report it."""
        if self._object is None:
            return None
        qp = self.data.qpos[self._object:self._object + 7]
        return qp[:3].tolist(), qp[3:7].tolist()

    def object_speed(self) -> float:
        """Linear speed (m/s) of the task's free object (0 without one)."""
        if self._object_dof is None:
            return 0.0
        return float(np.linalg.norm(self.data.qvel[self._object_dof:self._object_dof + 3]))

    def lifted(self) -> bool | None:
        """``panda-pick-cube``'s success condition at this instant (:meth:`sim.arm.pick.PickCubeEnv._evaluate`:
        the cube ``lift_height`` above its resting height and within ``near_distance`` of the TCP); ``None``
        for tasks without a lift."""
        cfg = self.env.cfg
        if self._object is None or not hasattr(cfg, "lift_height"):
            return None
        pos = self.data.qpos[self._object:self._object + 3]
        return bool(pos[2] - cfg.cube_half_size >= cfg.lift_height
                    and np.linalg.norm(pos - self.tcp()) <= cfg.near_distance)

    def inserted(self) -> bool | None:
        """``panda-peg-insert``'s success condition at this instant (:meth:`sim.arm.peg.PegInsertEnv._evaluate`: the
        peg tip ``success_depth`` below the rim and inside the hole); ``None`` for tasks without a hole."""
        env, cfg = self.env, self.env.cfg
        if not hasattr(env, "peg_tip"):
            return None
        tip, hole = env.peg_tip(self.q[None])[0], env.hole[0]
        return bool(hole[2] - tip[2] >= cfg.success_depth
                    and np.linalg.norm(tip[:2] - hole[:2]) <= cfg.peg_radius + cfg.clearance)

    @property
    def success_hold_s(self) -> float:
        """How long the lift must hold for success (the task's ``hold_steps`` control periods)."""
        return float(getattr(self.env.cfg, "hold_steps", 0) * self.env.dt)

    def counters(self) -> dict[str, Any]:
        return {"arm_commands": self.arm.received, "arm_nonfinite_dropped": self.arm.dropped_nonfinite,
                "arm_update_errors": self.arm.update_errors, "gripper_commands": self.gripper.received,
                "gripper_nonfinite_dropped": self.gripper.dropped_nonfinite,
                "gripper_update_errors": self.gripper.update_errors, "limit_violations": self.limit_violations,
                "velocity_violations": self.velocity_violations}

    def close(self) -> None:
        self.env.close()
