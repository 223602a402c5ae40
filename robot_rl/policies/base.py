"""What the behaviour-cloning runner, evaluation and export need from a chunked policy."""

from __future__ import annotations

from typing import Protocol

import torch


class ChunkPolicy(Protocol):
    """A policy that maps an observation history to an action chunk (raw, unnormalised units)."""

    n_obs_steps: int
    horizon: int
    n_action_steps: int

    def compute_loss(self, obs: torch.Tensor, actions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training loss for observation histories ``[B, n_obs_steps, obs_dim]`` and chunks ``[B, horizon, A]``."""
        ...

    def predict_chunk(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Action chunk ``[B, horizon, A]`` for ``[B, n_obs_steps, obs_dim]`` (evaluation weights)."""
        ...
