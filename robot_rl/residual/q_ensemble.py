"""An ensemble of Q networks on (observation, normalised action) with a Polyak target copy (RLPD / REDQ style).

Members are computed together (one batched matmul per layer) and each hidden layer is LayerNorm'ed: RLPD found
LayerNorm is what keeps a critic trained on demonstrations plus online data from extrapolating wildly on
out-of-distribution actions. The observation is normalised by statistics stored with the network (so a
checkpoint or an export carries them).

Target: REDQ's minimum over a random subset of ``subset`` members (2 of the ensemble by default). Chosen over
mean-minus-std because the subset minimum is the estimator RLPD validated for learning from demonstrations plus
online data, and with ``subset = n`` it is the clipped double-Q of TD3/SAC; mean-minus-std needs a tuned
coefficient and turns into the plain mean when members agree on unseen actions.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers: ``[n, B, in] -> [n, B, out]`` (initialised like ``nn.Linear``)."""

    def __init__(self, n: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.out_dim = out_dim
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class QEnsemble(nn.Module):
    """``n`` Q functions ``Q_i(obs, action) -> [n, B]``; ``obs`` raw ``[B, obs_dim]``, ``action`` ``[B, act_dim]``
    in the base's normalised action space.

    Args:
        n: ensemble members.
        obs_dim, act_dim: input sizes.
        hidden: hidden widths (ReLU, LayerNorm before each activation).
        obs_mid, obs_span: observation normalisation ``(obs - mid) / span`` (default identity).
    """

    def __init__(self, n: int, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256),
                 obs_mid: torch.Tensor | None = None, obs_span: torch.Tensor | None = None) -> None:
        super().__init__()
        self.n, self.obs_dim, self.act_dim = n, obs_dim, act_dim
        self.register_buffer("obs_mid", torch.zeros(obs_dim) if obs_mid is None else obs_mid.float().clone())
        self.register_buffer("obs_span", torch.ones(obs_dim) if obs_span is None else obs_span.float().clone())
        dims = [obs_dim + act_dim, *hidden]
        self.layers = nn.ModuleList(EnsembleLinear(n, a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.head = EnsembleLinear(n, dims[-1], 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat(((obs - self.obs_mid) / self.obs_span, action), dim=-1)
        x = x.unsqueeze(0).expand(self.n, -1, -1)
        for layer in self.layers:
            h = layer(x)
            x = torch.relu(nn.functional.layer_norm(h, (layer.out_dim,)))  # a static shape (ONNX export)
        return self.head(x).squeeze(-1)


def redq_min(q: torch.Tensor, subset: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Minimum over a random subset of ``subset`` members of ``q`` ``[n, B]`` (one subset per call) -> ``[B]``."""
    n = q.shape[0]
    if not 1 <= subset <= n:
        raise ValueError(f"subset must be within 1..{n}, got {subset}")
    idx = torch.randperm(n, generator=generator)[:subset]
    return q.index_select(0, idx.to(q.device)).min(dim=0).values


def ensemble_score(q: torch.Tensor, pessimism: float = 0.0) -> torch.Tensor:
    """The score an ensemble gives, ``q`` ``[n, B]`` -> ``[B]``: the mean, less ``pessimism`` standard deviations
    of the members (a lower confidence bound: actions the members disagree on, which the data rarely holds, score
    lower). ``pessimism = 0``: the plain ensemble mean."""
    if pessimism == 0.0:
        return q.mean(0)
    return q.mean(0) - pessimism * q.std(0)


class QWithTarget(nn.Module):
    """A :class:`QEnsemble` and its Polyak-averaged target copy (no gradients)."""

    def __init__(self, q: QEnsemble) -> None:
        super().__init__()
        self.q = q
        self.target = copy.deepcopy(q)
        for p in self.target.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """``target <- (1 - tau) target + tau q``."""
        torch._foreach_lerp_(list(self.target.parameters()), list(self.q.parameters()), tau)
