"""Numba elementwise kernels of the explicit TD3 update (:mod:`robot_rl.algorithms.td3_explicit`).

Every kernel works on flat float32 arrays (numpy views of torch tensors, no copies) and reproduces the plain
autograd path's float32 operation order where that path has one (the activation derivatives as torch's autograd
formulas, the target as ``reward + gamma * (1 - terminated) * q``), so the two paths agree to float rounding.
Activation codes are :data:`robot_rl.models.mlp_act.ACTIVATION_CODES` (fast tanh 0, tanh 1, relu 2).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from robot_rl.models.mlp_act import activate

_F1, _F3, _F9, _F27, _F0 = np.float32(1.0), np.float32(3.0), np.float32(9.0), np.float32(27.0), np.float32(0.0)
_F2 = np.float32(2.0)


@njit(cache=True, error_model="numpy")
def act_(z, code):
    """``z <- act(z)`` in place (no-gradient forward passes)."""
    for i in range(z.size):
        z[i] = activate(z[i], code)


@njit(cache=True, error_model="numpy")
def act_slope_(z, code, slope):
    """``z <- act(z)`` in place and ``slope = act'(z)`` (the derivative autograd would use)."""
    for i in range(z.size):
        v = z[i]
        if code == 0:  # fast tanh: x (27 + x^2) / (27 + 9 x^2) on x clamped to [-3, 3]; zero slope outside
            x = min(max(v, -_F3), _F3)
            x2 = x * x
            z[i] = x * (x2 + _F27) / (x2 * _F9 + _F27)
            d = x2 - _F9
            e = x2 + _F3
            slope[i] = (d * d) / (_F9 * e * e)
        elif code == 1:
            t = np.tanh(v)
            z[i] = t
            slope[i] = _F1 - t * t
        else:
            z[i] = max(v, _F0)
            slope[i] = _F1 if v > _F0 else _F0


@njit(cache=True, error_model="numpy")
def target_action_(z, eps, sigma, clip):
    """``z <- clamp(tanh(z) + clamp(eps * sigma, -clip, clip), -1, 1)``: the target policy's smoothed action."""
    for i in range(z.size):
        e = min(max(eps[i] * sigma, -clip), clip)
        z[i] = min(max(np.tanh(z[i]) + e, -_F1), _F1)


@njit(cache=True, error_model="numpy")
def td_target(q, reward, terminated, gamma, y):
    """``y[r] = reward[r] + gamma * (1 - terminated[r]) * min_i q[i, r]`` (``q`` ``[n, R]``)."""
    for r in range(y.size):
        m = q[0, r]
        for i in range(1, q.shape[0]):
            m = min(m, q[i, r])
        y[r] = reward[r] + gamma * (_F1 - terminated[r]) * m


@njit(cache=True, error_model="numpy")
def mse_grad(q, y, g, loss):
    """Per critic ``i``: ``loss[i] = mean_b (q[i, b] - y[i, b])^2`` and ``g = d sum(loss) / dq``."""
    n, b = q.shape
    inv = np.float32(1.0 / b)
    for i in range(n):
        s = np.float64(0.0)
        for j in range(b):
            d = q[i, j] - y[i, j]
            s += d * d
            g[i, j] = inv * (_F2 * d)
        loss[i] = s / b


@njit(cache=True, error_model="numpy")
def tanh_out_grad(g, a):
    """``g <- g * (1 - a^2)`` (``a = tanh(z)``: the output squash's backward)."""
    for i in range(g.size):
        g[i] = g[i] * (_F1 - a[i] * a[i])


@njit(cache=True, error_model="numpy")
def mul_(g, slope):
    """``g <- g * slope`` (a hidden activation's backward)."""
    for i in range(g.size):
        g[i] *= slope[i]
