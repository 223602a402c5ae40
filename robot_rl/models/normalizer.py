"""Running observation normalisation (shared by training and, folded into the graph, deployment)."""

from __future__ import annotations

import torch
from torch import nn


class EmpiricalNormalizer(nn.Module):
    """Normalise by running mean/std (Welford-style batch update, like rsl_rl's EmpiricalNormalization).

    ``update`` is called on training data only; ``forward`` never changes the statistics.
    """

    def __init__(self, dim: int, eps: float = 1e-2, until: int | None = None) -> None:
        super().__init__()
        self.eps = eps
        self.until = until
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @property
    def std(self) -> torch.Tensor:
        return (self.var + self.eps**2).sqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        if self.until is not None and int(self.count) >= self.until:
            return
        n = x.shape[0]
        total = int(self.count) + n
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        delta = batch_mean - self.mean
        self.mean += delta * (n / total)
        self.var = (self.var * int(self.count) + batch_var * n + delta**2 * int(self.count) * n / total) / total
        self.count += n
