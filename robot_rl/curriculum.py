"""Reward-weight curriculum: multiply weights on a schedule, with caps (the L2F paper's schedule)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass
class CurriculumConfig:
    """Every ``every`` env steps, ``weight <- min(weight * factor, cap)`` for each listed weight (the defaults:
    the L2F paper's schedule of the quadrotor-hover reward weights)."""

    every: int = 100_000
    """Env steps between changes; 0 disables the curriculum."""
    factors: dict[str, float] = field(default_factory=lambda: {"action": 1.4, "position": 1.2,
                                                               "linear_velocity": 1.4})
    caps: dict[str, float] = field(default_factory=lambda: {"action": 1.0, "position": 40.0,
                                                            "linear_velocity": 1.0})


class Curriculum:
    """Tracks the stage reached; ``update(env_steps)`` returns new weights when a stage boundary is crossed.

    ``initial``: the task's reward weights (a dataclass of floats, ``BatchedEnv.reward_weights``; None for a
    task without weights, allowed only with the curriculum off)."""

    def __init__(self, cfg: CurriculumConfig, initial: Any) -> None:
        if initial is None and cfg.every > 0:
            raise ValueError("a curriculum needs reward weights")
        if initial is not None:
            unknown = set(cfg.factors) - {f.name for f in dataclasses.fields(initial)}
            if unknown:
                raise ValueError(f"curriculum names unknown reward weights {sorted(unknown)}")
        self.cfg = cfg
        self.initial = replace(initial) if initial is not None else None
        self.stage = 0

    def weights_at(self, stage: int) -> Any:
        w = replace(self.initial)
        for _ in range(stage):
            for name, f in self.cfg.factors.items():
                setattr(w, name, min(getattr(w, name) * f, self.cfg.caps.get(name, float("inf"))))
        return w

    def update(self, env_steps: int) -> Any | None:
        if self.cfg.every <= 0:
            return None
        stage = env_steps // self.cfg.every
        if stage == self.stage:
            return None
        self.stage = stage
        return self.weights_at(stage)
