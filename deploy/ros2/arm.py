"""Profile ``arm``: a ros2_control arm (``joint_state_broadcaster`` + ``forward_command_controller``s), ROS-free.

Inputs (sensor-data QoS subscriptions, compatible with the broadcaster's reliable SystemDefaults QoS):

* ``sensor_msgs/JointState`` on ``joint_states_topic``, matched **by name** (joint_state_broadcaster publishes
  in state-interface order, which need not be the URDF's): ``joint_position``/``joint_velocity`` in
  ``action.joints`` order; ``ee_position``/``ee_rotation_matrix`` are the Panda's forward kinematics of the
  measured joints (as in training); ``gripper_width`` is the sum of the ``gripper_joints`` positions.
* the object pose, ``geometry_msgs/PoseStamped`` on ``object_topic`` (a motion-capture or tag tracker) ->
  ``object_position``, ``object_quaternion`` (w, x, y, z); stale after ``object_timeout_s``.
* a wrist force/torque reading, for a residual that reads one (``policy.json`` ``composition.wrench``):
  ``geometry_msgs/WrenchStamped`` on ``wrench_topic`` as ros2_control's ``force_torque_sensor_broadcaster``
  publishes it (``<controller>/wrench_filtered``; ``header.frame_id`` = its ``frame_id`` parameter, which must be
  ``wrench_frame``); stale after ``wrench_timeout_s``.
* the goal: the ``goal`` parameter (changes apply live) or ``goal_topic``: ``std_msgs/Float64MultiArray`` for a
  joint-space ``goal``, ``geometry_msgs/PoseStamped`` (position used) for a task-space ``goal_position``.
  Poses must be in ``base_frame`` (an empty ``frame_id`` is taken as it).

Outputs (reliable): ``/<controller>/commands`` (``std_msgs/Float64MultiArray``, joint position targets in the
order of the ``joints`` parameter = the controller's ``joints``); with an ``ee_delta`` gripper channel also
``/<gripper_controller>/commands``: one value, the position of the first gripper joint = width / 2 (each
Panda finger opens half the width; the second finger mimics the first, as in franka_description). The real
franka_gripper takes ``control_msgs`` actions (Move/Grasp), which the PyPI ROS 2 wheels do not carry, so the
gripper is driven like a ros2_control robot whose finger is a position joint: a second forward position
controller. ``joint_position`` actions map affinely; ``ee_delta`` actions go through the simulator's own IK
controller (:mod:`deploy.arm_command`). Safety (NaN, joint limits, velocity limits, stale input) is the
runtime's (:class:`deploy.runtime.PolicyRunner`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deploy import contract
from deploy.ros2.profiles import ConfigError, NodeConfig, Profile, Subscription, stamp_ns

__all__ = ["ArmProfile"]

TASK_COMPONENTS = ("ee_position", "ee_rotation_matrix", "gripper_width", "object_position", "object_quaternion",
                   "goal_position")


class ArmProfile(Profile):
    """``/joint_states`` (+ object pose, goal) -> joint position targets (+ gripper) for forward controllers."""

    name = "arm"
    supported = ("joint_position", "joint_velocity", "previous_action", "goal", "action_history", *TASK_COMPONENTS)
    command_type = "std_msgs/msg/Float64MultiArray"

    def __init__(self, cfg: NodeConfig) -> None:
        super().__init__(cfg)
        if not cfg.joints:
            raise ConfigError("parameter joints is empty: give the controller's joint names in command order")
        if not cfg.controller:
            raise ConfigError("parameter controller is empty")
        spec = self._spec()
        self.action_type = spec["action"]["type"]
        if self.action_type not in ("joint_position", "ee_delta"):
            raise ConfigError(f"profile 'arm' needs a 'joint_position' or 'ee_delta' action, the model has "
                              f"{self.action_type!r}")
        probe = list(spec["action"].get("joints") or [])
        if sorted(cfg.joints) != sorted(probe) or len(set(cfg.joints)) != len(cfg.joints):
            raise ConfigError(f"joints parameter {list(cfg.joints)} does not match the model's joints {probe}")
        order = [probe.index(j) for j in cfg.joints]  # command[i] = policy output for joints[i]
        n = self.n_joints = len(probe)
        chans = spec["action"].get("channels", [])
        self.has_gripper = self.action_type == "ee_delta" and "gripper" in chans
        names = {c["name"] for c in spec["observation"]}
        if (self.has_gripper or "gripper_width" in names) and not cfg.gripper_joints:
            raise ConfigError("the model uses the gripper: parameter gripper_joints is empty")
        if self.has_gripper and not cfg.gripper_controller:
            raise ConfigError("the model commands a gripper: parameter gripper_controller is empty")
        if names & {"object_position", "object_quaternion"} and not cfg.object_topic:
            raise ConfigError("the model observes the object: parameter object_topic is empty")

        def to_policy(values: list[float], what: str) -> list[float]:
            m = n + self.has_gripper
            if len(values) == 1:
                return list(values) * m
            if len(values) not in (n, m):
                raise ConfigError(f"{what} needs 1 or {n} values (joints order), got {len(values)}")
            out = [float(values[-1]) if len(values) == m else (-math.inf if "low" in what else math.inf)] * m
            for i, k in enumerate(order):
                out[k] = float(values[i])
            return out

        sources: dict[str, float | None] = {"joint_states": cfg.input_timeout_s}
        if names & {"object_position", "object_quaternion"}:
            if cfg.object_timeout_s <= 0:
                raise ConfigError("object_timeout_s must be positive")
            sources["object"] = cfg.object_timeout_s
        if (spec.get("composition") or {}).get("wrench") is not None:
            if cfg.wrench_timeout_s <= 0 or not cfg.wrench_topic:
                raise ConfigError("the model reads a wrist wrench: wrench_topic and a positive wrench_timeout_s")
            sources["wrench"] = cfg.wrench_timeout_s
        self.goal_name = "goal" if "goal" in names else "goal_position" if "goal_position" in names else None
        if cfg.goal_topic and self.goal_name:
            sources["goal"] = None
        self.runner = self._load(sources, command_low=to_policy(list(cfg.command_low), "command_low"),
                                 command_high=to_policy(list(cfg.command_high), "command_high"),
                                 max_command_delta=to_policy(list(cfg.max_command_delta), "max_command_delta"),
                                 output_order=order + ([n] if self.has_gripper else []))
        r = self.runner
        self.joints = probe
        self._names: tuple[str, ...] | None = None
        self._index: list[int] = []
        self._grip_index: list[int] = []
        self._pos = r.view("joint_position") if r.has("joint_position") else None
        self._vel = r.view("joint_velocity") if r.has("joint_velocity") else None
        self._ee = r.view("ee_position") if r.has("ee_position") else None
        self._rot = r.view("ee_rotation_matrix") if r.has("ee_rotation_matrix") else None
        self._width = r.view("gripper_width") if r.has("gripper_width") else None
        self._measured = r.measured if r.measured is not None else self._pos
        if self._measured is None:
            raise ConfigError("a joint_position action needs a joint_position observation (the hold position)")
        self._fk = None
        if self._ee is not None or self._rot is not None:
            from sim.arm.kinematics import tcp_pose  # numba, torch-free: the simulator's own FK

            if n != 7:
                raise ConfigError("ee_position / ee_rotation_matrix need the Panda's 7 joints")
            self._fk = tcp_pose
            self._q64 = np.zeros((1, n))
        if self.goal_name and not cfg.goal_topic:
            why = self._set_goal(cfg.goal)
            if why:
                raise ConfigError(f"the model's {why} (or set goal_topic)")

    def _spec(self) -> dict[str, Any]:
        try:
            return contract.load(self.cfg.export_dir())
        except (OSError, contract.ContractError) as exc:
            raise ConfigError(str(exc)) from None

    # ------------------------------------------------------------------ topics
    @property
    def command_topic(self) -> str:
        return f"/{self.cfg.controller.strip('/')}/commands"

    @property
    def aux_command_topic(self) -> str | None:
        return f"/{self.cfg.gripper_controller.strip('/')}/commands" if self.has_gripper else None

    def fill(self, msg: Any, cmd: np.ndarray) -> Any:
        msg.data = cmd[:self.n_joints].tolist()
        return msg

    def fill_aux(self, msg: Any, cmd: np.ndarray) -> Any:
        """The gripper controller's command: the first finger joint's position = width / 2."""
        msg.data = [float(cmd[self.n_joints]) / 2.0]
        return msg

    def subscriptions(self) -> list[Subscription]:
        subs = [Subscription(self.cfg.joint_states_topic, "sensor_msgs/msg/JointState", self.on_joint_state)]
        if "object" in self.runner.sources:
            subs.append(Subscription(self.cfg.object_topic, "geometry_msgs/msg/PoseStamped", self.on_object))
        if "wrench" in self.runner.sources:
            subs.append(Subscription(self.cfg.wrench_topic, "geometry_msgs/msg/WrenchStamped", self.on_wrench))
        if self.cfg.goal_topic and self.goal_name:
            kind = "std_msgs/msg/Float64MultiArray" if self.goal_name == "goal" else "geometry_msgs/msg/PoseStamped"
            subs.append(Subscription(self.cfg.goal_topic, kind, self.on_goal))
        return subs

    # ------------------------------------------------------------------ handlers
    def on_joint_state(self, msg: Any, received: float) -> bool:
        """Reorder by name; a message without all our joints is ignored (other publishers may share the topic)."""
        names = tuple(msg.name)
        if names != self._names:
            try:
                self._index = [names.index(j) for j in self.joints]
                self._grip_index = [names.index(j) for j in self.cfg.gripper_joints] \
                    if (self.has_gripper or self._width is not None) else []
            except ValueError:
                return False
            self._names = names
        if not self.runner.accept("joint_states", stamp_ns(msg), received):
            return False
        pos, idx, n = msg.position, self._index, self.n_joints
        full = len(pos) == len(names)
        m = self._measured
        m[:n] = [pos[k] for k in idx] if full else math.nan
        if self._grip_index:
            width = sum(pos[k] for k in self._grip_index) if full else math.nan
            if len(m) > n:
                m[n] = width
            if self._width is not None:
                self._width[0] = width
        if self._pos is not None and self._pos is not m:
            self._pos[:] = m[:n]
        if self._vel is not None:
            vel = msg.velocity
            self._vel[:] = [vel[k] for k in idx] if len(vel) == len(names) else math.nan
        if self._fk is not None:
            self._q64[0] = m[:n]
            if np.isfinite(self._q64).all():
                tcp, rot = self._fk(self._q64)
            else:
                tcp, rot = np.full((1, 3), math.nan), np.full((1, 3, 3), math.nan)
            if self._ee is not None:
                self._ee[:] = tcp[0]
            if self._rot is not None:
                self._rot[:] = rot[0].reshape(9)
        return True

    def _frame_ok(self, msg: Any, source: str) -> bool:
        frame = msg.header.frame_id
        if frame and frame != self.cfg.base_frame:
            self.runner.reject(source, f"frame_id {frame!r} is not base_frame {self.cfg.base_frame!r}")
            return False
        return True

    def on_object(self, msg: Any, received: float) -> bool:
        """Tracked object pose (``geometry_msgs/PoseStamped`` in ``base_frame``)."""
        if not self._frame_ok(msg, "object") or not self.runner.accept("object", stamp_ns(msg), received,
                                                                       self.now_ns()):
            return False
        p, o = msg.pose.position, msg.pose.orientation
        if self.runner.has("object_position"):
            self.runner.view("object_position")[:] = (p.x, p.y, p.z)
        if self.runner.has("object_quaternion"):
            self.runner.view("object_quaternion")[:] = (o.w, o.x, o.y, o.z)
        return True

    def on_wrench(self, msg: Any, received: float) -> bool:
        """Wrist force/torque (``geometry_msgs/WrenchStamped`` in ``wrench_frame``): force x y z, torque x y z."""
        frame = msg.header.frame_id
        if frame != self.cfg.wrench_frame:
            return self.runner.reject("wrench", f"frame_id {frame!r} is not wrench_frame {self.cfg.wrench_frame!r}")
        if not self.runner.accept("wrench", stamp_ns(msg), received, self.now_ns()):
            return False
        f, t = msg.wrench.force, msg.wrench.torque
        self.runner.wrench[0] = (f.x, f.y, f.z, t.x, t.y, t.z)
        return True

    def on_goal(self, msg: Any, received: float) -> bool:
        """Goal message (no stamp check: a goal is a setting, valid until replaced)."""
        if self.goal_name == "goal_position":
            if not self._frame_ok(msg, "goal"):
                return False
            p = msg.pose.position
            values: Any = (p.x, p.y, p.z)
        else:
            values = msg.data
        goal = self.runner.view(self.goal_name)
        data = np.asarray(values, dtype=np.float64)
        goal[:] = data if data.size == goal.size else math.nan
        src = self.runner.sources["goal"]
        src.received, src.count = received, src.count + 1
        return True

    def _set_goal(self, value: Any) -> str | None:
        goal = self.runner.view(self.goal_name)
        try:
            vals = [float(v) for v in value]
        except (TypeError, ValueError):
            return f"{self.goal_name} needs {goal.size} numbers, got {value!r}"
        if len(vals) != goal.size or not all(math.isfinite(v) for v in vals):
            return f"{self.goal_name} has {goal.size} values; parameter goal has {value!r}"
        goal[:] = vals
        return None

    def set_live(self, name: str, value: Any) -> str | None:
        if name != "goal" or self.goal_name is None:
            return super().set_live(name, value)
        if self.cfg.goal_topic:
            return f"the goal comes from goal_topic {self.cfg.goal_topic!r}"
        return self._set_goal(value)
