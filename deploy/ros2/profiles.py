"""ROS-free robot profiles for the ROS 2 node: parameters, model checks, message -> observation conversion.

A profile turns the node's parameters into a configured :class:`deploy.runtime.PolicyRunner`, says which
topics to subscribe to and which command message to publish, and converts incoming messages (read by
attribute only, so tests can pass plain objects) into observation components. Nothing here imports rclpy.

* ``quadrotor_motors`` (:mod:`deploy.ros2.quadrotor`): ``nav_msgs/Odometry`` in (REP 105: pose in the world
  frame, twist in ``child_frame_id``; frames checked), target from the ``target`` parameter or a
  ``geometry_msgs/PoseStamped`` topic, 4 motor commands out as ``std_msgs/Float32MultiArray`` (rpm by default).
* ``crazyflie``: a Crazyswarm2 robot ``<cf>``: ``<cf>/odom`` or ``<cf>/pose`` in, attitude/thrust setpoints out on
  ``<cf>/cmd_vel_legacy`` (``geometry_msgs/Twist``), ``<cf>/emergency`` on e-stop (:mod:`deploy.ros2.crazyflie`).
* ``arm`` (:mod:`deploy.ros2.arm`): ``sensor_msgs/JointState`` in (matched by name), optional object pose and
  goal (``geometry_msgs/PoseStamped``), joint position targets out on ``/<controller>/commands`` as
  ``std_msgs/Float64MultiArray`` in the order of the ``joints`` parameter, ``joint_position`` or ``ee_delta``
  actions (the simulator's IK), the gripper width on ``/<gripper_controller>/commands``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from deploy.chunked_runtime import load_runner
from deploy.ros2.frames import quat_to_rotmat
from deploy.runtime import ModelError, PolicyRunner

__all__ = ["ConfigError", "NodeConfig", "Profile", "Subscription", "make_profile", "quat_to_rotmat",
           "stamp_ns"]

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
    max_future_stamp_s: float = 1.0  # drop state stamped more than this ahead of the node's clock
    stamp_jump_s: float = 1.0  # a stamp this much older than the last restarts the stamp sequence (reported)
    stamp_recovery_count: int = 10  # ... as do this many consecutive refused stamps
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
    twist_frame: str = "auto"  # twist frame when child_frame_id is empty: child | world | auto (profile's)
    odom_frame_id: str = "auto"  # expected header.frame_id ("*": any; auto: odom, or the Crazyswarm2 backend's)
    odom_child_frame_id: str = "auto"  # expected child_frame_id ("*": any; auto: base_link, or the backend's)
    geofence_min: list[float] = field(default_factory=lambda: [-2.0, -2.0, -0.5])  # world box, m: outside it
    geofence_max: list[float] = field(default_factory=lambda: [2.0, 2.0, 2.5])  # the e-stop latches (cut)
    # crazyflie (also uses target, target_topic, twist_frame, odom_*frame_id, geofence_*)
    cf_name: str = "cf1"  # Crazyswarm2 robot name: topics <cf>/odom, <cf>/pose, <cf>/cmd_vel_legacy
    backend: str = "cpp"  # Crazyswarm2 server backend: cpp (its default) | cflib; sets frames, pitch sign, units
    state_source: str = "odom"  # odom (nav_msgs/Odometry) | pose (geometry_msgs/PoseStamped, velocity estimated)
    velocity_filter_s: float = 0.02  # pose source: time constant of the finite-difference velocity low-pass
    angular_velocity_source: str = "auto"  # odom (cflib's gyro) | orientation (finite difference) | auto
    angular_velocity_filter_s: float = 0.02  # orientation source: low-pass time constant, s
    unlock_thrust: bool = True  # send one zero-thrust setpoint after activation (the firmware's thrust lock)
    # arm
    joints: list[str] = field(default_factory=list)  # the controller's joints parameter (command order)
    controller: str = "forward_position_controller"
    joint_states_topic: str = "/joint_states"
    goal: list[float] = field(default_factory=list)  # joint-space goal (rad) or task-space goal_position (m)
    goal_topic: str = ""  # goal: std_msgs/Float64MultiArray, goal_position: geometry_msgs/PoseStamped; "": parameter
    gripper_controller: str = "gripper_controller"  # ee_delta gripper channel: /<it>/commands, [finger position]
    gripper_joints: list[str] = field(default_factory=lambda: ["panda_finger_joint1", "panda_finger_joint2"])
    object_topic: str = ""  # geometry_msgs/PoseStamped of the tracked object (models observing object_*)
    object_timeout_s: float = 0.2  # object pose older than this -> safe command
    base_frame: str = "panda_link0"  # frame_id the object and goal poses must carry (empty frame_id: accepted)
    # arm with a residual that reads a wrist F/T sensor (policy.json composition.wrench)
    wrench_topic: str = "/force_torque_sensor_broadcaster/wrench_filtered"  # geometry_msgs/WrenchStamped
    wrench_frame: str = "ft_sensor"  # the header.frame_id it must carry (the broadcaster's frame_id parameter)
    wrench_timeout_s: float = 0.1  # a wrench older than this -> safe command

    #: parameters a configured node applies at once (others are read at configure and refused while configured)
    LIVE = ("target", "goal")

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
                    item = str if f.name in ("joints", "gripper_joints") else float
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


class Profile:
    """Common parts: model loading and checks against the parameters."""

    name = ""
    action_type = ""
    supported: tuple[str, ...] = ()
    command_type = ""

    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.clock_ns: Callable[[], int] | None = None  # the node's clock (ROS time) for the future-stamp check
        if cfg.input_timeout_s <= 0:
            raise ConfigError("input_timeout_s must be positive")

    def _load(self, sources: dict[str, float | None], **kwargs: Any) -> PolicyRunner:
        try:
            kwargs.setdefault("max_command_delta", self.cfg.max_command_delta)
            # a chunked (diffusion) export gets the ChunkedPolicyRunner; the profile does not need to know
            runner = load_runner(self.cfg.export_dir(), sources=sources, check_stamps=self.cfg.check_stamps,
                                 max_future_s=self.cfg.max_future_stamp_s, stamp_jump_s=self.cfg.stamp_jump_s,
                                 recovery_count=self.cfg.stamp_recovery_count, **kwargs)
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

    aux_command_topic: str | None = None
    """A second command topic of the same message type (an arm's gripper controller; ``None``: none)."""

    def fill_aux(self, msg: Any, cmd: np.ndarray) -> Any:
        """Write the command's part for :attr:`aux_command_topic` into its (reused) message."""
        raise NotImplementedError

    def unlock_message(self, msg: Any) -> Any | None:
        """A message to publish once after activation, before any command (``None``: nothing)."""
        return None

    emergency_service: str | None = None
    """A ``std_srvs/Empty`` service the node calls on e-stop (``None``: none)."""

    def now_ns(self) -> int | None:
        """The node's clock in nanoseconds (``None`` without a node: no future-stamp check)."""
        return self.clock_ns() if self.clock_ns is not None else None

    def set_live(self, name: str, value: Any) -> str | None:
        """Apply parameter ``name`` while configured; returns why it cannot be (``None``: applied)."""
        return f"parameter {name} is read at configure: deactivate, cleanup, set it, then configure again"

    def stats(self) -> dict[str, Any]:
        """Profile-specific diagnostics values."""
        return {}


def make_profile(cfg: NodeConfig) -> Profile:
    """Load and check the model for ``cfg.profile``; raise :class:`ConfigError` with a one-line reason."""
    from deploy.ros2.arm import ArmProfile  # all build on this module
    from deploy.ros2.crazyflie import CrazyflieProfile
    from deploy.ros2.quadrotor import QuadrotorMotorsProfile

    profiles: dict[str, type[Profile]] = {ArmProfile.name: ArmProfile, QuadrotorMotorsProfile.name:
                                          QuadrotorMotorsProfile, CrazyflieProfile.name: CrazyflieProfile}
    if cfg.profile not in profiles:
        raise ConfigError(f"unknown profile {cfg.profile!r}; choose from {sorted(profiles)}")
    return profiles[cfg.profile](cfg)
