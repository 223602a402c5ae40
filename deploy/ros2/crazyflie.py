"""``crazyflie`` profile: an attitude/thrust policy flying a Crazyflie through Crazyswarm2 (no rclpy import).

* Backends (``backend``), as Crazyswarm2 1.0.5 (commit f6154e2) publishes ``<cf>/odom``:

  ======== ============================== ============================= ============ =====================
  backend  header.frame_id / child_frame   twist.linear                  orientation  twist.angular
  ======== ============================== ============================= ============ =====================
  cpp      ``<cf>`` / empty                world frame (stateEstimateZ)  estimator    none (left zero)
  cflib    ``world`` / ``<cf>``            body frame (kalman.statePX)   legacy pitch gyro, deg/s, body
  ======== ============================== ============================= ============ =====================

  (``crazyflie/src/crazyflie_server.cpp`` ``on_logging_odom`` and ``crazyflie_server_py/crazyflie_server.py``
  ``_log_odom_data_callback``; the cflib orientation is built from ``stabilizer.pitch``, the firmware's
  negated pitch, which the profile flips back.) The C++ backend publishes no angular rates, so with it a
  policy that observes ``angular_velocity`` gets them from the orientation (``angular_velocity_source:
  orientation``: finite difference of successive stamped quaternions, low-passed with
  ``angular_velocity_filter_s``); asking for ``odom`` rates there is refused at configure. ``odom_frame_id``,
  ``odom_child_frame_id`` and ``twist_frame`` default to the backend's (``auto``); set them for a patched server.
* State: ``<cf>/odom`` (``nav_msgs/Odometry``) or ``<cf>/pose`` (``geometry_msgs/PoseStamped``, correct pitch
  on both backends): the world velocity is then the finite difference of successive positions over their
  header stamps, low-passed with time constant ``velocity_filter_s`` (it lags by about that much, so keep it
  near one mocap period), and the angular velocity comes from the orientation.
* Target: the ``target`` parameter (live), or ``geometry_msgs/PoseStamped`` on ``target_topic``.
* Command: ``<cf>/cmd_vel_legacy`` (``geometry_msgs/Twist``) with Crazyswarm2's field convention
  ``linear.y`` = roll (deg), ``linear.x`` = the firmware's legacy pitch (deg, positive = nose up; Crazyswarm2
  passes ``pitch = -linear.x`` to the firmware's setpoint, whose pitch is negated on board again),
  ``angular.z`` = yaw rate (deg/s), ``linear.z`` = thrust (0-60000). The mapping comes from ``policy.json``
  (``action.channels[*].twist_field``).
* Safety: the safe behaviour sends nothing (the setpoint stream stops; the firmware levels out after 500 ms and
  stops the motors after 2 s); an e-stop (the service, or leaving the geofence) also calls ``<cf>/emergency``
  (``std_srvs/Empty``), which cuts the motors. Leaving the training box only clamps what the policy sees.
  After activation one all-zero setpoint is sent first: the firmware ignores thrust until it has seen a
  zero-thrust setpoint (``unlock_thrust``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deploy.ros2.frames import Quat, RateFromAttitude, flip_pitch
from deploy.ros2.profiles import ConfigError, NodeConfig, Subscription, stamp_ns
from deploy.ros2.quadrotor import QuadrotorMotorsProfile

TWIST_FIELDS = ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z")
THRUST_MAX = 60000.0  # Crazyswarm2 clamps cmd_vel_legacy thrust to [0, 60000]
MAX_POSE_GAP_S = 0.5  # a longer gap between poses starts the velocity estimate afresh


#: per backend: expected header.frame_id (``{cf}`` = the robot name), child_frame_id, twist frame, legacy pitch,
#: factor from odom twist.angular to rad/s (None: no rates published)
BACKENDS: dict[str, tuple[str, str, str, bool, float | None]] = {
    "cpp": ("{cf}", "", "world", False, None),
    "cflib": ("world", "{cf}", "child", True, math.pi / 180.0),
}
__all__ = ["BACKENDS", "CrazyflieProfile", "flip_pitch"]


class CrazyflieProfile(QuadrotorMotorsProfile):
    """Odometry or pose (+ target) -> ``cmd_vel_legacy`` setpoints for one Crazyswarm2 robot."""

    name = "crazyflie"
    action_type = "attitude_thrust"
    command_type = "geometry_msgs/msg/Twist"

    def __init__(self, cfg: NodeConfig) -> None:
        if cfg.state_source not in ("odom", "pose"):
            raise ConfigError(f"state_source must be 'odom' or 'pose', not {cfg.state_source!r}")
        if cfg.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {sorted(BACKENDS)} (Crazyswarm2's server), not {cfg.backend!r}")
        if not cfg.cf_name.strip("/"):
            raise ConfigError("parameter cf_name is empty (the Crazyswarm2 robot name, e.g. cf1)")
        if cfg.velocity_filter_s < 0 or cfg.angular_velocity_filter_s < 0:
            raise ConfigError("velocity_filter_s and angular_velocity_filter_s must be >= 0")
        name = cfg.cf_name.strip("/").split("/")[-1]
        header, child, twist, legacy, rate_unit = BACKENDS[cfg.backend]
        self.default_frames = (header.format(cf=name), child.format(cf=name), twist)
        self._legacy_pitch = legacy and cfg.state_source == "odom"
        source = cfg.angular_velocity_source
        if source == "auto":
            source = "odom" if cfg.state_source == "odom" and rate_unit is not None else "orientation"
        if source not in ("odom", "orientation"):
            raise ConfigError(f"angular_velocity_source must be 'odom', 'orientation' or 'auto', not {source!r}")
        if source == "odom" and cfg.state_source == "pose":
            raise ConfigError("angular_velocity_source 'odom' needs state_source 'odom' (a pose has no rates)")
        if source == "odom" and rate_unit is None:
            raise ConfigError("backend 'cpp' publishes no angular rates (its odometry leaves twist.angular zero): "
                              "use angular_velocity_source 'orientation' (or 'auto') or the cflib backend")
        self.angular_source, self._rate_unit = source, rate_unit or 1.0
        self._rates = RateFromAttitude(cfg.angular_velocity_filter_s)
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

    def _orientation(self, q: Any) -> tuple[Quat, str | None]:
        quat, problem = super()._orientation(q)
        return (flip_pitch(*quat) if self._legacy_pitch and problem is None else quat), problem

    def _angular(self, tw: Any, r: list[float], frame: str) -> list[float]:
        if self.angular_source == "orientation":
            return self._rates.rate  # updated in _after_odometry (needs this message's stamp)
        k = self._rate_unit  # cflib: gyro in deg/s
        return [w * k for w in super()._angular(tw, r, frame)]

    def _after_odometry(self, stamp: int, quat: Quat) -> None:
        if self.angular_source == "orientation":
            rate = self._rates.update(stamp, quat)
            if "angular_velocity" in self._views:
                self._views["angular_velocity"][:] = rate

    def _check_pose_frame(self, msg: Any) -> str:
        header = str(msg.header.frame_id)
        world = "world" if self.cfg.odom_frame_id == "auto" else self.cfg.odom_frame_id  # both backends: world
        if world != "*" and header != world:
            return f"header.frame_id {header!r}, expected {world!r} (parameter odom_frame_id; '*' accepts any)"
        return ""

    def on_pose(self, msg: Any, received: float) -> bool:
        """``geometry_msgs/PoseStamped``: pose as measured, world velocity from successive positions."""
        why = self._check_pose_frame(msg)
        if why:
            return self.runner.reject("odom", why)
        stamp = stamp_ns(msg)
        if not self.runner.accept("odom", stamp, received, self.now_ns()):
            return False
        quat, problem = self._orientation(msg.pose.orientation)
        if problem:
            self.runner.invalidate("odom", problem)
        self._write_pose(msg.pose.position, quat)
        self._after_odometry(stamp, quat)
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

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "backend": self.cfg.backend, "angular_velocity_source": self.angular_source}

    def unlock_message(self, msg: Any) -> Any | None:
        if not self.cfg.unlock_thrust:
            return None
        for part, axis in (f.split(".") for f in TWIST_FIELDS):
            setattr(getattr(msg, part), axis, 0.0)
        return msg
