"""``quadrotor_motors`` profile: odometry (+ target) -> 4 motor commands (no rclpy import).

Odometry follows REP 105: pose in ``header.frame_id`` (the world), twist in ``child_frame_id`` (the body). Frames
are checked against ``odom_frame_id`` / ``odom_child_frame_id`` (``"*"`` accepts any): a twist whose
``child_frame_id`` is the world frame itself is known to be a world-frame twist and used as such; an empty
``child_frame_id`` falls back to ``twist_frame``; any other frame refuses the message (counted, named on the
diagnostics and in the stale reason). The policy sees the linear velocity in the world frame and the angular
velocity in the body frame, whatever frame the twist came in.

Training box vs. safety: the position error the policy sees is clamped into the export's training box by the
runtime (reported on the diagnostics, the vehicle keeps flying); only leaving the user's geofence
(``geofence_min``/``geofence_max``, world frame) latches the e-stop (motors off), besides the runtime's faults
(non-finite or implausible input, stale input, e-stop).
"""

from __future__ import annotations

import math
from typing import Any

from deploy.ros2.frames import Quat, quat_to_rotmat, rotate, rotate_t
from deploy.ros2.profiles import ConfigError, NodeConfig, Profile, Subscription, stamp_ns

QUAT_NORM_TOLERANCE = 1e-2


class QuadrotorMotorsProfile(Profile):
    """Odometry (+ target) -> 4 motor commands."""

    name = "quadrotor_motors"
    action_type = "motor_rpm"
    supported = ("position", "rotation_matrix", "quaternion", "linear_velocity", "angular_velocity",
                 "action_history")
    command_type = "std_msgs/msg/Float32MultiArray"
    default_frames = ("odom", "base_link", "child")  # header.frame_id, child_frame_id, twist frame if child empty

    def __init__(self, cfg: NodeConfig) -> None:
        super().__init__(cfg)
        header, child, twist = self.default_frames
        self.frame_id = header if cfg.odom_frame_id == "auto" else cfg.odom_frame_id
        self.child_frame_id = child if cfg.odom_child_frame_id == "auto" else cfg.odom_child_frame_id
        self.twist_frame = twist if cfg.twist_frame == "auto" else cfg.twist_frame
        if self.twist_frame not in ("child", "world"):
            raise ConfigError(f"twist_frame must be 'child', 'world' or 'auto', not {cfg.twist_frame!r}")
        if len(cfg.target) != 3:
            raise ConfigError(f"target needs 3 values (x, y, z), got {len(cfg.target)}")
        if len(cfg.geofence_min) != 3 or len(cfg.geofence_max) != 3 or any(
                not lo < hi for lo, hi in zip(cfg.geofence_min, cfg.geofence_max, strict=True)):
            raise ConfigError("geofence_min/geofence_max need 3 values each with min < max (world frame, m; "
                              "-.inf/.inf leave an axis open)")
        sources: dict[str, float | None] = {"odom": cfg.input_timeout_s}
        if cfg.target_topic:
            sources["target"] = None
        self.runner = self._load(sources, command_low=cfg.command_low, command_high=cfg.command_high,
                                 command_unit=cfg.command_unit)
        if self.runner.action_size != 4:
            raise ConfigError(f"profile {self.name!r} needs 4 motor actions, the model has "
                              f"{self.runner.action_size}")
        self.target = [float(v) for v in cfg.target]
        self._fence = (list(cfg.geofence_min), list(cfg.geofence_max))
        self._pos = [math.nan] * 3
        self._unstamped_target = False
        self._views = {c: self.runner.view(c) for c in self.runner.components if c != "action_history"}

    @property
    def command_topic(self) -> str:
        return self.cfg.motor_topic

    def subscriptions(self) -> list[Subscription]:
        subs = [Subscription(self.cfg.odom_topic, "nav_msgs/msg/Odometry", self.on_odometry)]
        if self.cfg.target_topic:
            subs.append(Subscription(self.cfg.target_topic, "geometry_msgs/msg/PoseStamped", self.on_target))
        return subs

    # ------------------------------------------------------------------ target
    def _write_position(self) -> None:
        v = self._views.get("position")
        if v is not None:
            v[:] = [p - t for p, t in zip(self._pos, self.target, strict=True)]

    def on_target(self, msg: Any, received: float) -> bool:
        """``geometry_msgs/PoseStamped`` target (only the position is used).

        A target stamped 0 (e.g. ``ros2 topic pub`` without a stamp) is applied in arrival order, with one
        notice; a stamped one must be newer than the last stamped one.
        """
        stamp = stamp_ns(msg)
        if stamp == 0:
            if not self._unstamped_target:
                self._unstamped_target = True
                self.runner.notices.append("target messages are unstamped (header.stamp = 0): applied in "
                                           "arrival order")
            src = self.runner.sources["target"]
            src.received, src.count = received, src.count + 1
        elif not self.runner.accept("target", stamp, received, self.now_ns()):
            return False
        p = msg.pose.position
        target = [float(p.x), float(p.y), float(p.z)]
        if not all(math.isfinite(v) for v in target):
            self.runner.invalidate("target", f"non-finite target {target}")
        self.target = target
        self._write_position()
        return True

    def set_live(self, name: str, value: Any) -> str | None:
        """``target`` applies at once (the position error is clamped into the training box anyway)."""
        if name != "target":
            return super().set_live(name, value)
        if self.cfg.target_topic:
            return f"the target comes from target_topic {self.cfg.target_topic!r}"
        try:
            target = [float(v) for v in value]
        except (TypeError, ValueError):
            return f"target must be 3 numbers, got {value!r}"
        if len(target) != 3 or not all(math.isfinite(v) for v in target):
            return f"target needs 3 finite values (x, y, z), got {value!r}"
        self.target = target
        self._write_position()
        return None

    # ------------------------------------------------------------------ state
    def _orientation(self, q: Any) -> tuple[Quat, str | None]:
        """Unit quaternion (w, x, y, z) of a message orientation, and what is wrong with it (``None``: nothing)."""
        w, x, y, z = float(q.w), float(q.x), float(q.y), float(q.z)
        norm = math.sqrt(w * w + x * x + y * y + z * z)
        if not math.isfinite(norm):
            return (math.nan,) * 4, "non-finite orientation quaternion"
        if not abs(norm - 1.0) < QUAT_NORM_TOLERANCE:
            return (math.nan,) * 4, f"non-unit orientation quaternion (norm {norm:.4g})"
        return (w / norm, x / norm, y / norm, z / norm), None

    def _write_pose(self, p: Any, quat: Quat) -> list[float]:
        """Write position - target, rotation matrix and quaternion; check the geofence; return the rotation."""
        r = quat_to_rotmat(*quat)
        self._pos = pos = [float(p.x), float(p.y), float(p.z)]
        self._write_position()
        views = self._views
        if "rotation_matrix" in views:
            views["rotation_matrix"][:] = r
        if "quaternion" in views:
            views["quaternion"][:] = quat
        lo, hi = self._fence
        if any(v < a or v > b for v, a, b in zip(pos, lo, hi, strict=True)):
            self.runner.estop(f"geofence: position ({pos[0]:.2f}, {pos[1]:.2f}, {pos[2]:.2f}) m outside "
                              f"[{lo[0]:g}, {hi[0]:g}] x [{lo[1]:g}, {hi[1]:g}] x [{lo[2]:g}, {hi[2]:g}]")
        return r

    def _check_frames(self, msg: Any) -> tuple[str | None, str]:
        """The twist's frame (``child`` or ``world``), or ``None`` and why the message is refused."""
        header = str(msg.header.frame_id)
        child = str(getattr(msg, "child_frame_id", ""))
        if self.frame_id != "*" and header != self.frame_id:
            return None, (f"header.frame_id {header!r}, expected {self.frame_id!r} (parameter odom_frame_id; "
                          f"'*' accepts any)")
        if child and child == header:
            return "world", ""  # a twist expressed in the world frame itself: known, converted below
        if not child:
            return self.twist_frame, ""
        if self.child_frame_id != "*" and child != self.child_frame_id:
            return None, (f"child_frame_id {child!r}, expected {self.child_frame_id!r} or the world frame "
                          f"{header!r} (parameter odom_child_frame_id; '*' accepts any)")
        return "child", ""

    def _angular(self, tw: Any, r: list[float], frame: str) -> list[float]:
        """Body angular velocity (rad/s) from the message twist."""
        w = [float(tw.angular.x), float(tw.angular.y), float(tw.angular.z)]
        return rotate_t(r, w) if frame == "world" else w

    def on_odometry(self, msg: Any, received: float) -> bool:
        """``nav_msgs/Odometry``: write position - target, attitude, world linear and body angular velocity."""
        frame, why = self._check_frames(msg)
        if frame is None:
            return self.runner.reject("odom", why)
        stamp = stamp_ns(msg)
        if not self.runner.accept("odom", stamp, received, self.now_ns()):
            return False
        pose, tw = msg.pose.pose, msg.twist.twist
        quat, problem = self._orientation(pose.orientation)
        if problem:
            self.runner.invalidate("odom", problem)
        r = self._write_pose(pose.position, quat)
        views = self._views
        if "linear_velocity" in views:
            v = [float(tw.linear.x), float(tw.linear.y), float(tw.linear.z)]
            views["linear_velocity"][:] = rotate(r, v) if frame == "child" else v
        if "angular_velocity" in views:
            views["angular_velocity"][:] = self._angular(tw, r, frame)
        self._after_odometry(stamp, quat)
        return True

    def _after_odometry(self, stamp: int, quat: Quat) -> None:
        """Hook for subclasses (rates from attitude)."""

    def stats(self) -> dict[str, Any]:
        return {"frames": f"{self.frame_id} -> {self.child_frame_id} (empty child: {self.twist_frame})"}
