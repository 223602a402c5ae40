"""A distribution of Crazyflie-class vehicles: per-env physical parameters drawn from published spans.

Identified Crazyflie 2.x models disagree far beyond a few percent (issue 14): mass 27-33 g; inertia up to
1.7e-5 kg m^2 roll/pitch and 3.0e-5 yaw (4.4x and 5x the L2F paper's); thrust at a given RPM 0.8-1.0x the
paper's curve, some with a linear term; yaw torque per thrust 0.006-0.034 m; motor time constants 0.07-0.15 s,
different up and down; idle floors of several thousand RPM; thrust-to-weight at full command 1.3-2.3; rotor arms
from the paper's 0.028 m per axis to the Crazyflie 2.x frame's 0.0325 m. :class:`VehicleDistribution` spans
that; :func:`sample_vehicles` draws one vehicle per env from a torch generator (so a seed fixes every draw), and
:func:`vehicle_param_tensors` turns the draws into the batched :class:`~sim.quadrotor.params.ParamTensors` the
dynamics integrate.

The policy's action keeps its exported meaning (a motor command fraction ``u = (a + 1) / 2``, which the
Crazyflie firmware turns into a PWM ratio); the vehicle decides what that fraction does: its commanded rotor
speed is ``max(u * rpm_max_v, idle_v)`` with ``rpm_max_v`` chosen so that full command gives the drawn
thrust-to-weight ratio. On the paper's model (no idle floor) this is the paper's mapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from sim.quadrotor.dynamics import rotor_speed_for_thrust
from sim.quadrotor.params import ParamTensors, QuadrotorParams

# Names of the per-vehicle values, in the order of :func:`sample_vehicles`' columns.
VEHICLE_KEYS = ("mass", "inertia_xy_scale", "inertia_z_scale", "thrust_scale", "thrust_linear_fraction",
                "torque_ratio", "motor_tau_up", "motor_tau_down", "idle_rpm", "thrust_to_weight", "arm_scale",
                "latency_steps", "obs_noise_scale")
# 1: the top of a parameter's range is the hard end (heavier, slower spin-up, ...); 0: the bottom (less thrust)
HARD_END = {"mass": 1, "inertia_xy_scale": 1, "inertia_z_scale": 1, "thrust_scale": 0, "thrust_linear_fraction": 1,
            "torque_ratio": 1, "motor_tau_up": 1, "motor_tau_down": 0, "idle_rpm": 1, "thrust_to_weight": 0,
            "arm_scale": 0, "latency_steps": 1, "obs_noise_scale": 1}


@dataclass
class VehicleDistribution:
    """Uniform ranges ``(low, high)`` of each vehicle parameter (inertia: log-uniform). Off by default.

    Defaults: the span of published Crazyflie 2.x identifications (issue 14). Units: kg, m, s, RPM; scales are
    relative to the frame file's (the L2F paper's) values.
    """

    enabled: bool = False
    mass: tuple[float, float] = (0.027, 0.033)
    inertia_xy_scale: tuple[float, float] = (1.0, 4.42)
    """Roll/pitch inertia over the paper's 3.85e-6 kg m^2 (log-uniform), up to the largest published 1.7e-5."""
    inertia_z_scale: tuple[float, float] = (1.0, 5.0)
    """Yaw inertia over the paper's 5.97e-6 kg m^2 (log-uniform, independent of roll/pitch), up to 3.0e-5."""
    thrust_scale: tuple[float, float] = (0.8, 1.0)
    """Thrust at the paper's hover speed (14,476 RPM) over the paper's curve."""
    thrust_linear_fraction: tuple[float, float] = (0.0, 0.3)
    """Share of that thrust from a linear term: f = s k_f ((1 - l) w^2 + l w_h w)."""
    torque_ratio: tuple[float, float] = (0.006, 0.034)
    """Yaw reaction torque per unit thrust (m)."""
    motor_tau_up: tuple[float, float] = (0.07, 0.15)
    """Rotor-speed time constant while speeding up (s)."""
    motor_tau_down: tuple[float, float] = (0.07, 0.15)
    """... while slowing down (s), drawn independently (asymmetric motors)."""
    idle_rpm: tuple[float, float] = (0.0, 6000.0)
    """Idle floor: the rotor speed the motor never goes below in flight (RPM)."""
    thrust_to_weight: tuple[float, float] = (1.3, 2.3)
    """Total thrust at full command over the weight (sets the vehicle's maximum RPM)."""
    arm_scale: tuple[float, float] = (1.0, 1.16)
    """Rotor positions over the paper's (0.028 m per axis), up to the Crazyflie 2.x frame's 92 mm between
    diagonal motors (0.0325 m per axis)."""
    latency_steps: tuple[int, int] = (0, 2)
    """Observation latency in control steps (inclusive; at 100 Hz: 0-20 ms)."""
    obs_noise_scale: tuple[float, float] = (0.5, 2.0)
    """Actor observation noise over the task's ``obs_noise_*``."""
    hard_fraction: float = 0.0
    """Share of the envs (the first ``round(hard_fraction * N)`` by index) that draw ``hard_keys`` from the hard
    ``hard_share`` of their ranges (training only: oversamples the weak, slow, heavy tail where the crashes are;
    0: every env draws from the whole span, bit-identical to before)."""
    hard_share: float = 0.3
    """The hard end of each of ``hard_keys``' ranges those envs draw from (inertia: in log space)."""
    hard_keys: tuple[str, ...] = ("thrust_to_weight", "motor_tau_up", "inertia_xy_scale")
    """Parameters drawn from their hard end in the hard envs (which end: :data:`HARD_END`)."""
    replay_fraction: float = 0.0
    """Outcome-prioritised resampling (training only, ``vehicle_replay.py``): the probability that a reset
    re-flies a vehicle from the ring of recent crash vehicles instead of a fresh draw (0: off, draws as before)."""
    replay_capacity: int = 256
    """Size of that ring (the most recent crash vehicles)."""
    replay_once: bool = False
    """Each ring entry is re-flown once, then removed (every crash vehicle gets one more episode)."""
    seed: int | None = None
    """None: vehicles come from the env's random stream (training: the run's seed fixes them); a number: from
    a generator of their own with this seed, restarted by ``reset(seed=...)`` (held-out evaluation vehicles,
    independent of the episode seed)."""

    def ranges(self) -> dict[str, tuple[float, float]]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in VEHICLE_KEYS}

    def num_hard(self, n: int) -> int:
        """How many of ``n`` envs (the first ones) draw from :meth:`hard_ranges`."""
        return int(round(self.hard_fraction * n))

    def hard_ranges(self) -> dict[str, tuple[float, float]]:
        """The ranges the hard envs draw from: ``hard_keys`` cut to the hard ``hard_share`` of their range."""
        out = self.ranges()
        for k in self.hard_keys:
            lo, hi = out[k]
            a, b = (math.log(lo), math.log(hi)) if k.startswith("inertia") else (lo, hi)
            a, b = (b - self.hard_share * (b - a), b) if HARD_END[k] else (a, a + self.hard_share * (b - a))
            out[k] = (math.exp(a), math.exp(b)) if k.startswith("inertia") else (a, b)
        return out

    def widened(self, margin: float = 0.1) -> VehicleDistribution:
        """Every range grown by ``margin`` of its width on each side (physical bounds kept; latency one step
        longer when ``margin`` > 0): the held-out evaluation distribution, wider than training."""
        floors = {"thrust_linear_fraction": 0.0, "idle_rpm": 0.0, "inertia_xy_scale": 0.5, "inertia_z_scale": 0.5,
                  "thrust_to_weight": 1.15, "obs_noise_scale": 0.0, "motor_tau_up": 0.02, "motor_tau_down": 0.02}
        out = {}
        for name, (lo, hi) in self.ranges().items():
            if name == "latency_steps":
                out[name] = (lo, hi + (margin > 0))
                continue
            w = margin * (hi - lo)
            out[name] = (max(lo - w, floors.get(name, 0.0)), hi + w)
        return replace(self, enabled=True, **out)

    def check(self) -> None:
        for name, (lo, hi) in self.ranges().items():
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError(f"vehicles.{name}: finite numbers only, got ({lo}, {hi})")
            if not lo <= hi:
                raise ValueError(f"vehicles.{name}: need low <= high, got ({lo}, {hi})")
        if any(x != int(x) for x in self.latency_steps):
            raise ValueError(f"vehicles.latency_steps: whole numbers of control steps, got {self.latency_steps}")
        bad = [k for k in self.hard_keys if k not in HARD_END or k == "latency_steps"]
        if bad or not 0.0 <= self.hard_fraction <= 1.0 or not 0.0 < self.hard_share <= 1.0:
            raise ValueError(f"vehicles: need hard_fraction in [0, 1], hard_share in (0, 1] and hard_keys among "
                             f"the continuous {VEHICLE_KEYS}, got {self.hard_fraction}, {self.hard_share}, {bad}")
        if not 0.0 <= self.replay_fraction <= 1.0 or self.replay_capacity < 1 or (
                self.replay_fraction > 0 and self.seed is not None):
            raise ValueError(f"vehicles: need replay_fraction in [0, 1], replay_capacity >= 1 and no vehicle seed "
                             f"with replay (training only), got {self.replay_fraction}, {self.replay_capacity}, "
                             f"seed {self.seed}")
        if self.thrust_to_weight[0] <= 1.0 or self.mass[0] <= 0 or self.latency_steps[0] < 0:
            raise ValueError("vehicles: need thrust_to_weight > 1, mass > 0 and latency_steps >= 0")


def sample_vehicles(dist: VehicleDistribution, n: int, gen: torch.Generator,
                    device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """``n`` vehicles ``{name: [n]}`` (names :data:`VEHICLE_KEYS`), drawn from ``gen`` in a fixed order (the
    first ``dist.num_hard(n)`` from :meth:`VehicleDistribution.hard_ranges`, with the same draws)."""
    out, k = {}, dist.num_hard(n)
    hard = dist.hard_ranges() if k > 0 else {}
    for name in VEHICLE_KEYS:
        lo, hi = getattr(dist, name)
        if name == "latency_steps":
            out[name] = torch.randint(int(lo), int(hi) + 1, (n,), generator=gen, device=device).float()
            continue
        u = torch.rand(n, generator=gen, device=device)
        out[name] = _uniform(name, lo, hi, u)
        if k > 0 and name in dist.hard_keys:  # the first k envs map the same draws onto the hard end of the range
            out[name][:k] = _uniform(name, *hard[name], u[:k])
    return out


def _uniform(name: str, lo: float, hi: float, u: torch.Tensor) -> torch.Tensor:
    if name.startswith("inertia"):  # log-uniform
        return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    return lo + u * (hi - lo)


def _reference_rpm(base: QuadrotorParams) -> float:
    """The paper model's hover speed: the thrust curve's anchor point."""
    return base.hover_rpm


def vehicle_rpm(base: QuadrotorParams, v: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Per-vehicle quadratic and linear thrust coefficients, maximum RPM and hover RPM (each ``[n]``)."""
    wh = _reference_rpm(base)
    kq = v["thrust_scale"] * base.thrust_coefficient * (1.0 - v["thrust_linear_fraction"])
    kl = v["thrust_scale"] * base.thrust_coefficient * v["thrust_linear_fraction"] * wh
    g = math.sqrt(sum(x * x for x in base.gravity))
    weight = v["mass"] * g
    return (kq, kl, rotor_speed_for_thrust(v["thrust_to_weight"] * weight / 4.0, kq, kl),
            rotor_speed_for_thrust(weight / 4.0, kq, kl))


def vehicle_hover_action(base: QuadrotorParams, v: dict[str, torch.Tensor]) -> torch.Tensor:
    """The action in [-1, 1] at which each vehicle's rotors carry its weight (``[n]``)."""
    _, _, rpm_max, rpm_hover = vehicle_rpm(base, v)
    return 2.0 * torch.maximum(rpm_hover, v["idle_rpm"]) / rpm_max - 1.0


def vehicle_param_tensors(base: QuadrotorParams, v: dict[str, torch.Tensor]) -> ParamTensors:
    """The batched dynamics parameters of vehicles ``v`` (from :func:`sample_vehicles`)."""
    n, dev = v["mass"].shape[0], v["mass"].device
    pt = base.tensors(n, dev)
    kq, kl, rpm_max, _ = vehicle_rpm(base, v)
    col = lambda x: x.reshape(n, 1).to(torch.float32)  # noqa: E731
    inertia = pt.inertia * torch.stack((v["inertia_xy_scale"], v["inertia_xy_scale"], v["inertia_z_scale"]), -1)
    signs = torch.tensor(base.yaw_signs, device=dev)
    return pt._replace(
        mass=col(v["mass"]), inertia=inertia, thrust_coefficient=col(kq), thrust_linear=col(kl),
        motor_time_constant=col(v["motor_tau_up"]), motor_time_constant_down=col(v["motor_tau_down"]),
        rotor_positions=pt.rotor_positions[None] * v["arm_scale"].reshape(n, 1, 1),
        yaw_torque=signs[None] * col(v["torque_ratio"]),
        rpm_min=col(torch.minimum(v["idle_rpm"], rpm_max)), rpm_max=col(rpm_max))


def normalised(dist: VehicleDistribution, v: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[n, 13]`` vehicle values mapped to [-1, 1] over ``dist``'s ranges (privileged critic input)."""
    cols = []
    for name in VEHICLE_KEYS:
        lo, hi = getattr(dist, name)
        cols.append((v[name] - lo) / max(hi - lo, 1e-12) * 2.0 - 1.0)
    return torch.stack(cols, dim=-1)


def vehicle_command_rpm(action: torch.Tensor, pt: ParamTensors) -> torch.Tensor:
    """Commanded rotor speeds of clipped actions on per-env vehicles: ``max((a + 1) / 2 * rpm_max, idle)``."""
    return torch.maximum((action.clamp(-1.0, 1.0) + 1.0) * (0.5 * pt.rpm_max), pt.rpm_min)


VEHICLE_EVAL_SEED = 4_000_037
"""Seed of the held-out evaluation vehicles (``robot-rl eval --vehicles``); training draws its vehicles from the
env's stream, which the run's seed fixes."""


def far_vehicle(dist: VehicleDistribution | None = None, hardness: float = 0.7) -> VehicleDistribution:
    """One vehicle ``hardness`` of the way from the easy to the hard end of every range of ``dist`` (default: the
    published span): heavier, less thrust-to-weight, less thrust with more of it linear, more inertia, stronger
    yaw coupling, slower spin-up, faster spin-down, higher idle floor, longer latency, more noise (the
    adaptation-time probe; 1.0 is the all-hard corner, which no policy here flies)."""
    d = dist or VehicleDistribution()
    out = {}
    for k, end in HARD_END.items():
        lo, hi = getattr(d, k)
        x = lo + (hardness if end else 1.0 - hardness) * (hi - lo)
        x = round(x) if k == "latency_steps" else x
        out[k] = (x, x)
    return replace(d, enabled=True, **out)
