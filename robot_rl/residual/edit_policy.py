"""EXPO's light edit policy: a Gaussian on (observation, normalised base action) whose edit is bounded.

``u ~ N(mu, sigma)`` per action dimension, edit ``e = scale * tanh(u)`` (so ``|e| < scale``), edited action
``clamp(a_base + e, -1, 1)`` in the base's normalised action space (the demonstrations' range). The mean head
is zero-initialised, so the deterministic edit starts at exactly zero: an untrained edit policy proposes the
base action itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

LOG_STD_MIN, LOG_STD_MAX = -5.0, 1.0


class EditPolicy(nn.Module):
    """Edit proposals for base actions. ``obs`` raw ``[B, obs_dim]``, ``base`` ``[B, act_dim]`` normalised.

    Args:
        obs_dim, act_dim: input sizes.
        scale: largest edit per dimension in normalised action units.
        hidden: hidden widths (ReLU).
        obs_mid, obs_span: observation normalisation (default identity).
    """

    def __init__(self, obs_dim: int, act_dim: int, scale: float = 0.2, hidden: Sequence[int] = (256, 256),
                 obs_mid: torch.Tensor | None = None, obs_span: torch.Tensor | None = None) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"edit scale must be positive, got {scale}")
        self.obs_dim, self.act_dim, self.scale = obs_dim, act_dim, float(scale)
        self.register_buffer("obs_mid", torch.zeros(obs_dim) if obs_mid is None else obs_mid.float().clone())
        self.register_buffer("obs_span", torch.ones(obs_dim) if obs_span is None else obs_span.float().clone())
        layers: list[nn.Module] = []
        d = obs_dim + act_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.trunk = nn.Sequential(*layers)
        self.mean = nn.Linear(d, act_dim)
        self.log_std = nn.Linear(d, act_dim)
        nn.init.zeros_(self.mean.weight)
        nn.init.zeros_(self.mean.bias)

    def _heads(self, obs: torch.Tensor, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(torch.cat(((obs - self.obs_mid) / self.obs_span, base), dim=-1))
        return self.mean(h), self.log_std(h).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def _apply(self, base: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return (base + self.scale * torch.tanh(u)).clamp(-1.0, 1.0)

    def forward(self, obs: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Deterministic edited action (the mean edit)."""
        mu, _ = self._heads(obs, base)
        return self._apply(base, mu)

    def sample(self, obs: torch.Tensor, base: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised edited action and the log-density of its edit (tanh and scale corrected)."""
        mu, log_std = self._heads(obs, base)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        u = mu + eps * log_std.exp()
        logp = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # density of e = scale * tanh(u): subtract log|de/du| = log(scale) + log(1 - tanh(u)^2), stably
        logp = logp - (math.log(self.scale) + 2 * (math.log(2.0) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return self._apply(base, u), logp
