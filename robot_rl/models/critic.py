"""Critic ensembles: several MLPs evaluated in one batched matmul (twin Q for TD3/SAC)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from robot_rl.models.mlp import ACTIVATIONS


class EnsembleMLP(nn.Module):
    """``n`` independent MLPs ``in_dim -> hidden -> out_dim`` computed together with ``baddbmm``.

    Input ``[B, in_dim]`` (shared) or ``[n, B, in_dim]``; output ``[n, B, out_dim]``. Each member is
    initialised like ``nn.Linear``.
    """

    def __init__(self, n: int, in_dim: int, hidden: Sequence[int], out_dim: int = 1,
                 activation: str = "relu") -> None:
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        self.n = n
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            bound = 1.0 / math.sqrt(a)
            self.weights.append(nn.Parameter(torch.empty(n, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, b).uniform_(-bound, bound)))
        self.activation_name = activation
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor, members: int | None = None) -> torch.Tensor:
        """All members' outputs, or those of the first ``members`` only."""
        k = self.n if members is None else members
        if x.ndim == 2:
            x = x.unsqueeze(0).expand(k, -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if k < self.n:
                w, b = w[:k], b[:k]
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = self.act(x)
        return x
