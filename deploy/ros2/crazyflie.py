"""``crazyflie`` profile: an attitude/thrust policy flying a Crazyflie through Crazyswarm2 (no rclpy import).

* State: ``<cf>/odom`` (``nav_msgs/Odometry``; REP 105 twist in the body frame by default, ``twist_frame:
  world`` for a world-frame twist) or ``<cf>/pose`` (``geometry_msgs/PoseStamped``): the world velocity is then
  the finite difference of successive positions over their header stamps, low-passed with time constant
  ``velocity_filter_s`` (a first-order filter; it lags by about that much, so keep it near one mocap period).
  A policy that observes ``angular_velocity`` needs the odom source. Crazyswarm2's cflib backend builds its
  odom orientation from the firmware's legacy (negated) pitch: set ``odom_legacy_pitch: true`` there.
* Target: the ``target`` parameter, or ``geometry_msgs/PoseStamped`` on ``target_topic``.
* Command: ``<cf>/cmd_vel_legacy`` (``geometry_msgs/Twist``) with Crazyswarm2's field convention
  ``linear.y`` = roll (deg), ``linear.x`` = the firmware's legacy pitch (deg, positive = nose up; Crazyswarm2
  passes ``pitch = -linear.x`` to cflib, which negates it again on the wire), ``angular.z`` = yaw rate (deg/s),
  ``linear.z`` = thrust (0-60000). The mapping comes from ``policy.json`` (``action.channels[*].twist_field``).
* Safety: the safe behaviour sends nothing (the setpoint stream stops; the firmware levels out after 500 ms and
  stops the motors after 2 s); e-stop also calls ``<cf>/emergency`` (``std_srvs/Empty``), which cuts the motors.
  After activation one all-zero setpoint is sent first: the firmware ignores thrust until it has seen a
  zero-thrust setpoint (``unlock_thrust``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deploy.ros2.profiles import ConfigError, NodeConfig, QuadrotorMotorsProfile, Subscription, stamp_ns

TWIST_FIELDS = ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z")
THRUST_MAX = 60000.0  # Crazyswarm2 clamps cmd_vel_legacy thrust to [0, 60000]
MAX_POSE_GAP_S = 0.5  # a longer gap between poses starts the velocity estimate afresh


def flip_pitch(w: float, x: float, y: float, z: float) -> tuple[float, float, float, float]:
    """The quaternion with the same roll and yaw (ZYX Euler) and the opposite pitch."""
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = -math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy)


class CrazyflieProfile(QuadrotorMotorsProfile):
    """Odometry or pose (+ target) -> ``cmd_vel_legacy`` setpoints for one Crazyswarm2 robot."""

    name = "crazyflie"
    action_type = "attitude_thrust"
    command_type = "geometry_msgs/msg/Twist"

    def __init__(self, cfg: NodeConfig) -> None:
        if cfg.state_source not in ("odom", "pose"):
            raise ConfigError(f"state_source must be 'odom' or 'pose', not {cfg.state_source!r}")
        if not cfg.cf_name.strip("/"):
            raise ConfigError("parameter cf_name is empty (the Crazyswarm2 robot name, e.g. cf1)")
        if cfg.velocity_filter_s < 0:
            raise ConfigError("velocity_filter_s must be >= 0")
        self.supported = ("position", "rotation_matrix", "quaternion", "linear_velocity", "action_history") + (
            ("angular_velocity",) if cfg.state_source == "odom" else ())
        super().__init__(cfg)
        spec = self.runner.spec["action"]
        try:
            fields = [c["twist_field"] for c in spec["channels"]]
        except (KeyError, TypeError):
            raise ConfigError("policy.json action.channels must name a twist_field per channel") from None
        if sorted(fields) != sorted(set(fields)) or not set(fields) <= set(TWIST_FIELDS) or len(fields) != 4:
            raise ConfigError(f"action.channels twist fields {fields} are not 4 distinct Twist fields")
        self._fields = [tuple(f.split(".")) for f in fields]
        self._thrust = fields.index("linear.z") if "linear.z" in fields else None
        self._prefix = cfg.cf_name.strip("/")
        self._last_pose: tuple[int, list[float]] | None = None
        self._vel = [0.0, 0.0, 0.0]

    @property
    def command_topic(self) -> str:
        return f"{self._prefix}/cmd_vel_legacy"

    @property
    def emergency_service(self) -> str:  # type: ignore[override]
        return f"{self._prefix}/emergency"

    def subscriptions(self) -> list[Subscription]:
        if self.cfg.state_source == "odom":
            subs = [Subscription(f"{self._prefix}/odom", "nav_msgs/msg/Odometry", self.on_odometry)]
        else:
            subs = [Subscription(f"{self._prefix}/pose", "geometry_msgs/msg/PoseStamped", self.on_pose)]
        if self.cfg.target_topic:
            subs.append(Subscription(self.cfg.target_topic, "geometry_msgs/msg/PoseStamped", self.on_target))
        return subs

    def _orientation(self, q: Any) -> tuple[float, float, float, float]:
        quat = super()._orientation(q)
        return flip_pitch(*quat) if self.cfg.odom_legacy_pitch and self.cfg.state_source == "odom" else quat

    def on_pose(self, msg: Any, received: float) -> bool:
        """``geometry_msgs/PoseStamped``: pose as measured, world velocity from successive positions."""
        stamp = stamp_ns(msg)
        if not self.runner.accept("odom", stamp, received):
            return False
        self._write_pose(msg.pose.position, self._orientation(msg.pose.orientation))
        pos, prev = list(self._pos), self._last_pose
        self._last_pose = (stamp, pos)
        dt = (stamp - prev[0]) * 1e-9 if prev is not None else math.inf
        if dt > MAX_POSE_GAP_S:  # first pose of a stream: no velocity yet, so the step stays safe
            self._vel = [math.nan] * 3
        elif dt > 0:
            raw = [(a - b) / dt for a, b in zip(pos, prev[1], strict=True)]
            if not all(math.isfinite(v) for v in self._vel):
                self._vel = raw
            else:
                k = dt / (self.cfg.velocity_filter_s + dt)
                self._vel = [v + k * (r - v) for v, r in zip(self._vel, raw, strict=True)]
        if "linear_velocity" in self._views:
            self._views["linear_velocity"][:] = self._vel
        return True

    def fill(self, msg: Any, cmd: np.ndarray) -> Any:
        """Write the 4 setpoint channels into their Twist fields (thrust clamped to [0, 60000] as Crazyswarm2)."""
        for (part, axis), i in zip(self._fields, range(4), strict=True):
            value = float(cmd[i])
            if i == self._thrust:
                value = min(max(value, 0.0), THRUST_MAX)
            setattr(getattr(msg, part), axis, value)
        return msg

    def unlock_message(self, msg: Any) -> Any | None:
        if not self.cfg.unlock_thrust:
            return None
        for part, axis in (f.split(".") for f in TWIST_FIELDS):
            setattr(getattr(msg, part), axis, 0.0)
        return msg
