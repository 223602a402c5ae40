"""Training configuration dataclasses and the registry of named presets."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from robot_rl.algorithms.apg import APGConfig
from robot_rl.algorithms.ppo import PPOConfig
from robot_rl.algorithms.sac import SACConfig
from robot_rl.algorithms.td3 import TD3Config
from robot_rl.curriculum import CurriculumConfig
from sim.quadrotor.config import QuadrotorTaskConfig


@dataclass
class OffPolicyConfig:
    """Loop of TD3/SAC: collect with ``task.num_envs`` envs, update from a replay buffer."""

    total_env_steps: int = 300_000
    buffer_capacity: int = 300_000
    overwrite: bool = False
    """Whether the replay buffer may wrap (the paper never overwrites)."""
    random_steps: int = 0
    """Env steps with uniformly random actions at the start."""
    critic_starts: int = 15_000
    """Env steps before the first critic update."""
    actor_starts: int = 30_000
    """Env steps before the first actor update."""
    updates_per_step: float = 0.1
    """Critic gradient steps per env transition (0.1 = the paper's every 10 steps)."""
    batch_size: int = 256


@dataclass
class OnPolicyConfig:
    """Loop of PPO (``steps_per_env`` steps from every env, then the update epochs) and APG."""

    total_env_steps: int = 10_000_000
    steps_per_env: int = 24


@dataclass
class EvalConfig:
    """Evaluation protocol (``robot-rl eval``): the paper's initial states, noise and disturbances."""

    episodes: int = 256
    settle_radius: float = 0.1
    """An episode settles if it survives and ends within this distance of the target (m)."""
    survival_bar: float = 0.95
    settle_bar: float = 0.90
    robustness: tuple[float, ...] = (-0.2, -0.1, 0.1, 0.2)
    """Relative errors applied to mass, thrust coefficient and motor time constant in the sweep."""
    seed: int = 1_000_003
    """Episode seed of ``robot-rl eval`` and of every confirmation of a selected policy: held out, i.e. never
    seen by the in-training evaluations that choose when training stops."""
    selection_seed: int = 2_000_003
    """Episode seed of the in-training evaluations (learning curve, ``stop_when_passed``). A policy chosen on
    these episodes is confirmed on ``seed``; the two must differ."""


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json`` in the run directory."""

    preset: str = "crazyflie-hover"
    algorithm: Literal["td3", "sac", "ppo", "apg"] = "td3"
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    """torch intra-op threads (small networks on 2 cores are fastest with 1)."""
    env_impl: Literal["auto", "torch", "fused"] = "auto"
    """Simulator: fused numba kernel (CPU) or plain torch; auto = fused where supported. APG differentiates
    through the simulator: its fused choice is the differentiable fused env (numba step + hand-written VJP)."""
    out: str = ""
    """Run directory; empty: runs/<preset>/seed<seed>."""
    task: QuadrotorTaskConfig = field(default_factory=QuadrotorTaskConfig)
    td3: TD3Config = field(default_factory=TD3Config)
    sac: SACConfig = field(default_factory=SACConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    apg: APGConfig = field(default_factory=APGConfig)
    off_policy: OffPolicyConfig = field(default_factory=OffPolicyConfig)
    on_policy: OnPolicyConfig = field(default_factory=OnPolicyConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    eval_every: int = 0
    """Env steps between in-training evaluations (0: only at the end)."""
    eval_episodes_during_training: int = 128
    stop_when_passed: bool = False
    """End training at the first in-training evaluation that passes the bar."""
    checkpoint_every: int = 50_000
    """Env steps between checkpoints (0: only at the end); ``--resume`` continues from the last one."""
    log_every: int = 5_000

    @property
    def total_env_steps(self) -> int:
        return self.on_policy.total_env_steps if self.algorithm in ("ppo", "apg") else self.off_policy.total_env_steps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a (nested) config dataclass from ``to_dict`` output; unknown keys are an error."""
    hints = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(hints)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name) if name in hints else None
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            kwargs[name] = from_dict(type(default), value)
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[name] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


PRESETS: dict[str, tuple[str, Callable[[], TrainConfig]]] = {}


def register(name: str, description: str) -> Callable[[Callable[[], TrainConfig]], Callable[[], TrainConfig]]:
    def deco(fn: Callable[[], TrainConfig]) -> Callable[[], TrainConfig]:
        PRESETS[name] = (description, fn)
        return fn

    return deco


def get_preset(name: str) -> TrainConfig:
    """A fresh copy of the named preset's configuration."""
    from robot_rl import presets  # noqa: F401  (registers the presets; it imports this module)

    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    cfg = PRESETS[name][1]()
    cfg.preset = name
    return cfg
