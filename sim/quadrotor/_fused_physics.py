"""Per-env physics of the fused hover kernels: RK4 of the quadrotor state and the clean observation (numba).

Helpers take and return tuples of scalars (see ``_fused_kernels``). All float32 in the operation order of the
torch reference (``dynamics.py``), except that divisions by constants are multiplications by reciprocals.
``_deriv``'s parameter tuple ``p`` holds everything per env but the rotor geometry (``rx``, ``ry``, ``yw``
tuples): the paper's model passes a zero linear thrust term and one time constant both ways, which leaves its
results bit for bit those of the purely quadratic, symmetric model (``x + 0 == x``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_F1, _F2, _FH = np.float32(1.0), np.float32(2.0), np.float32(0.5)


@njit(inline="always", cache=True, error_model="numpy")
def _deriv(s, c0, c1, c2, c3, p, rx, ry, yw):
    """Time derivative of the 17-tuple state ``s`` (same equations as ``dynamics.state_derivative``).

    ``p`` = (kf, 1/m, Jx, Jy, Jz, 1/Jx, 1/Jy, 1/Jz, 1/tau_up, gx, gy, gz, Fx/m, Fy/m, Fz/m, tau_x, tau_y, tau_z,
    k_lin, 1/tau_down): rotor thrust ``kf w^2 + k_lin w``; the rotor-speed time constant is ``tau_up`` while the
    command is at or above the speed, else ``tau_down``.
    """
    qw, qx, qy, qz = s[3], s[4], s[5], s[6]
    wx, wy, wz = s[10], s[11], s[12]
    kf, kl = p[0], p[18]
    f0, f1 = kf * s[13] * s[13] + kl * s[13], kf * s[14] * s[14] + kl * s[14]
    f2, f3 = kf * s[15] * s[15] + kl * s[15], kf * s[16] * s[16] + kl * s[16]
    tx = f0 * ry[0] + f1 * ry[1] + f2 * ry[2] + f3 * ry[3] + p[15]
    ty = -(f0 * rx[0] + f1 * rx[1] + f2 * rx[2] + f3 * rx[3]) + p[16]
    tz = f0 * yw[0] + f1 * yw[1] + f2 * yw[2] + f3 * yw[3] + p[17]
    tm = (f0 + f1 + f2 + f3) * p[1]
    ax = _F2 * (qx * qz + qw * qy) * tm + p[9] + p[12]
    ay = _F2 * (qy * qz - qw * qx) * tm + p[10] + p[13]
    az = (_F1 - _F2 * (qx * qx + qy * qy)) * tm + p[11] + p[14]
    jx, jy, jz = p[2] * wx, p[3] * wy, p[4] * wz
    return (s[7], s[8], s[9],
            _FH * (-qx * wx - qy * wy - qz * wz), _FH * (qw * wx + qy * wz - qz * wy),
            _FH * (qw * wy - qx * wz + qz * wx), _FH * (qw * wz + qx * wy - qy * wx),
            ax, ay, az,
            (tx - (wy * jz - wz * jy)) * p[5], (ty - (wz * jx - wx * jz)) * p[6], (tz - (wx * jy - wy * jx)) * p[7],
            (c0 - s[13]) * (p[8] if c0 >= s[13] else p[19]), (c1 - s[14]) * (p[8] if c1 >= s[14] else p[19]),
            (c2 - s[15]) * (p[8] if c2 >= s[15] else p[19]), (c3 - s[16]) * (p[8] if c3 >= s[16] else p[19]))


@njit(inline="always", cache=True, error_model="numpy")
def _axpy(s, h, k):
    """``s + h * k`` for 17-tuples."""
    return (s[0] + h * k[0], s[1] + h * k[1], s[2] + h * k[2], s[3] + h * k[3], s[4] + h * k[4],
            s[5] + h * k[5], s[6] + h * k[6], s[7] + h * k[7], s[8] + h * k[8], s[9] + h * k[9],
            s[10] + h * k[10], s[11] + h * k[11], s[12] + h * k[12], s[13] + h * k[13], s[14] + h * k[14],
            s[15] + h * k[15], s[16] + h * k[16])


@njit(inline="always", cache=True, error_model="numpy")
def _rk4_sum(k1, k2, k3, k4):
    """``k1 + 2 k2 + 2 k3 + k4`` for 17-tuples (left to right, as the reference)."""
    return (k1[0] + _F2 * k2[0] + _F2 * k3[0] + k4[0], k1[1] + _F2 * k2[1] + _F2 * k3[1] + k4[1],
            k1[2] + _F2 * k2[2] + _F2 * k3[2] + k4[2], k1[3] + _F2 * k2[3] + _F2 * k3[3] + k4[3],
            k1[4] + _F2 * k2[4] + _F2 * k3[4] + k4[4], k1[5] + _F2 * k2[5] + _F2 * k3[5] + k4[5],
            k1[6] + _F2 * k2[6] + _F2 * k3[6] + k4[6], k1[7] + _F2 * k2[7] + _F2 * k3[7] + k4[7],
            k1[8] + _F2 * k2[8] + _F2 * k3[8] + k4[8], k1[9] + _F2 * k2[9] + _F2 * k3[9] + k4[9],
            k1[10] + _F2 * k2[10] + _F2 * k3[10] + k4[10], k1[11] + _F2 * k2[11] + _F2 * k3[11] + k4[11],
            k1[12] + _F2 * k2[12] + _F2 * k3[12] + k4[12], k1[13] + _F2 * k2[13] + _F2 * k3[13] + k4[13],
            k1[14] + _F2 * k2[14] + _F2 * k3[14] + k4[14], k1[15] + _F2 * k2[15] + _F2 * k3[15] + k4[15],
            k1[16] + _F2 * k2[16] + _F2 * k3[16] + k4[16])


@njit(inline="always", cache=True, error_model="numpy")
def _rk4(s, c0, c1, c2, c3, p, rx, ry, yw, dt, h6, lo, hi):
    """One RK4 step of the 17-tuple ``s``, then renormalise the quaternion and clamp the rotor speeds."""
    h2 = _FH * dt
    k1 = _deriv(s, c0, c1, c2, c3, p, rx, ry, yw)
    k2 = _deriv(_axpy(s, h2, k1), c0, c1, c2, c3, p, rx, ry, yw)
    k3 = _deriv(_axpy(s, h2, k2), c0, c1, c2, c3, p, rx, ry, yw)
    k4 = _deriv(_axpy(s, dt, k3), c0, c1, c2, c3, p, rx, ry, yw)
    x = _axpy(s, h6, _rk4_sum(k1, k2, k3, k4))
    n = _F1 / np.sqrt(x[3] * x[3] + x[4] * x[4] + x[5] * x[5] + x[6] * x[6])
    return (x[0], x[1], x[2], x[3] * n, x[4] * n, x[5] * n, x[6] * n, x[7], x[8], x[9], x[10], x[11], x[12],
            min(max(x[13], lo), hi), min(max(x[14], lo), hi), min(max(x[15], lo), hi), min(max(x[16], lo), hi))


@njit(inline="always", cache=True, error_model="numpy")
def _clean_obs(x, t0, t1, t2):
    """Noise-free state observation (18-tuple) of the 17-tuple state ``x`` relative to the target."""
    qw, qx, qy, qz = x[3], x[4], x[5], x[6]
    return (x[0] - t0, x[1] - t1, x[2] - t2,
            _F1 - _F2 * (qy * qy + qz * qz), _F2 * (qx * qy - qw * qz), _F2 * (qx * qz + qw * qy),
            _F2 * (qx * qy + qw * qz), _F1 - _F2 * (qx * qx + qz * qz), _F2 * (qy * qz - qw * qx),
            _F2 * (qx * qz - qw * qy), _F2 * (qy * qz + qw * qx), _F1 - _F2 * (qx * qx + qy * qy),
            x[7], x[8], x[9], x[10], x[11], x[12])


@njit(inline="always", cache=True, error_model="numpy")
def _nan_if_not_finite(x):
    """0 when all 17 entries are finite, else NaN (``inf - inf`` is NaN): a branch-free ``isfinite().all()``."""
    return ((x[0] - x[0]) + (x[1] - x[1]) + (x[2] - x[2]) + (x[3] - x[3]) + (x[4] - x[4]) + (x[5] - x[5])
            + (x[6] - x[6]) + (x[7] - x[7]) + (x[8] - x[8]) + (x[9] - x[9]) + (x[10] - x[10]) + (x[11] - x[11])
            + (x[12] - x[12]) + (x[13] - x[13]) + (x[14] - x[14]) + (x[15] - x[15]) + (x[16] - x[16]))
