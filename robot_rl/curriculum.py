"""Reward-weight curriculum: multiply weights on a schedule, with caps (the L2F paper's schedule)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sim.quadrotor.config import RewardWeights


@dataclass
class CurriculumConfig:
    """Every ``every`` env steps, ``weight <- min(weight * factor, cap)`` for each listed weight."""

    every: int = 100_000
    """Env steps between changes; 0 disables the curriculum."""
    factors: dict[str, float] = field(default_factory=lambda: {"action": 1.4, "position": 1.2,
                                                               "linear_velocity": 1.4})
    caps: dict[str, float] = field(default_factory=lambda: {"action": 1.0, "position": 40.0,
                                                            "linear_velocity": 1.0})


class Curriculum:
    """Tracks the stage reached; ``update(env_steps)`` returns new weights when a stage boundary is crossed."""

    def __init__(self, cfg: CurriculumConfig, initial: RewardWeights) -> None:
        unknown = set(cfg.factors) - set(RewardWeights.__dataclass_fields__)
        if unknown:
            raise ValueError(f"curriculum names unknown reward weights {sorted(unknown)}")
        self.cfg = cfg
        self.initial = replace(initial)
        self.stage = 0

    def weights_at(self, stage: int) -> RewardWeights:
        w = replace(self.initial)
        for _ in range(stage):
            for name, f in self.cfg.factors.items():
                setattr(w, name, min(getattr(w, name) * f, self.cfg.caps.get(name, float("inf"))))
        return w

    def update(self, env_steps: int) -> RewardWeights | None:
        if self.cfg.every <= 0:
            return None
        stage = env_steps // self.cfg.every
        if stage == self.stage:
            return None
        self.stage = stage
        return self.weights_at(stage)
