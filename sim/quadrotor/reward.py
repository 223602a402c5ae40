"""The hover task's reward: five unweighted cost terms of a step and their linear weighting.

Shared by every hover backend (torch, fused numba, Isaac) and by replay buffers that store the terms and recompute
rewards when a curriculum changes the weights.
"""

from __future__ import annotations

import torch

from sim.quadrotor.config import RewardWeights
from sim.quadrotor.dynamics import OMEGA, POS, VEL

REWARD_TERMS = ("position", "orientation", "linear_velocity", "angular_velocity", "action")


def reward_terms(state: torch.Tensor, action: torch.Tensor, target: torch.Tensor,
                 hover_action: float | torch.Tensor) -> torch.Tensor:
    """Unweighted cost terms ``[N, 5]`` (order ``REWARD_TERMS``) of a post-step state and the action taken.

    The reward is linear in these terms, so a replay buffer that stores them can recompute rewards
    exactly when a curriculum changes the weights.
    """
    p = state[:, POS] - target
    qw = state[:, 3]
    return torch.stack(
        (
            (p * p).sum(-1),
            1.0 - qw * qw,
            (state[:, VEL] ** 2).sum(-1),
            (state[:, OMEGA] ** 2).sum(-1),
            ((action - hover_action) ** 2).sum(-1),
        ),
        dim=-1,
    )


def reward_from_terms(terms: torch.Tensor, weights: RewardWeights) -> torch.Tensor:
    """``-scale * terms @ w + constant`` for any leading shape of ``terms``."""
    w = torch.tensor(weights.as_list(), dtype=terms.dtype, device=terms.device)
    return -weights.scale * (terms @ w) + weights.constant
