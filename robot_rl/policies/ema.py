"""Exponential moving average of weights with diffusers' / diffusion_policy's warm-up schedule."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay(step: int, inv_gamma: float = 1.0, power: float = 0.75, max_decay: float = 0.9999) -> float:
    """Decay after ``step`` optimiser steps: 1 - (1 + step / inv_gamma) ** -power, in [0, max_decay]
    (0 at step 0: the average starts as a copy)."""
    if step <= 0:
        return 0.0
    return min(max(1 - (1 + step / inv_gamma) ** -power, 0.0), max_decay)


class EMA:
    """Holds ``averaged``, a frozen copy of ``model`` updated by :meth:`update` after each optimiser step."""

    def __init__(self, model: nn.Module, inv_gamma: float = 1.0, power: float = 0.75,
                 max_decay: float = 0.9999) -> None:
        self.averaged = copy.deepcopy(model).eval().requires_grad_(False)
        self.inv_gamma, self.power, self.max_decay = inv_gamma, power, max_decay
        self.step = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        decay = ema_decay(self.step, self.inv_gamma, self.power, self.max_decay)
        for avg, p in zip(self.averaged.parameters(), model.parameters(), strict=True):
            avg.mul_(decay).add_(p.detach(), alpha=1 - decay)
        for avg, b in zip(self.averaged.buffers(), model.buffers(), strict=True):
            avg.copy_(b)
        self.step += 1
        return decay
