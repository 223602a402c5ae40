"""The ``attitude_thrust`` action level: radio link + onboard controller between the policy and the motors.

Each control step (``dt``, the radio's setpoint rate, 100 Hz by default) the policy sends one normalised
action ``a`` in [-1, 1]^4 that maps to a Crazyflie RPYT setpoint ``value = offset + scale * a``: roll (deg),
legacy pitch (deg, positive = nose up), yaw rate (deg/s, counter-clockwise seen from above) and thrust (PWM
units, 0-65535), the fields of Crazyswarm2's ``cmd_vel_legacy`` (``linear.y``, ``linear.x``, ``angular.z``,
``linear.z``). The packet arrives after a per-episode latency drawn uniformly from ``latency_ms``; inside the
step the onboard controller (:mod:`sim.quadrotor.attitude`) runs at its own rate on the newest setpoint that has
arrived, and the rigid body is integrated with RK4 over each controller period.

Per-env vehicles (``vehicles.enabled``, :mod:`sim.quadrotor.vehicles`): the firmware, its gains and its
setpoint -> PWM path are the same on every Crazyflie, so the controller model is unchanged; what differs is what
a PWM value does. As at the motor level, a motor PWM ratio ``u = pwm / 65535`` commands the rotor speed
``max(u * rpm_max_v, idle_v)`` of the env's vehicle (its maximum speed set by its thrust-to-weight ratio and
thrust curve, its idle floor), and the rigid body is the vehicle's (mass, inertia, rotor arms, thrust curve,
yaw ratio, motor time constants up and down). The thrust setpoint that holds a hover therefore differs per
vehicle (:func:`vehicle_hover_thrust`), and the fixed PID gains meet each vehicle's own inertia and arms.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from sim.quadrotor.attitude import (
    PWM_MAX,
    AttitudeController,
    ControllerState,
    controller_params,
    pwm_to_rpm,
)
from sim.quadrotor.config import AttitudeLevelConfig
from sim.quadrotor.dynamics import OMEGA, QUAT, rk4_step
from sim.quadrotor.params import ParamTensors, QuadrotorParams
from sim.quadrotor.vehicles import vehicle_rpm

CHANNELS = ("roll", "pitch", "yaw_rate", "thrust")
TWIST_FIELDS = ("linear.y", "linear.x", "angular.z", "linear.z")


def hover_action(cfg: AttitudeLevelConfig, prm: QuadrotorParams) -> list[float]:
    """The normalised action that holds a hover: level attitude, no yaw rate, the thrust carrying the weight."""
    scale, offset = cfg.scale_offset()
    hover_pwm = (prm.hover_rpm - prm.rpm_min) / (prm.rpm_max - prm.rpm_min) * PWM_MAX
    a = (hover_pwm - offset[3]) / scale[3]
    if not -1.0 < a < 1.0:
        raise ValueError(f"the hover thrust {hover_pwm:.0f} lies outside the thrust range "
                         f"({cfg.thrust_low}, {cfg.thrust_high})")
    return [0.0, 0.0, 0.0, a]


def vehicle_pwm_to_rpm(pwm: torch.Tensor, pt: ParamTensors) -> torch.Tensor:
    """Commanded rotor speeds of motor PWM values on per-env vehicles: ``max(pwm / 65535 * rpm_max, idle)`` (the
    motor level's :func:`~sim.quadrotor.vehicles.vehicle_command_rpm` with the PWM ratio as command fraction)."""
    return torch.maximum(pwm * (pt.rpm_max / PWM_MAX), pt.rpm_min)


def vehicle_hover_thrust(base: QuadrotorParams, v: dict[str, torch.Tensor]) -> torch.Tensor:
    """The thrust setpoint (PWM units) at which each vehicle's rotors carry its weight, level (``[n]``); above the
    firmware's 60000 cap a vehicle cannot hover at this level."""
    _, _, rpm_max, rpm_hover = vehicle_rpm(base, v)
    return PWM_MAX * torch.maximum(rpm_hover, v["idle_rpm"]) / rpm_max


def attitude_action_spec(cfg: AttitudeLevelConfig, prm: QuadrotorParams) -> dict[str, Any]:
    """``policy.json`` ``action`` entry: channels, units, conventions, scaling and the Twist fields."""
    scale, offset = cfg.scale_offset()
    units = ("deg", "deg", "deg/s", "pwm")
    conventions = (
        "firmware roll: right-hand about body x (positive = right side down)",
        "firmware legacy pitch: positive = nose up (minus the right-hand angle about body y)",
        "right-hand about body z (positive = counter-clockwise seen from above)",
        "collective thrust in motor PWM units (0-65535; the firmware caps setpoints at 60000)",
    )
    return {
        "type": "attitude_thrust", "size": 4, "low": -1.0, "high": 1.0,
        "mapping": "value = offset + scale * clip(a, -1, 1)",
        "scale": scale, "offset": offset,
        "channels": [{"name": c, "unit": u, "convention": v, "twist_field": f}
                     for c, u, v, f in zip(CHANNELS, units, conventions, TWIST_FIELDS, strict=True)],
        "message": "geometry_msgs/Twist on <cf>/cmd_vel_legacy (Crazyswarm2)",
        "hover": hover_action(cfg, prm),
        "latency_ms": list(cfg.latency_ms),
        "onboard_controller": controller_params(prm).to_dict(),
        "pwm_to_rpm": f"rpm = {prm.rpm_min:g} + {prm.rpm_max - prm.rpm_min:g} * pwm / 65535",
    }


class AttitudeThrustLevel:
    """Per-env radio queue + controller memory; :meth:`advance` integrates one control step."""

    def __init__(self, cfg: AttitudeLevelConfig, prm: QuadrotorParams, dt: float, num_envs: int,
                 device: torch.device, gen: torch.Generator, per_vehicle: bool = False) -> None:
        lo, hi = cfg.latency_ms
        if not 0 <= lo <= hi:
            raise ValueError(f"attitude.latency_ms must satisfy 0 <= low <= high, got {cfg.latency_ms}")
        if not 0 <= cfg.thrust_low < cfg.thrust_high <= PWM_MAX:
            raise ValueError(f"attitude thrust range must lie in [0, {PWM_MAX:.0f}], got "
                             f"({cfg.thrust_low}, {cfg.thrust_high})")
        self.cfg, self.prm, self.dt, self.n, self.device, self.gen = cfg, prm, dt, num_envs, device, gen
        self.per_vehicle = per_vehicle  # PWM -> RPM by vehicle_pwm_to_rpm; hover setpoints from set_hover_thrust
        self.ctrl_prm = controller_params(prm)
        self.controller = AttitudeController(self.ctrl_prm, device)
        sub = dt * self.ctrl_prm.rate_hz
        self.substeps = round(sub)
        if self.substeps < 1 or abs(sub - self.substeps) > 1e-6:
            raise ValueError(f"the control step {dt} s must be a whole number of controller periods "
                             f"(1/{self.ctrl_prm.rate_hz:g} s)")
        self.h = dt / self.substeps
        self.depth = int(math.ceil(hi * 1e-3 / dt)) + 2  # packets that may still be in flight, + the newest
        scale, offset = cfg.scale_offset()
        self.scale = torch.tensor(scale, device=device)
        self.offset = torch.tensor(offset, device=device)
        self.hover_action = hover_action(cfg, prm)
        self._hover_queue = self.hover_setpoint().expand(num_envs, self.depth, 4)
        self._rows = torch.arange(num_envs, device=device)
        self.queue = torch.zeros(num_envs, self.depth, 4, device=device)  # setpoints, oldest first, [:, -1] newest
        self.latency = torch.zeros(num_envs, device=device)  # s
        z3 = torch.zeros(num_envs, 3, device=device)
        self.ctrl = ControllerState(z3, z3.clone(), z3.clone(), z3.clone(), torch.zeros(num_envs, device=device))

    def setpoint(self, action: torch.Tensor) -> torch.Tensor:
        """Firmware setpoints ``[N, 4]`` of normalised actions."""
        return self.offset + self.scale * action

    def hover_setpoint(self) -> torch.Tensor:
        """The hover setpoint ``[4]`` (firmware units)."""
        return self.setpoint(torch.tensor(self.hover_action, device=self.device))

    def set_hover_thrust(self, thrust: torch.Tensor) -> None:
        """Per-env hover thrust setpoints ``[N]`` (PWM units; per-env vehicles): what a new episode finds in flight."""
        sp = self.hover_setpoint().expand(self.n, 4).clone()
        sp[:, 3] = thrust
        self._hover_queue = sp[:, None].expand(self.n, self.depth, 4)

    def reset(self, mask: torch.Tensor, state: torch.Tensor) -> None:
        """New episodes in ``mask``: hover setpoints in flight, a fresh latency, PIDs reset to the state."""
        lo, hi = self.cfg.latency_ms
        lat = (torch.rand(self.n, generator=self.gen, device=self.device) * (hi - lo) + lo) * 1e-3
        self.latency = torch.where(mask, lat, self.latency)
        self.queue = torch.where(mask[:, None, None], self._hover_queue, self.queue)
        self.ctrl = self.controller.reset_where(mask, self.ctrl, state[:, QUAT], state[:, OMEGA])

    def advance(self, state: torch.Tensor, setpoint: torch.Tensor, pt: ParamTensors, force: torch.Tensor,
                torque: torch.Tensor) -> torch.Tensor:
        """Send ``setpoint`` ``[N, 4]`` (firmware units, see :meth:`setpoint`) now and integrate one control step:
        ``substeps`` controller ticks, each followed by one RK4 step over the controller period.

        At time ``t`` into the step the controller uses the newest packet sent at least ``latency`` ago: the
        packet sent ``k`` steps back with ``k = ceil((latency - t) / dt)``, clamped to the queue.
        """
        self.queue = torch.cat((self.queue[:, 1:], setpoint[:, None]), dim=1)
        rows = self._rows
        for j in range(self.substeps):
            back = torch.ceil((self.latency - j * self.h) / self.dt - 1e-6).clamp(0, self.depth - 1).long()
            sp = self.queue[rows, self.depth - 1 - back]
            self.ctrl, pwm = self.controller.step(self.ctrl, sp, state[:, QUAT], state[:, OMEGA])
            rpm_cmd = vehicle_pwm_to_rpm(pwm, pt) if self.per_vehicle else pwm_to_rpm(pwm, pt.rpm_min, pt.rpm_max)
            state = rk4_step(state, rpm_cmd, pt, self.h, force, torque)
        return state

    def detach(self) -> None:
        self.queue = self.queue.detach()
        self.ctrl = self.ctrl.detach()

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {"env.att.queue": self.queue.clone(), "env.att.latency": self.latency.clone()}
        out.update({f"env.att.ctrl.{k}": v.clone() for k, v in self.ctrl._asdict().items()})
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.queue = state["env.att.queue"].to(self.device).clone()
        self.latency = state["env.att.latency"].to(self.device).clone()
        self.ctrl = ControllerState(**{k: state[f"env.att.ctrl.{k}"].to(self.device).clone()
                                       for k in ControllerState._fields})
