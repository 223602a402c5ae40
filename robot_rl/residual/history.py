"""The in-context window of a history residual: each env's last H (observation, executed action) pairs.

A ResiP residual with ``history = H > 0`` reads, besides the current observation and base action, a window
``[N, H, obs_dim + action_dim]`` of raw rows ``(observation of step t - k, action executed in step t - k)`` for
k = H .. 1 (oldest first). What happened after the commanded motions (a peg that stopped, slid sideways or
went down) is how it can infer what the current observation does not say (the hole's true offset).

Episode start: every row holds the first observation and a zero raw action, i.e. the arm stood still there
(the runtime, :mod:`deploy.residual_runtime`, starts its window the same way after activation or a fault).
"""

from __future__ import annotations

from typing import Any

import torch


class ResidualHistory:
    """Per-env window of past (raw observation, raw executed action) rows; ``window`` is ``[N, H, D + A]``."""

    def __init__(self, num_envs: int, steps: int, obs_dim: int, action_dim: int) -> None:
        if steps < 1:
            raise ValueError(f"a history needs at least 1 step, got {steps}")
        self.num_envs, self.steps, self.obs_dim, self.action_dim = num_envs, steps, obs_dim, action_dim
        self.window = torch.zeros(num_envs, steps, obs_dim + action_dim)

    def _check(self, x: torch.Tensor, width: int, what: str) -> torch.Tensor:
        x = torch.as_tensor(x).detach().to("cpu", torch.float32)
        if x.shape != (self.num_envs, width):
            raise ValueError(f"{what} must be [{self.num_envs}, {width}], got {list(x.shape)}")
        return x

    def reset(self, obs: torch.Tensor, env_ids: torch.Tensor | None = None) -> None:
        """Start the episodes of ``env_ids`` ([N] bool mask or indices; None: all) at ``obs`` [N, obs_dim]."""
        obs = self._check(obs, self.obs_dim, "observations")
        ids = torch.arange(self.num_envs) if env_ids is None else torch.as_tensor(env_ids)
        if ids.dtype == torch.bool:
            ids = torch.nonzero(ids).flatten()
        row = torch.cat((obs[ids], torch.zeros(len(ids), self.action_dim)), -1)
        self.window[ids] = row[:, None, :].expand(-1, self.steps, -1)

    def push(self, obs: torch.Tensor, action: torch.Tensor) -> None:
        """Append every env's step: the observation it acted on and the raw action it executed."""
        row = torch.cat((self._check(obs, self.obs_dim, "observations"),
                         self._check(action, self.action_dim, "actions")), -1)
        self.window = torch.cat((self.window[:, 1:], row[:, None, :]), 1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"window": self.window.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["window"].shape) != tuple(self.window.shape):
            raise ValueError(f"history window is {list(state['window'].shape)}, this one {list(self.window.shape)}")
        self.window = state["window"].clone().float()
