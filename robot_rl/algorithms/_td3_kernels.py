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
def bias_act_(z, b, code):
    """``z <- act(z + b)`` in place (``z`` ``[n, R, H]``, ``b`` ``[n, H]``; ``code`` -1: no activation). The
    bias is added here rather than by ``baddbmm``/``addmm``, whose broadcast copy of it costs more than the
    whole pass; the GEMMs also add it after the product, so the rounding is the same."""
    n, rows, h = z.shape
    for i in range(n):
        for r in range(rows):
            for j in range(h):
                v = z[i, r, j] + b[i, j]
                z[i, r, j] = v if code < 0 else activate(v, code)


@njit(cache=True, error_model="numpy")
def bias_act_slope_(z, b, code, slope):
    """``z <- act(z + b)`` in place and ``slope = act'(z + b)`` (the derivative autograd would use)."""
    n, rows, h = z.shape
    for i in range(n):
        for r in range(rows):
            for j in range(h):
                v = z[i, r, j] + b[i, j]
                if code == 0:  # fast tanh: x (27 + x^2) / (27 + 9 x^2), x clamped to [-3, 3]; zero slope outside
                    x = min(max(v, -_F3), _F3)
                    x2 = x * x
                    z[i, r, j] = x * (x2 + _F27) / (x2 * _F9 + _F27)
                    d = x2 - _F9
                    e = x2 + _F3
                    slope[i, r, j] = (d * d) / (_F9 * e * e)
                elif code == 1:
                    t = np.tanh(v)
                    z[i, r, j] = t
                    slope[i, r, j] = _F1 - t * t
                else:
                    z[i, r, j] = max(v, _F0)
                    slope[i, r, j] = _F1 if v > _F0 else _F0


@njit(cache=True, error_model="numpy")
def bias_tanh_(z, b):
    """``z <- tanh(z + b)`` (``z`` ``[R, A]``): the actor's squashed output."""
    rows, h = z.shape
    for r in range(rows):
        for j in range(h):
            z[r, j] = np.tanh(z[r, j] + b[j])


@njit(cache=True, error_model="numpy")
def target_action_(z, b, eps, sigma, clip):
    """``z <- clamp(tanh(z + b) + clamp(eps * sigma, -clip, clip), -1, 1)``: the smoothed target action."""
    rows, h = z.shape
    for r in range(rows):
        for j in range(h):
            e = min(max(eps[r, j] * sigma, -clip), clip)
            z[r, j] = min(max(np.tanh(z[r, j] + b[j]) + e, -_F1), _F1)


@njit(cache=True, error_model="numpy")
def td_target(q, reward, terminated, gamma, y):
    """``y[r] = reward[r] + gamma * (1 - terminated[r]) * min_i q[i, r]`` (``q`` ``[n, R]``)."""
    for r in range(y.size):
        m = q[0, r]
        for i in range(1, q.shape[0]):
            m = min(m, q[i, r])
        y[r] = reward[r] + gamma * (_F1 - terminated[r]) * m


@njit(cache=True, error_model="numpy")
def mse_grad(q, b, y, g, loss):
    """Per critic ``i``: ``q[i] += b[i, 0]`` (the output bias), ``loss[i] = mean_j (q[i, j] - y[i, j])^2`` and
    ``g = d sum(loss) / dq``."""
    n, rows = q.shape
    inv = np.float32(1.0 / rows)
    for i in range(n):
        s = np.float64(0.0)
        for j in range(rows):
            q[i, j] += b[i, 0]
            d = q[i, j] - y[i, j]
            s += d * d
            g[i, j] = inv * (_F2 * d)
        loss[i] = s / rows


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
