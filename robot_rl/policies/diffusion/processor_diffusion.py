"""Min-max normalisation to [-1, 1] per dimension, shared by training, sampling and the exported graph.

The statistics come from the dataset (``stats.json``: ``min``/``max``) and are stored as buffers, so a
checkpoint or an exported ONNX graph carries exactly the mapping training used. A constant dimension
(max - min below ``eps``) is only centred: a range of 2 keeps it at 0 instead of dividing by ~0.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class MinMaxNormalizer(nn.Module):
    """``normalize(x) = (x - mid) / span``, ``unnormalize(y) = y * span + mid``; ``[..., dim]`` tensors."""

    def __init__(self, low: np.ndarray | torch.Tensor, high: np.ndarray | torch.Tensor, eps: float = 1e-6) -> None:
        super().__init__()
        low = torch.as_tensor(np.asarray(low, dtype=np.float64)).reshape(-1)
        high = torch.as_tensor(np.asarray(high, dtype=np.float64)).reshape(-1)
        if low.shape != high.shape:
            raise ValueError(f"min has {low.numel()} values but max has {high.numel()}")
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()) or bool((high < low).any()):
            raise ValueError("normaliser statistics must be finite with max >= min")
        half = (high - low) / 2
        half = torch.where(half < eps, torch.ones_like(half), half)
        self.register_buffer("mid", ((high + low) / 2).float())
        self.register_buffer("span", half.float())

    @property
    def dim(self) -> int:
        return self.mid.numel()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mid) / self.span

    def unnormalize(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.span + self.mid

    @classmethod
    def from_stats(cls, stats: dict[str, np.ndarray]) -> MinMaxNormalizer:
        """From one feature's dataset statistics (``{"min": [n], "max": [n], ...}``)."""
        return cls(stats["min"], stats["max"])

    @classmethod
    def identity(cls, dim: int) -> MinMaxNormalizer:
        """Placeholder of the right size (``load_state_dict`` then fills in saved statistics)."""
        return cls(-np.ones(dim), np.ones(dim))
