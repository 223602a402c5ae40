"""A simulated Crazyflie as Crazyswarm2 drives it: ``cmd_vel_legacy`` in, odometry out (no ROS imports here).

:class:`CommanderModel` reproduces what happens to a ``geometry_msgs/Twist`` between Crazyswarm2 and the
firmware's PID: Crazyswarm2 maps roll = ``linear.y``, pitch = ``-linear.x``, yaw rate = ``angular.z``, thrust =
``int(clamp(linear.z, 0, 60000))`` and cflib negates pitch on the wire, so the firmware receives (``linear.y``,
``linear.x``, ``angular.z``, thrust); the RPYT decoder ignores thrust until it has seen a zero-thrust setpoint
(thrust lock); the commander levels out (roll = pitch = yaw rate = 0, thrust kept) 500 ms after the last
setpoint and stops the motors after 2 s; ``emergency`` stops the motors for good.

:class:`SimulatedCrazyflie` flies the frame with the same radio link and onboard controller model as the
``attitude_thrust`` action level (:class:`~sim.quadrotor.attitude_level.AttitudeThrustLevel`). Until the first
setpoint it hovers in place (as after a Crazyswarm2 takeoff under the high-level commander); a ground plane at
z = 0 stops a falling drone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sim.quadrotor.attitude_level import AttitudeThrustLevel
from sim.quadrotor.config import AttitudeLevelConfig
from sim.quadrotor.dynamics import OMEGA, POS, QUAT, RPM, STATE_DIM, VEL, quat_to_rotmat
from sim.quadrotor.task import resolve_frame

LEVEL_AFTER_S = 0.5  # COMMANDER_WDT_TIMEOUT_STABILIZE
SHUTDOWN_AFTER_S = 2.0  # COMMANDER_WDT_TIMEOUT_SHUTDOWN
THRUST_MAX = 60000


def twist_to_setpoint(linear: tuple[float, float, float], angular_z: float) -> tuple[float, float, float, int]:
    """Firmware RPYT setpoint (roll deg, legacy pitch deg, yaw rate deg/s, thrust) of a ``cmd_vel_legacy`` Twist."""
    thrust = int(min(max(linear[2], 0.0), THRUST_MAX))
    return float(linear[1]), float(linear[0]), float(angular_z), thrust


class CommanderModel:
    """Setpoint bookkeeping of the firmware: thrust lock, setpoint watchdog, emergency stop."""

    def __init__(self) -> None:
        self.thrust_locked = True
        self.emergency = False
        self.last_time: float | None = None
        self.setpoint = (0.0, 0.0, 0.0, 0.0)

    def receive(self, setpoint: tuple[float, float, float, int], now: float) -> None:
        roll, pitch, yaw_rate, thrust = setpoint
        if thrust == 0:
            self.thrust_locked = False
        self.setpoint = (roll, pitch, yaw_rate, 0.0 if self.thrust_locked else float(thrust))
        self.last_time = now

    def current(self, now: float) -> tuple[float, float, float, float] | None:
        """The setpoint in force at ``now``; ``None`` before the first one (the high-level hover holds)."""
        if self.emergency:
            return 0.0, 0.0, 0.0, 0.0
        if self.last_time is None:
            return None
        age = now - self.last_time
        if age > SHUTDOWN_AFTER_S:
            return 0.0, 0.0, 0.0, 0.0
        if age > LEVEL_AFTER_S:
            return 0.0, 0.0, 0.0, self.setpoint[3]
        return self.setpoint


@dataclass
class VehicleConfig:
    """The simulated Crazyflie behind the topics."""

    frame: str = "crazyflie"
    rate_hz: float = 100.0
    """Simulation step and odometry rate (Hz); the controller runs at its own rate inside."""
    latency_ms: float = 10.0
    """Radio latency added to every setpoint (ms)."""
    start: tuple[float, float, float] = (0.0, 0.0, 1.0)
    """Hover position before the first setpoint (m, world)."""
    seed: int = 0


class SimulatedCrazyflie:
    """One Crazyflie: ``step(setpoint or None)`` advances ``1 / rate_hz`` seconds."""

    def __init__(self, cfg: VehicleConfig) -> None:
        self.cfg = cfg
        self.prm = resolve_frame(cfg.frame)
        self.dt = 1.0 / cfg.rate_hz
        gen = torch.Generator().manual_seed(cfg.seed)
        link = AttitudeLevelConfig(latency_ms=(cfg.latency_ms, cfg.latency_ms))
        self.level = AttitudeThrustLevel(link, self.prm, self.dt, 1, torch.device("cpu"), gen)
        self.pt = self.prm.tensors(1)
        self.zero = torch.zeros(1, 3)
        self.state = torch.zeros(1, STATE_DIM)
        self.state[0, POS] = torch.tensor(cfg.start, dtype=torch.float32)
        self.state[0, 3] = 1.0
        self.state[0, RPM] = self.prm.hover_rpm
        self.level.reset(torch.ones(1, dtype=torch.bool), self.state)
        self.time = 0.0
        self.on_ground = False

    @torch.no_grad()
    def step(self, setpoint: tuple[float, float, float, float] | None) -> None:
        """Advance one step; ``None`` holds the current hover (no setpoint has arrived yet)."""
        self.time += self.dt
        if setpoint is None or self.on_ground:
            if not self.on_ground:
                self.level.reset(torch.ones(1, dtype=torch.bool), self.state)
            return
        sp = torch.tensor([setpoint], dtype=torch.float32)
        self.state = self.level.advance(self.state, sp, self.pt, self.zero, self.zero)
        if self.state[0, 2] <= 0.0 or not bool(torch.isfinite(self.state).all()):
            self.on_ground = True
            self.state[0, 2] = 0.0
            self.state[0, VEL] = 0.0
            self.state[0, OMEGA] = 0.0

    def odometry(self) -> dict[str, list[float]]:
        """Position, quaternion (w, x, y, z), linear velocity in the body frame (REP 105), body rates."""
        s = self.state[0]
        rot = quat_to_rotmat(s[QUAT][None])[0]
        return {"position": s[POS].tolist(), "quaternion": s[QUAT].tolist(),
                "linear_velocity_body": (rot.T @ s[VEL]).tolist(), "angular_velocity": s[OMEGA].tolist()}


def hold_check(times: list[float], errors: list[float], step_time: float, radius: float = 0.1,
               hold_s: float = 10.0, settle_s: float = 5.0) -> dict[str, float | bool]:
    """Did the drone settle within ``settle_s`` of the target step and then hold within ``radius`` for ``hold_s``?

    ``errors`` are distances to the (stepped) target at ``times``. The hold starts at the earliest sample after
    the step from which the error stays below ``radius`` for ``hold_s`` seconds (passing through the radius
    while overshooting does not count as settled).
    """
    after = [(t, e) for t, e in zip(times, errors, strict=True) if t >= step_time]
    next_bad, bad_t = [math.inf] * len(after), math.inf
    for k in range(len(after) - 1, -1, -1):  # time of the next sample outside the radius, from sample k on
        if after[k][1] >= radius:
            bad_t = after[k][0]
        next_bad[k] = bad_t
    end = after[-1][0] if after else -math.inf
    start = next((t for (t, _), nb in zip(after, next_bad, strict=True) if nb > t + hold_s and end >= t + hold_s),
                 math.inf)
    window = [e for t, e in after if start <= t <= start + hold_s]
    return {"settle_time_s": start - step_time, "hold_max_error_m": max(window) if window else math.inf,
            "hold_median_error_m": sorted(window)[len(window) // 2] if window else math.inf,
            "passed": start - step_time <= settle_s}
