"""Numba kernel of the fast tanh that returns its slope in the same pass (the fused critics' forward).

Seven elementwise torch ops (forward) and nine (the hand-written derivative) each read and write the whole
activation tensor; at the sizes of off-policy critics (2 x 512 x 64 floats) those passes cost more than the
batched matrix products. One loop computes both. Float32 IEEE arithmetic in the operation order of
``robot_rl.models.mlp.FastTanh`` (no fast-math), so the values equal the torch module's bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

_F3, _F9, _F27 = np.float32(3.0), np.float32(9.0), np.float32(27.0)


@njit(cache=True, error_model="numpy", inline="always")
def fast_tanh_value_slope(z):
    """The fast tanh of a float32 scalar and its slope: ``x (27 + x^2) / (27 + 9 x^2)`` and
    ``(x^2 - 9)^2 / (9 (3 + x^2)^2)``, ``x = clamp(z, -3, 3)`` (the slope is zero outside; at +-3 it is 0 as well).
    The one place the formula is written: every numba kernel (acting, the fused nodes, the explicit TD3 update)
    inlines it, and a caller that uses only the value has the slope removed by the compiler."""
    x = min(max(z, -_F3), _F3)
    x2 = x * x
    d = x2 - _F9
    e = x2 + _F3
    return x * (x2 + _F27) / (x2 * _F9 + _F27), (d * d) / (_F9 * e * e)


@njit(cache=True, error_model="numpy")
def _fast_tanh_slope(z, out, slope):
    for i in range(z.size):
        out[i], slope[i] = fast_tanh_value_slope(z[i])


@njit(cache=True, error_model="numpy")
def _fast_tanh(z, out):
    for i in range(z.size):
        out[i] = fast_tanh_value_slope(z[i])[0]


def applies(z: torch.Tensor) -> bool:
    """Whether the kernels take ``z`` (contiguous float32 on the CPU, not requiring a gradient)."""
    return z.device.type == "cpu" and z.dtype == torch.float32 and z.is_contiguous() and not z.requires_grad


def fast_tanh(z: torch.Tensor) -> torch.Tensor:
    """``FastTanh()(z)`` in one pass."""
    out = torch.empty_like(z)
    _fast_tanh(z.view(-1).numpy(), out.view(-1).numpy())
    return out


def fast_tanh_slope(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``FastTanh()(z)`` and its derivative at ``z`` (``(x^2 - 9)^2 / (9 (3 + x^2)^2)``, ``x`` clamped to
    ``[-3, 3]``: zero outside), in one pass."""
    out, slope = torch.empty_like(z), torch.empty_like(z)
    _fast_tanh_slope(z.view(-1).numpy(), out.view(-1).numpy(), slope.view(-1).numpy())
    return out, slope
