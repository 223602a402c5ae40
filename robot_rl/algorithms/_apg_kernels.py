"""Elementwise numba kernels of the hand-written BPTT (``apg_bptt.py``): the fast tanh and its derivative.

Float32 IEEE arithmetic in the operation order of ``robot_rl.models.mlp.FastTanh`` (no fast-math), so the
forward values equal the torch module's.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_F3, _F9, _F27 = np.float32(3.0), np.float32(9.0), np.float32(27.0)


@njit(cache=True, error_model="numpy")
def fast_tanh(z, out):
    """``out = clamp(z, -3, 3) (27 + x^2) / (27 + 9 x^2)`` (``x`` the clamped ``z``), flat float32 arrays."""
    for i in range(z.size):
        x = min(max(z[i], -_F3), _F3)
        x2 = x * x
        out[i] = x * (x2 + _F27) / (x2 * _F9 + _F27)


@njit(cache=True, error_model="numpy")
def fast_tanh_grad(z, g, out):
    """``out = g * fast_tanh'(z)``: ``(x^2 - 9)^2 / (9 (3 + x^2)^2)`` inside the clamp, 0 outside (and at it)."""
    for i in range(z.size):
        x = min(max(z[i], -_F3), _F3)
        x2 = x * x
        d = x2 - _F9
        e = x2 + _F3
        out[i] = g[i] * (d * d) / (_F9 * e * e)


@njit(cache=True, error_model="numpy")
def tanh_out_grad(y, g, out):
    """``out = g * (1 - y^2)`` (derivative of the tanh output squash through its value ``y``)."""
    for i in range(y.size):
        out[i] = g[i] * (np.float32(1.0) - y[i] * y[i])
