"""Quadrotor physical parameters: a frame is described by a YAML data file (see ``crazyflie.yaml``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
import yaml

_DATA_DIR = Path(__file__).parent


@dataclass(frozen=True)
class QuadrotorParams:
    """Rigid-body quadrotor with first-order motors, in SI units (rotor speeds in RPM)."""

    name: str
    mass: float
    gravity: tuple[float, float, float]
    inertia: tuple[float, float, float]
    rotor_positions: tuple[tuple[float, float, float], ...]
    thrust_coefficient: float
    torque_coefficient: float
    yaw_signs: tuple[float, ...]
    motor_time_constant: float
    rpm_min: float = 0.0
    rpm_max: float = 21702.0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.rotor_positions)
        if n != 4 or len(self.yaw_signs) != 4:
            raise ValueError(f"{self.name}: expected 4 rotors and 4 yaw signs, got {n} and {len(self.yaw_signs)}")
        if self.mass <= 0 or min(self.inertia) <= 0 or self.thrust_coefficient <= 0:
            raise ValueError(f"{self.name}: mass, inertia and thrust_coefficient must be positive")
        if self.motor_time_constant <= 0 or self.rpm_max <= self.rpm_min:
            raise ValueError(f"{self.name}: need motor_time_constant > 0 and rpm_max > rpm_min")

    @property
    def hover_rpm(self) -> float:
        """Rotor speed at which the four rotors together carry the weight."""
        g = math.sqrt(sum(x * x for x in self.gravity))
        return math.sqrt(self.mass * g / (len(self.rotor_positions) * self.thrust_coefficient))

    @property
    def hover_action(self) -> float:
        """Normalised action in [-1, 1] that commands ``hover_rpm``."""
        return 2.0 * (self.hover_rpm - self.rpm_min) / (self.rpm_max - self.rpm_min) - 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    def tensors(self, num_envs: int, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> ParamTensors:
        """Per-environment parameter tensors (the shape domain randomisation works on)."""

        def rep(x: float | tuple, width: int) -> torch.Tensor:
            t = torch.as_tensor(x, dtype=dtype, device=device).reshape(1, width)
            return t.expand(num_envs, width).clone()

        return ParamTensors(
            mass=rep(self.mass, 1),
            inertia=rep(self.inertia, 3),
            thrust_coefficient=rep(self.thrust_coefficient, 1),
            motor_time_constant=rep(self.motor_time_constant, 1),
            gravity=torch.tensor(self.gravity, dtype=dtype, device=device),
            rotor_positions=torch.tensor(self.rotor_positions, dtype=dtype, device=device),
            yaw_torque=torch.tensor(self.yaw_signs, dtype=dtype, device=device) * self.torque_coefficient,
            rpm_min=self.rpm_min,
            rpm_max=self.rpm_max,
        )


class ParamTensors(NamedTuple):
    """Batched parameters: per-env entries have a leading ``num_envs`` axis, shared ones do not."""

    mass: torch.Tensor  # [N, 1]
    inertia: torch.Tensor  # [N, 3]
    thrust_coefficient: torch.Tensor  # [N, 1]
    motor_time_constant: torch.Tensor  # [N, 1]
    gravity: torch.Tensor  # [3]
    rotor_positions: torch.Tensor  # [4, 3], or [N, 4, 3] per env
    yaw_torque: torch.Tensor  # [4] (or [N, 4] per env), torque coefficient times yaw sign
    rpm_min: float | torch.Tensor  # a number, or [N, 1] per env (an idle floor)
    rpm_max: float | torch.Tensor  # a number, or [N, 1] per env
    thrust_linear: torch.Tensor | None = None
    """[N, 1] linear thrust term: f = k_f rpm^2 + k_lin rpm (None: the paper's purely quadratic curve)."""
    motor_time_constant_down: torch.Tensor | None = None
    """[N, 1] time constant while the rotor slows down (None: ``motor_time_constant`` both ways)."""


def load_params(path: str | Path) -> QuadrotorParams:
    """Load a frame description from a YAML file; unknown keys are kept in ``extra``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"quadrotor parameter file not found: {path}")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of parameter names to values")
    known = {f for f in QuadrotorParams.__dataclass_fields__ if f != "extra"}
    missing = {"name", "mass", "gravity", "inertia", "rotor_positions", "thrust_coefficient",
               "torque_coefficient", "yaw_signs", "motor_time_constant"} - data.keys()
    if missing:
        raise ValueError(f"{path}: missing parameters {sorted(missing)}")
    kwargs = {k: v for k, v in data.items() if k in known}
    kwargs["gravity"] = tuple(float(x) for x in kwargs["gravity"])
    kwargs["inertia"] = tuple(float(x) for x in kwargs["inertia"])
    kwargs["rotor_positions"] = tuple(tuple(float(x) for x in r) for r in kwargs["rotor_positions"])
    kwargs["yaw_signs"] = tuple(float(x) for x in kwargs["yaw_signs"])
    for k in ("mass", "thrust_coefficient", "torque_coefficient", "motor_time_constant", "rpm_min", "rpm_max"):
        if k in kwargs:
            kwargs[k] = float(kwargs[k])
    return QuadrotorParams(**kwargs, extra={k: v for k, v in data.items() if k not in known})


def crazyflie_params() -> QuadrotorParams:
    """The Crazyflie 2.x parameters of the paper (``sim/quadrotor/crazyflie.yaml``)."""
    return load_params(_DATA_DIR / "crazyflie.yaml")
