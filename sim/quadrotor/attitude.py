"""Model of the Crazyflie's onboard cascaded attitude/rate PID and motor mixer (``attitude_thrust`` level).

A setpoint in the firmware's legacy RPYT convention (what Crazyswarm2's ``cmd_vel_legacy`` ends up sending)
is turned into four motor commands the way ``controller_pid.c`` / ``attitude_pid_controller.c`` / ``pid.c`` /
``power_distribution_quadrotor.c`` of crazyflie-firmware do it, at the controller's own rate:

* state in firmware units: Euler angles in degrees from the quaternion, with the firmware's *legacy pitch*
  (``state.attitude.pitch = -pitch``: positive = nose up); gyro in deg/s, the pitch rate negated likewise;
* yaw is rate-commanded: the desired yaw integrates the yaw-rate setpoint and wraps to +-180 deg;
* attitude PID (deg -> deg/s) then rate PID (deg/s -> int16 actuator units): ``kp e + ki I + kd D`` with the
  integral clamped to +-``i_limit`` and the derivative taken on the measurement (no setpoint kick); the rate
  outputs saturate at +-32767 (the firmware's int16 cast, whose sub-unit truncation is not modelled so the
  model stays differentiable);
* legacy quad-X mixer ``m1 = T - r/2 + p/2 - y``, ``m2 = T - r/2 - p/2 + y``, ``m3 = T + r/2 - p/2 - y``,
  ``m4 = T + r/2 + p/2 + y`` (``y`` = yaw PID output; the firmware negates it before mixing), then the
  firmware's cap: if a motor exceeds 65535 all are lowered by the excess (attitude authority is kept),
  then each is clamped to [0, 65535];
* PWM -> commanded rotor speed ``rpm = rpm_min + (rpm_max - rpm_min) * pwm / 65535``: the inverse of the
  RPM -> PWM-ratio map the paper's onboard deployment (and ``firmware/crazyflie``) uses;
* setpoint thrust: below 1000 -> 0 (motors off, all PIDs reset), above 60000 -> 60000 (``crtp_commander_rpyt.c``).

Gains and limits come from the frame's YAML (``attitude_controller:``), by default the values of
``platform_defaults_cf2.h`` (the PID derivative low-pass filters are disabled there, so none is modelled).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import torch

PWM_MAX = 65535.0
INT16_MAX = 32767.0
AXES = ("roll", "pitch", "yaw")


@dataclass(frozen=True)
class PIDGains:
    """One PID per axis (roll, pitch, yaw); ``i_limit`` clamps the integral (0 = no clamp)."""

    kp: tuple[float, float, float]
    ki: tuple[float, float, float]
    kd: tuple[float, float, float]
    i_limit: tuple[float, float, float]


@dataclass(frozen=True)
class AttitudeControllerParams:
    """The onboard attitude controller of a frame (section ``attitude_controller`` of its YAML)."""

    rate_hz: float
    """Update rate of the attitude and rate PIDs (ATTITUDE_RATE, 500 Hz on the Crazyflie)."""
    attitude: PIDGains
    """Angle loop: error in deg -> desired body rate in deg/s."""
    rate: PIDGains
    """Rate loop: error in deg/s -> actuator units (int16) for the mixer."""
    thrust_min: float = 1000.0
    """Setpoint thrust below this is treated as 0 (motors off)."""
    thrust_max: float = 60000.0
    """Setpoint thrust is capped here."""
    source: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "attitude_controller") -> AttitudeControllerParams:
        """Parse the YAML section; a missing or malformed entry raises ValueError naming it."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a mapping")

        def gains(name: str) -> PIDGains:
            sec = data.get(name)
            if not isinstance(sec, dict):
                raise ValueError(f"{where}.{name}: expected a mapping with kp, ki, kd, i_limit")
            vals = {}
            for f in fields(PIDGains):
                v = sec.get(f.name)
                if not (isinstance(v, (list, tuple)) and len(v) == 3):
                    raise ValueError(f"{where}.{name}.{f.name}: expected 3 numbers (roll, pitch, yaw)")
                vals[f.name] = tuple(float(x) for x in v)
            return PIDGains(**vals)

        if "rate_hz" not in data or float(data["rate_hz"]) <= 0:
            raise ValueError(f"{where}.rate_hz: expected a positive number")
        out = cls(rate_hz=float(data["rate_hz"]), attitude=gains("attitude"), rate=gains("rate"),
                  thrust_min=float(data.get("thrust_min", 1000.0)), thrust_max=float(data.get("thrust_max", 60000.0)),
                  source=str(data.get("source", "")))
        if not 0 <= out.thrust_min < out.thrust_max <= PWM_MAX:
            raise ValueError(f"{where}: need 0 <= thrust_min < thrust_max <= {PWM_MAX:.0f}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ControllerState(NamedTuple):
    """Per-env PID memory, all ``[N, 3]`` (roll, pitch, yaw) except ``yaw_desired`` ``[N]``, firmware units."""

    att_integ: torch.Tensor
    att_prev: torch.Tensor
    rate_integ: torch.Tensor
    rate_prev: torch.Tensor
    yaw_desired: torch.Tensor

    def detach(self) -> ControllerState:
        return ControllerState(*(t.detach() for t in self))


def firmware_attitude(quat: torch.Tensor, omega: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Euler angles (deg, legacy pitch) and gyro (deg/s, pitch negated) as the firmware's PID sees them.

    ``quat`` ``[N, 4]`` (w, x, y, z, body-to-world), ``omega`` ``[N, 3]`` body rates in rad/s.
    """
    w, x, y, z = quat.unbind(-1)
    deg = 180.0 / math.pi
    yaw = torch.atan2(2 * (x * y + w * z), w * w + x * x - y * y - z * z)
    pitch = torch.asin((-2 * (x * z - w * y)).clamp(-1.0, 1.0))
    roll = torch.atan2(2 * (y * z + w * x), w * w - x * x - y * y + z * z)
    angles = torch.stack((roll, -pitch, yaw), dim=-1) * deg
    sign = torch.tensor([1.0, -1.0, 1.0], dtype=omega.dtype, device=omega.device)
    return angles, omega * (sign * deg)


def wrap_deg(a: torch.Tensor) -> torch.Tensor:
    """Wrap angles to [-180, 180) degrees."""
    return torch.remainder(a + 180.0, 360.0) - 180.0


class AttitudeController:
    """Batched, differentiable torch implementation of the model described in the module docstring."""

    def __init__(self, prm: AttitudeControllerParams, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.prm = prm
        self.dt = 1.0 / prm.rate_hz

        def t(v: tuple[float, ...]) -> torch.Tensor:
            return torch.tensor(v, dtype=dtype, device=device)

        a, r = prm.attitude, prm.rate
        self.att = (t(a.kp), t(a.ki), t(a.kd), t(a.i_limit))
        self.rate = (t(r.kp), t(r.ki), t(r.kd), t(r.i_limit))
        # motor i = thrust + mix[i] . (roll_out, pitch_out, yaw_out)
        self.mix = t((-0.5, 0.5, -1.0, -0.5, -0.5, 1.0, 0.5, -0.5, -1.0, 0.5, 0.5, 1.0)).reshape(4, 3)

    def reset_state(self, quat: torch.Tensor, omega: torch.Tensor) -> ControllerState:
        """Fresh PID memory for the current attitude (``controllerResetAllPids``: no derivative kick)."""
        angles, gyro = firmware_attitude(quat, omega)
        zeros = torch.zeros_like(angles)
        return ControllerState(zeros, angles, zeros.clone(), gyro, angles[:, 2])

    def reset_where(self, mask: torch.Tensor, st: ControllerState, quat: torch.Tensor,
                    omega: torch.Tensor) -> ControllerState:
        """Reset the envs in ``mask`` and keep the others."""
        fresh = self.reset_state(quat, omega)
        m3 = mask[:, None]
        return ControllerState(*(torch.where(m3 if a.ndim == 2 else mask, b, a) for a, b in zip(st, fresh,
                                                                                                   strict=True)))

    def _pid(self, gains: tuple[torch.Tensor, ...], err: torch.Tensor, measured: torch.Tensor,
             integ: torch.Tensor, prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kp, ki, kd, lim = gains
        integ = integ + err * self.dt
        integ = torch.where(lim > 0, torch.maximum(torch.minimum(integ, lim), -lim), integ)
        deriv = (prev - measured) / self.dt
        return kp * err + ki * integ + kd * deriv, integ

    def step(self, st: ControllerState, setpoint: torch.Tensor, quat: torch.Tensor,
             omega: torch.Tensor) -> tuple[ControllerState, torch.Tensor]:
        """One controller tick: ``setpoint`` ``[N, 4]`` = (roll deg, legacy pitch deg, yaw rate deg/s, thrust
        0-65535) in the firmware's RPYT convention -> (new state, motor PWM ``[N, 4]`` in [0, 65535])."""
        prm = self.prm
        angles, gyro = firmware_attitude(quat, omega)
        thrust = setpoint[:, 3]
        thrust = torch.where(thrust < prm.thrust_min, torch.zeros_like(thrust), thrust.clamp(max=prm.thrust_max))
        yaw_des = wrap_deg(st.yaw_desired + setpoint[:, 2] * self.dt)
        desired = torch.stack((setpoint[:, 0], setpoint[:, 1], yaw_des), dim=-1)
        err = desired - angles
        err = torch.cat((err[:, :2], wrap_deg(err[:, 2:])), dim=-1)
        rate_des, att_integ = self._pid(self.att, err, angles, st.att_integ, st.att_prev)
        out, rate_integ = self._pid(self.rate, rate_des - gyro, gyro, st.rate_integ, st.rate_prev)
        out = out.clamp(-INT16_MAX, INT16_MAX)
        motors = thrust[:, None] + out @ self.mix.T
        excess = (motors.amax(-1, keepdim=True) - PWM_MAX).clamp(min=0.0)
        motors = (motors - excess).clamp(0.0, PWM_MAX)
        on = thrust > 0
        motors = torch.where(on[:, None], motors, torch.zeros_like(motors))
        new = ControllerState(att_integ, angles, rate_integ, gyro, yaw_des)
        if not bool(on.all()):  # thrust 0: the firmware resets every PID and the yaw setpoint
            new = self.reset_where(~on, new, quat, omega)
        return new, motors


def pwm_to_rpm(pwm: torch.Tensor, rpm_min: float, rpm_max: float) -> torch.Tensor:
    """Commanded rotor speed of a motor PWM value (0-65535): linear, the inverse of the deployment's map."""
    return rpm_min + (rpm_max - rpm_min) * (pwm / PWM_MAX)


def controller_params(frame_params: Any) -> AttitudeControllerParams:
    """The ``attitude_controller`` section of a frame (:class:`~sim.quadrotor.params.QuadrotorParams`)."""
    data = frame_params.extra.get("attitude_controller")
    if data is None:
        raise ValueError(f"frame {frame_params.name!r} has no attitude_controller section in its YAML: the "
                         "attitude_thrust action level needs the onboard controller's gains")
    return AttitudeControllerParams.from_dict(data, f"{frame_params.name}.attitude_controller")
