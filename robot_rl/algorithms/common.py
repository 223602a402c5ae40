"""Pieces shared by the update rules."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def make_optimizer(params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam, or AdamW (decoupled weight decay, as in the paper) when ``weight_decay > 0``."""
    params = list(params)
    if weight_decay > 0:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)
    return torch.optim.Adam(params, lr=lr, foreach=True)


@torch.no_grad()
def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) target + tau source`` for all parameters."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def step(opt: torch.optim.Optimizer, loss: torch.Tensor, params: list[nn.Parameter] | None = None,
         max_grad_norm: float | None = None) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None and params is not None:
        nn.utils.clip_grad_norm_(params, max_grad_norm)
    opt.step()
