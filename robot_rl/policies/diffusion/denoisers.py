"""Denoisers eps(x_t, t | obs): a 1-D temporal U-Net with FiLM conditioning (Chi et al.'s ConditionalUnet1D
shape) and a small MLP. Both take the noisy chunk ``[B, H, A]``, integer-valued timesteps ``[B]`` and the
flattened normalised observation history ``[B, cond_dim]``, and return ``[B, H, A]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class SinusoidalStepEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of the diffusion step (sin half, then cos half)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
        self.register_buffer("freqs", freqs)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        arg = t.float()[:, None] * self.freqs[None, :]
        return torch.cat((arg.sin(), arg.cos()), dim=-1)


def step_encoder(dim: int) -> nn.Sequential:
    return nn.Sequential(SinusoidalStepEmbedding(dim), nn.Linear(dim, dim * 4), nn.Mish(), nn.Linear(dim * 4, dim))


class ConvBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish (same length)."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int) -> None:
        super().__init__(nn.Conv1d(cin, cout, kernel, padding=kernel // 2), nn.GroupNorm(groups, cout), nn.Mish())


class FiLMResBlock(nn.Module):
    """Two conv blocks; the condition scales and shifts the first one's output per channel (FiLM)."""

    def __init__(self, cin: int, cout: int, cond_dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.block1 = ConvBlock(cin, cout, kernel, groups)
        self.block2 = ConvBlock(cout, cout, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * cout))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()
        self.cout = cout

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.block1(x)
        scale, bias = self.film(cond).unsqueeze(-1).split(self.cout, dim=1)
        return self.block2(scale * h + bias) + self.skip(x)


class UNet1D(nn.Module):
    """Temporal U-Net over the horizon: per level two FiLM blocks then stride-2 down-sampling (not at the
    last level), two middle blocks, mirrored up path (skip concat, two FiLM blocks, stride-2 transposed conv),
    final conv block + 1x1 conv."""

    def __init__(self, act_dim: int, cond_dim: int, down_dims: Sequence[int] = (32, 64, 128), kernel: int = 5,
                 groups: int = 8, step_dim: int = 64) -> None:
        super().__init__()
        self.step_encoder = step_encoder(step_dim)
        c = step_dim + cond_dim
        dims = [act_dim, *down_dims]
        pairs = list(zip(dims[:-1], dims[1:], strict=True))
        self.down = nn.ModuleList()
        def res(a: int, b: int) -> FiLMResBlock:
            return FiLMResBlock(a, b, c, kernel, groups)

        for i, (a, b) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.down.append(nn.ModuleList([res(a, b), res(b, b), nn.Identity() if last else nn.Conv1d(b, b, 3, 2, 1)]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([res(mid, mid), res(mid, mid)])
        self.up = nn.ModuleList()
        for a, b in reversed(pairs[1:]):  # one up-sampling per down-sampling; the first level's skip is unused
            self.up.append(nn.ModuleList([res(2 * b, a), res(a, a), nn.ConvTranspose1d(a, a, 4, 2, 1)]))
        self.final = nn.Sequential(ConvBlock(down_dims[0], down_dims[0], kernel, groups),
                                   nn.Conv1d(down_dims[0], act_dim, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = torch.cat((self.step_encoder(t), cond), dim=-1)
        h = x.transpose(1, 2)  # [B, A, H]: channels are action dimensions, length is time
        skips = []
        for res1, res2, down in self.down:
            h = res2(res1(h, c), c)
            skips.append(h)
            h = down(h)
        for res in self.mid:
            h = res(h, c)
        for res1, res2, up in self.up:
            h = torch.cat((h, skips.pop()), dim=1)
            h = up(res2(res1(h, c), c))
        return self.final(h).transpose(1, 2)


class MLPDenoiser(nn.Module):
    """MLP on [flattened noisy chunk, step embedding, condition] -> flattened output (Mish activations)."""

    def __init__(self, act_dim: int, horizon: int, cond_dim: int, hidden: Sequence[int] = (256, 256, 256),
                 step_dim: int = 64) -> None:
        super().__init__()
        self.step_encoder = step_encoder(step_dim)
        layers: list[nn.Module] = []
        width = act_dim * horizon + step_dim + cond_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Mish()]
            width = h
        layers.append(nn.Linear(width, act_dim * horizon))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = torch.cat((x.flatten(1), self.step_encoder(t), cond), dim=-1)
        return self.net(h).view_as(x)
