"""ROS-free robot profiles for the ROS 2 node: parameters, model checks, message -> observation conversion.

A profile turns the node's parameters into a configured :class:`deploy.runtime.PolicyRunner`, says which
topics to subscribe to and which command message to publish, and converts incoming messages (read by
attribute only, so tests can pass plain objects) into observation components. Nothing here imports rclpy.

* ``quadrotor_motors``: ``nav_msgs/Odometry`` in (REP 105: pose in the world/odom frame, twist in the body
  frame; the linear twist is rotated into the world frame), target from the ``target`` parameter or a
  ``geometry_msgs/PoseStamped`` topic, 4 motor commands out as ``std_msgs/Float32MultiArray`` (rpm by default).
* ``crazyflie``: a Crazyswarm2 robot ``<cf>``: ``<cf>/odom`` or ``<cf>/pose`` in, attitude/thrust setpoints out on
  ``<cf>/cmd_vel_legacy`` (``geometry_msgs/Twist``), ``<cf>/emergency`` on e-stop (:mod:`deploy.ros2.crazyflie`).
* ``arm``: ``sensor_msgs/JointState`` in (reordered by name), joint position targets out on
  ``/<controller>/commands`` as ``std_msgs/Float64MultiArray`` in the order of the ``joints`` parameter; goal
  from the ``goal`` parameter or a ``std_msgs/Float64MultiArray`` topic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from deploy.runtime import ModelError, PolicyRunner

INF = float("inf")


class ConfigError(ValueError):
    """The parameters and the model do not fit together (the one-line message says why)."""


@dataclass
class NodeConfig:
    """All node parameters (ROS parameter name = field name). Lists are per action element."""

    model_path: str = ""  # export directory with policy.onnx + policy.json (or the policy.onnx path)
    profile: str = "quadrotor_motors"  # quadrotor_motors | crazyflie | arm
    control_rate_hz: float = 0.0  # 0: the model's rate; any other value must equal it
    input_timeout_s: float = 0.1  # state older than this -> safe command
    autostart: bool = False  # configure + activate at start-up (else use ~/change_state)
    check_stamps: bool = True  # drop state whose header stamp is not newer than the last one
    diagnostics_period_s: float = 1.0
    diagnostics_topic: str = "/diagnostics"
    realtime_priority: int = 0  # 1-99: SCHED_FIFO for the control thread (Linux, CAP_SYS_NICE); 0: normal
    executor: str = "events"  # events (rclpy's C++ EventsExecutor, lower jitter) | single (SingleThreadedExecutor)
    command_low: list[float] = field(default_factory=lambda: [-INF])  # command limits (rpm / rad)
    command_high: list[float] = field(default_factory=lambda: [INF])
    max_command_delta: list[float] = field(default_factory=lambda: [INF])  # per step; inf = off
    # quadrotor_motors
    odom_topic: str = "odom"
    target: list[float] = field(default_factory=lambda: [0.0, 0.0, 1.0])  # world frame, m
    target_topic: str = ""  # geometry_msgs/PoseStamped; empty: use the target parameter
    motor_topic: str = "motor_commands"
    command_unit: str = "rpm"  # rpm | normalized ([-1, 1], the raw action)
    twist_frame: str = "child"  # child (REP 105) | world
    # crazyflie (also uses target, target_topic, twist_frame)
    cf_name: str = "cf1"  # Crazyswarm2 robot name: topics <cf>/odom, <cf>/pose, <cf>/cmd_vel_legacy
    state_source: str = "odom"  # odom (nav_msgs/Odometry) | pose (geometry_msgs/PoseStamped, velocity estimated)
    velocity_filter_s: float = 0.02  # pose source: time constant of the finite-difference velocity low-pass
    odom_legacy_pitch: bool = False  # odom orientation built from the firmware's legacy (negated) pitch
    unlock_thrust: bool = True  # send one zero-thrust setpoint after activation (the firmware's thrust lock)
    # arm
    joints: list[str] = field(default_factory=list)  # the controller's joints parameter (command order)
    controller: str = "forward_position_controller"
    joint_states_topic: str = "/joint_states"
    goal: list[float] = field(default_factory=list)
    goal_topic: str = ""  # std_msgs/Float64MultiArray; empty: use the goal parameter

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NodeConfig:
        """Build from a parameter dict (unknown keys are an error)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown parameters: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def coerce(cls, values: dict[str, Any]) -> NodeConfig:
        """Build from loosely typed parameter values (ints for floats, tuples, ``None`` for empty lists)."""
        out: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in values:
                continue
            v, default = values[f.name], getattr(cls(), f.name)
            try:
                if isinstance(default, list):
                    item = str if f.name == "joints" else float
                    out[f.name] = [] if v is None else [item(x) for x in (v if not isinstance(v, str) else [v])]
                elif isinstance(default, bool):
                    out[f.name] = v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes")
                else:
                    out[f.name] = type(default)(v)
            except (TypeError, ValueError):
                raise ConfigError(f"parameter {f.name} = {v!r} is not a valid {type(default).__name__}") from None
        return cls.from_dict(out)

    def export_dir(self) -> Path:
        """The export directory named by ``model_path`` (which may also point at ``policy.onnx``)."""
        if not self.model_path:
            raise ConfigError("parameter model_path is empty")
        p = Path(self.model_path).expanduser()
        return p.parent if p.suffix == ".onnx" else p


class Subscription(NamedTuple):
    """A topic the node subscribes to with sensor-data QoS; ``handler(msg, received_monotonic)``."""

    topic: str
    msg_type: str  # "package/msg/Type"
    handler: Callable[[Any, float], bool]


def stamp_ns(msg: Any) -> int:
    """``header.stamp`` as integer nanoseconds."""
    st = msg.header.stamp
    return int(st.sec) * 1_000_000_000 + int(st.nanosec)


def quat_to_rotmat(w: float, x: float, y: float, z: float) -> list[float]:
    """Body-to-world rotation matrix, row-major, from a unit quaternion (same formula as the simulator)."""
    return [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]


class Profile:
    """Common parts: model loading and checks against the parameters."""

    name = ""
    action_type = ""
    supported: tuple[str, ...] = ()
    command_type = ""

    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        if cfg.input_timeout_s <= 0:
            raise ConfigError("input_timeout_s must be positive")

    def _load(self, sources: dict[str, float | None], **kwargs: Any) -> PolicyRunner:
        try:
            kwargs.setdefault("max_command_delta", self.cfg.max_command_delta)
            runner = PolicyRunner(self.cfg.export_dir(), sources=sources, check_stamps=self.cfg.check_stamps,
                                  **kwargs)
        except (ModelError, FileNotFoundError) as exc:
            raise ConfigError(str(exc)) from None
        spec = runner.spec
        if runner.action_type != self.action_type:
            raise ConfigError(f"profile {self.name!r} needs a {self.action_type!r} action, the model has "
                              f"{runner.action_type!r}")
        missing = [c for c in runner.components if c not in self.supported]
        if missing:
            raise ConfigError(f"profile {self.name!r} cannot provide observation component(s) {missing}")
        rate = float(spec["control_rate_hz"])
        if self.cfg.control_rate_hz and abs(self.cfg.control_rate_hz - rate) > 1e-6 * rate:
            raise ConfigError(f"control_rate_hz {self.cfg.control_rate_hz:g} differs from the model's {rate:g} Hz")
        return runner

    @property
    def rate_hz(self) -> float:
        """The control rate (the model's)."""
        return self.runner.control_rate_hz

    def subscriptions(self) -> list[Subscription]:
        raise NotImplementedError

    @property
    def command_topic(self) -> str:
        raise NotImplementedError

    def fill(self, msg: Any, cmd: np.ndarray) -> Any:
        """Write a command into the (reused) command message."""
        msg.data = cmd.tolist()
        return msg

    def unlock_message(self, msg: Any) -> Any | None:
        """A message to publish once after activation, before any command (``None``: nothing)."""
        return None

    emergency_service: str | None = None
    """A ``std_srvs/Empty`` service the node calls on e-stop (``None``: none)."""


class QuadrotorMotorsProfile(Profile):
    """Odometry (+ target) -> 4 motor commands."""

    name = "quadrotor_motors"
    action_type = "motor_rpm"
    supported = ("position", "rotation_matrix", "quaternion", "linear_velocity", "angular_velocity",
                 "action_history")
    command_type = "std_msgs/msg/Float32MultiArray"

    def __init__(self, cfg: NodeConfig) -> None:
        super().__init__(cfg)
        if cfg.twist_frame not in ("child", "world"):
            raise ConfigError(f"twist_frame must be 'child' or 'world', not {cfg.twist_frame!r}")
        if len(cfg.target) != 3:
            raise ConfigError(f"target needs 3 values (x, y, z), got {len(cfg.target)}")
        sources: dict[str, float | None] = {"odom": cfg.input_timeout_s}
        if cfg.target_topic:
            sources["target"] = None
        self.runner = self._load(sources, command_low=cfg.command_low, command_high=cfg.command_high,
                                 command_unit=cfg.command_unit)
        if self.runner.action_size != 4:
            raise ConfigError(f"profile 'quadrotor_motors' needs 4 motor actions, the model has "
                              f"{self.runner.action_size}")
        self.target = [float(v) for v in cfg.target]
        self._pos = [math.nan] * 3
        self._views = {c: self.runner.view(c) for c in self.runner.components if c != "action_history"}

    @property
    def command_topic(self) -> str:
        return self.cfg.motor_topic

    def subscriptions(self) -> list[Subscription]:
        subs = [Subscription(self.cfg.odom_topic, "nav_msgs/msg/Odometry", self.on_odometry)]
        if self.cfg.target_topic:
            subs.append(Subscription(self.cfg.target_topic, "geometry_msgs/msg/PoseStamped", self.on_target))
        return subs

    def _write_position(self) -> None:
        v = self._views.get("position")
        if v is not None:
            v[:] = [p - t for p, t in zip(self._pos, self.target, strict=True)]

    def on_target(self, msg: Any, received: float) -> bool:
        """``geometry_msgs/PoseStamped`` target (only the position is used)."""
        if not self.runner.accept("target", stamp_ns(msg), received):
            return False
        p = msg.pose.position
        self.target = [float(p.x), float(p.y), float(p.z)]
        self._write_position()
        return True

    def _orientation(self, q: Any) -> tuple[float, float, float, float]:
        """Unit quaternion (w, x, y, z) of a message orientation; NaN when invalid (the step then turns safe)."""
        w, x, y, z = float(q.w), float(q.x), float(q.y), float(q.z)
        norm = math.sqrt(w * w + x * x + y * y + z * z)
        if not abs(norm - 1.0) < 1e-2:  # also catches NaN
            return math.nan, math.nan, math.nan, math.nan
        return w / norm, x / norm, y / norm, z / norm

    def _write_pose(self, p: Any, quat: tuple[float, float, float, float]) -> list[float]:
        """Write position - target, rotation matrix and quaternion; return the rotation matrix (row-major)."""
        r = quat_to_rotmat(*quat)
        self._pos = [float(p.x), float(p.y), float(p.z)]
        self._write_position()
        views = self._views
        if "rotation_matrix" in views:
            views["rotation_matrix"][:] = r
        if "quaternion" in views:
            views["quaternion"][:] = quat
        return r

    def on_odometry(self, msg: Any, received: float) -> bool:
        """``nav_msgs/Odometry``: write position - target, attitude, world linear and body angular velocity."""
        if not self.runner.accept("odom", stamp_ns(msg), received):
            return False
        pose, tw = msg.pose.pose, msg.twist.twist
        r = self._write_pose(pose.position, self._orientation(pose.orientation))
        views = self._views
        if "linear_velocity" in views:
            vx, vy, vz = float(tw.linear.x), float(tw.linear.y), float(tw.linear.z)
            if self.cfg.twist_frame == "child":
                vx, vy, vz = (r[0] * vx + r[1] * vy + r[2] * vz, r[3] * vx + r[4] * vy + r[5] * vz,
                              r[6] * vx + r[7] * vy + r[8] * vz)
            views["linear_velocity"][:] = [vx, vy, vz]
        if "angular_velocity" in views:
            views["angular_velocity"][:] = [float(tw.angular.x), float(tw.angular.y), float(tw.angular.z)]
        return True


class ArmProfile(Profile):
    """``/joint_states`` (+ goal) -> joint position targets for a ros2_control forward command controller."""

    name = "arm"
    action_type = "joint_position"
    supported = ("joint_position", "joint_velocity", "previous_action", "goal", "action_history")
    command_type = "std_msgs/msg/Float64MultiArray"

    def __init__(self, cfg: NodeConfig) -> None:
        super().__init__(cfg)
        if not cfg.joints:
            raise ConfigError("parameter joints is empty: give the controller's joint names in command order")
        if not cfg.controller:
            raise ConfigError("parameter controller is empty")
        probe = self._spec_joints()
        if sorted(cfg.joints) != sorted(probe) or len(set(cfg.joints)) != len(cfg.joints):
            raise ConfigError(f"joints parameter {list(cfg.joints)} does not match the model's joints {probe}")
        order = [probe.index(j) for j in cfg.joints]  # command[i] = policy output for joints[i]
        n = len(probe)

        def to_policy(values: list[float], what: str) -> list[float]:
            if len(values) == 1:
                return list(values) * n
            if len(values) != n:
                raise ConfigError(f"{what} needs 1 or {n} values (joints order), got {len(values)}")
            out = [0.0] * n
            for i, k in enumerate(order):
                out[k] = float(values[i])
            return out

        sources: dict[str, float | None] = {"joint_states": cfg.input_timeout_s}
        if cfg.goal_topic:
            sources["goal"] = None
        self.runner = self._load(sources, command_low=to_policy(list(cfg.command_low), "command_low"),
                                 command_high=to_policy(list(cfg.command_high), "command_high"),
                                 max_command_delta=to_policy(list(cfg.max_command_delta), "max_command_delta"),
                                 output_order=order)
        self.joints = probe
        self._names: tuple[str, ...] | None = None
        self._index: list[int] = []
        self._pos = self.runner.view("joint_position")
        self._vel = self.runner.view("joint_velocity") if self.runner.has("joint_velocity") else None
        if self.runner.has("goal"):
            gsize = self.runner.view("goal").size
            if not cfg.goal_topic:
                if len(cfg.goal) != gsize:
                    raise ConfigError(f"the model's goal has {gsize} values; parameter goal has {len(cfg.goal)} "
                                      f"(or set goal_topic)")
                self.runner.view("goal")[:] = cfg.goal

    def _spec_joints(self) -> list[str]:
        from deploy import contract

        try:
            spec = contract.load(self.cfg.export_dir())
        except (OSError, contract.ContractError) as exc:
            raise ConfigError(str(exc)) from None
        if spec["action"]["type"] != self.action_type:
            raise ConfigError(f"profile 'arm' needs a 'joint_position' action, the model has "
                              f"{spec['action']['type']!r}")
        return list(spec["action"]["joints"])

    @property
    def command_topic(self) -> str:
        return f"/{self.cfg.controller.strip('/')}/commands"

    def subscriptions(self) -> list[Subscription]:
        subs = [Subscription(self.cfg.joint_states_topic, "sensor_msgs/msg/JointState", self.on_joint_state)]
        if self.cfg.goal_topic:
            subs.append(Subscription(self.cfg.goal_topic, "std_msgs/msg/Float64MultiArray", self.on_goal))
        return subs

    def on_joint_state(self, msg: Any, received: float) -> bool:
        """Reorder by name; a message without all our joints is ignored (other publishers may share the topic)."""
        names = tuple(msg.name)
        if names != self._names:
            try:
                self._index = [names.index(j) for j in self.joints]
            except ValueError:
                return False
            self._names = names
        if not self.runner.accept("joint_states", stamp_ns(msg), received):
            return False
        pos, idx = msg.position, self._index
        self._pos[:] = [pos[k] for k in idx] if len(pos) == len(names) else math.nan
        if self._vel is not None:
            vel = msg.velocity
            self._vel[:] = [vel[k] for k in idx] if len(vel) == len(names) else math.nan
        return True

    def on_goal(self, msg: Any, received: float) -> bool:
        """``std_msgs/Float64MultiArray`` goal (no header: never stale once received)."""
        data = np.asarray(msg.data, dtype=np.float64)
        goal = self.runner.view("goal")
        if data.size != goal.size:
            goal[:] = math.nan
        else:
            goal[:] = data
        src = self.runner.sources["goal"]
        src.received, src.count = received, src.count + 1
        return True


PROFILES: dict[str, type[Profile]] = {"quadrotor_motors": QuadrotorMotorsProfile, "arm": ArmProfile}


def make_profile(cfg: NodeConfig) -> Profile:
    """Load and check the model for ``cfg.profile``; raise :class:`ConfigError` with a one-line reason."""
    from deploy.ros2.crazyflie import CrazyflieProfile  # builds on this module

    profiles = {**PROFILES, CrazyflieProfile.name: CrazyflieProfile}
    if cfg.profile not in profiles:
        raise ConfigError(f"unknown profile {cfg.profile!r}; choose from {sorted(profiles)}")
    return profiles[cfg.profile](cfg)
