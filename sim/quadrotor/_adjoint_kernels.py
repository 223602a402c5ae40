"""Numba kernels of the differentiable hover step: forward math and its hand-written vector-Jacobian product.

One hover step maps the state ``s`` (17) and the action ``a`` (4) to the next state ``y`` (RK4 over the full
state with constant commanded RPM, then quaternion renormalisation and rotor-speed clamp), the noise-free actor
observation ``o(y)`` (18: position - target, row-major rotation matrix, linear and angular velocity) and the
reward ``r(y, a)`` (linear in the five terms of ``task.reward_terms``). :func:`vjp_rows` returns, for
cotangents ``(g_y, g_o, g_r)``, the cotangents of ``s`` and ``a``: the adjoint of that chain (reward and
observation, clamp and renormalisation, the four RK4 stages in reverse, each through the Jacobian of
``state_derivative``, and the action clamp / action-to-RPM map), the same derivatives torch autograd takes of
``dynamics.rk4_step`` + ``task.reward_terms`` + ``task.QuadrotorHoverEnv._state_obs``.

The forward stages are recomputed (no tape) and the adjoint runs in float64 whatever the array dtype; the
results are cast on store. Kernels are dtype-generic in their arrays (float32 for training, float64 for
``torch.autograd.gradcheck``): all arrays of one call must share the dtype. Parameter layouts are those of
``_fused_kernels`` (``geo``, ``prm``); ``weights`` = 5 reward weights, scale, constant, hover action.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.quadrotor._fused_kernels import (
    GEO_DT,
    GEO_G,
    GEO_H6,
    GEO_HALF_SPAN,
    GEO_RPM_MAX,
    GEO_RPM_MIN,
    GEO_RX,
    GEO_RY,
    GEO_YAW,
)
from sim.quadrotor._fused_physics import _axpy, _clean_obs, _deriv, _rk4

_D1 = 1.0


@njit(inline="always", cache=True, error_model="numpy")
def _add(a, b):
    """``a + b`` for 17-tuples."""
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5], a[6] + b[6],
            a[7] + b[7], a[8] + b[8], a[9] + b[9], a[10] + b[10], a[11] + b[11], a[12] + b[12], a[13] + b[13],
            a[14] + b[14], a[15] + b[15], a[16] + b[16])


@njit(inline="always", cache=True, error_model="numpy")
def _scale(h, a):
    """``h * a`` for a 17-tuple."""
    return (h * a[0], h * a[1], h * a[2], h * a[3], h * a[4], h * a[5], h * a[6], h * a[7], h * a[8], h * a[9],
            h * a[10], h * a[11], h * a[12], h * a[13], h * a[14], h * a[15], h * a[16])


@njit(inline="always", cache=True, error_model="numpy")
def _deriv_vjp(z, c, p, rx, ry, yw, g):
    """Cotangents of the state ``z`` (17-tuple) and of the commanded RPM ``c`` (4-tuple) of ``_deriv(z, c, p)``
    for the output cotangent ``g`` (17-tuple). ``p`` as in ``_deriv`` (disturbances enter additively; the choice
    of time constant, up or down, is piecewise constant)."""
    qw, qx, qy, qz = z[3], z[4], z[5], z[6]
    wx, wy, wz = z[10], z[11], z[12]
    kf, inv_m, jx, jy, jz, ijx, ijy, ijz, iu, idn, kl = p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[19], \
        p[18]
    # quaternion kinematics q_dot = 0.5 * Omega(w) q
    h0, h1, h2, h3 = 0.5 * g[3], 0.5 * g[4], 0.5 * g[5], 0.5 * g[6]
    gqw = h1 * wx + h2 * wy + h3 * wz
    gqx = -h0 * wx - h2 * wz + h3 * wy
    gqy = -h0 * wy + h1 * wz - h3 * wx
    gqz = -h0 * wz - h1 * wy + h2 * wx
    gwx = -h0 * qx + h1 * qw + h2 * qz - h3 * qy
    gwy = -h0 * qy - h1 * qz + h2 * qw + h3 * qx
    gwz = -h0 * qz + h1 * qy - h2 * qx + h3 * qw
    # acceleration = R(q) e_z * T / m + g + F / m
    f0, f1 = kf * z[13] * z[13] + kl * z[13], kf * z[14] * z[14] + kl * z[14]
    f2, f3 = kf * z[15] * z[15] + kl * z[15], kf * z[16] * z[16] + kl * z[16]
    tm = (f0 + f1 + f2 + f3) * inv_m
    gax, gay, gaz = g[7], g[8], g[9]
    g_tm = (gax * 2.0 * (qx * qz + qw * qy) + gay * 2.0 * (qy * qz - qw * qx)
            + gaz * (1.0 - 2.0 * (qx * qx + qy * qy)))
    t2 = 2.0 * tm
    gqw += t2 * (gax * qy - gay * qx)
    gqx += t2 * (gax * qz - gay * qw - 2.0 * gaz * qx)
    gqy += t2 * (gax * qw + gay * qz - 2.0 * gaz * qy)
    gqz += t2 * (gax * qx + gay * qy)
    g_thrust = g_tm * inv_m
    # angular acceleration (tau - w x J w) / J
    hx, hy, hz = g[10] * ijx, g[11] * ijy, g[12] * ijz
    gwx -= hy * (jx - jz) * wz + hz * (jy - jx) * wy
    gwy -= hx * (jz - jy) * wz + hz * (jy - jx) * wx
    gwz -= hx * (jz - jy) * wy + hy * (jx - jz) * wx
    # rotor thrusts f_i = kf rpm_i^2 + kl rpm_i feed thrust and torque; rpm_dot = (cmd - rpm) / tau
    gf0 = g_thrust + hx * ry[0] - hy * rx[0] + hz * yw[0]
    gf1 = g_thrust + hx * ry[1] - hy * rx[1] + hz * yw[1]
    gf2 = g_thrust + hx * ry[2] - hy * rx[2] + hz * yw[2]
    gf3 = g_thrust + hx * ry[3] - hy * rx[3] + hz * yw[3]
    gc0, gc1 = g[13] * (iu if c[0] >= z[13] else idn), g[14] * (iu if c[1] >= z[14] else idn)
    gc2, gc3 = g[15] * (iu if c[2] >= z[15] else idn), g[16] * (iu if c[3] >= z[16] else idn)
    k2 = 2.0 * kf
    gz = (0.0, 0.0, 0.0, gqw, gqx, gqy, gqz, g[0], g[1], g[2], gwx, gwy, gwz, (k2 * z[13] + kl) * gf0 - gc0,
          (k2 * z[14] + kl) * gf1 - gc1, (k2 * z[15] + kl) * gf2 - gc2, (k2 * z[16] + kl) * gf3 - gc3)
    return gz, (gc0, gc1, gc2, gc3)


@njit(inline="always", cache=True, error_model="numpy")
def _rk4_vjp(s, c, p, rx, ry, yw, dt, h6, lo, hi, gy):
    """Cotangents of ``s`` and of the commanded RPM ``c`` of ``_rk4(s, c)`` for the cotangent ``gy`` of its
    output (renormalised quaternion, clamped rotor speeds). Recomputes the stages."""
    h2 = 0.5 * dt
    k1 = _deriv(s, c[0], c[1], c[2], c[3], p, rx, ry, yw)
    z2 = _axpy(s, h2, k1)
    k2 = _deriv(z2, c[0], c[1], c[2], c[3], p, rx, ry, yw)
    z3 = _axpy(s, h2, k2)
    k3 = _deriv(z3, c[0], c[1], c[2], c[3], p, rx, ry, yw)
    z4 = _axpy(s, dt, k3)
    k4 = _deriv(z4, c[0], c[1], c[2], c[3], p, rx, ry, yw)
    x = _axpy(_axpy(_axpy(_axpy(s, h6, k1), 2.0 * h6, k2), 2.0 * h6, k3), h6, k4)
    # renormalisation q / |q| and clamp of the rotor speeds (gradient where lo <= rpm <= hi, as torch.clamp)
    inv_n = 1.0 / np.sqrt(x[3] * x[3] + x[4] * x[4] + x[5] * x[5] + x[6] * x[6])
    uw, ux, uy, uz = x[3] * inv_n, x[4] * inv_n, x[5] * inv_n, x[6] * inv_n
    dot = uw * gy[3] + ux * gy[4] + uy * gy[5] + uz * gy[6]
    gx = (gy[0], gy[1], gy[2], (gy[3] - uw * dot) * inv_n, (gy[4] - ux * dot) * inv_n,
          (gy[5] - uy * dot) * inv_n, (gy[6] - uz * dot) * inv_n, gy[7], gy[8], gy[9], gy[10], gy[11], gy[12],
          gy[13] if lo <= x[13] <= hi else 0.0, gy[14] if lo <= x[14] <= hi else 0.0,
          gy[15] if lo <= x[15] <= hi else 0.0, gy[16] if lo <= x[16] <= hi else 0.0)
    # x = s + h6 (k1 + 2 k2 + 2 k3 + k4), k_{i+1} = f(s + h_i k_i): reverse the stages
    gz4, gc4 = _deriv_vjp(z4, c, p, rx, ry, yw, _scale(h6, gx))
    gz3, gc3 = _deriv_vjp(z3, c, p, rx, ry, yw, _add(_scale(2.0 * h6, gx), _scale(dt, gz4)))
    gz2, gc2 = _deriv_vjp(z2, c, p, rx, ry, yw, _add(_scale(2.0 * h6, gx), _scale(h2, gz3)))
    gz1, gc1 = _deriv_vjp(s, c, p, rx, ry, yw, _add(_scale(h6, gx), _scale(h2, gz2)))
    gs = _add(_add(_add(_add(gx, gz4), gz3), gz2), gz1)
    gc = (gc1[0] + gc2[0] + gc3[0] + gc4[0], gc1[1] + gc2[1] + gc3[1] + gc4[1],
          gc1[2] + gc2[2] + gc3[2] + gc4[2], gc1[3] + gc2[3] + gc3[3] + gc4[3])
    return gs, gc


@njit(inline="always", cache=True, error_model="numpy")
def _obs_reward_vjp(y, a, t, go, gr, w):
    """Cotangent of the post-step state ``y`` (17-tuple) and of the clamped action ``a`` (4-tuple) from the
    cotangent ``go`` (18-tuple) of the clean observation and ``gr`` of the reward; ``t`` is the target,
    ``w`` = (w_p, w_q, w_v, w_omega, w_a, scale, constant, hover)."""
    qw, qx, qy, qz = y[3], y[4], y[5], y[6]
    c0, c1, c2, c3, c4 = (-w[5] * w[0] * gr, -w[5] * w[1] * gr, -w[5] * w[2] * gr, -w[5] * w[3] * gr,
                          -w[5] * w[4] * gr)
    g00, g01, g02, g10, g11, g12, g20, g21, g22 = go[3], go[4], go[5], go[6], go[7], go[8], go[9], go[10], go[11]
    gqw = 2.0 * (-g01 * qz + g02 * qy + g10 * qz - g12 * qx - g20 * qy + g21 * qx) - 2.0 * c1 * qw
    gqx = 2.0 * (g01 * qy + g02 * qz + g10 * qy - 2.0 * g11 * qx - g12 * qw + g20 * qz + g21 * qw - 2.0 * g22 * qx)
    gqy = 2.0 * (-2.0 * g00 * qy + g01 * qx + g02 * qw + g10 * qx + g12 * qz - g20 * qw + g21 * qz - 2.0 * g22 * qy)
    gqz = 2.0 * (-2.0 * g00 * qz - g01 * qw + g02 * qx + g10 * qw - 2.0 * g11 * qz + g12 * qy + g20 * qx + g21 * qy)
    gy = (go[0] + 2.0 * c0 * (y[0] - t[0]), go[1] + 2.0 * c0 * (y[1] - t[1]), go[2] + 2.0 * c0 * (y[2] - t[2]),
          gqw, gqx, gqy, gqz,
          go[12] + 2.0 * c2 * y[7], go[13] + 2.0 * c2 * y[8], go[14] + 2.0 * c2 * y[9],
          go[15] + 2.0 * c3 * y[10], go[16] + 2.0 * c3 * y[11], go[17] + 2.0 * c3 * y[12], 0.0, 0.0, 0.0, 0.0)
    h = w[7]
    ga = (2.0 * c4 * (a[0] - h), 2.0 * c4 * (a[1] - h), 2.0 * c4 * (a[2] - h), 2.0 * c4 * (a[3] - h))
    return gy, ga


@njit(inline="always", cache=True, error_model="numpy")
def _row_params(e, prm, force, torque, geo):
    """The ``p`` tuple of ``_deriv`` for env ``e`` in the arrays' dtype (``prm`` row = m, Jx, Jy, Jz, kf, tau)."""
    one = prm[e, 0] / prm[e, 0]
    inv_m = one / prm[e, 0]
    return (prm[e, 4], inv_m, prm[e, 1], prm[e, 2], prm[e, 3], one / prm[e, 1], one / prm[e, 2], one / prm[e, 3],
            one / prm[e, 5], geo[GEO_G], geo[GEO_G + 1], geo[GEO_G + 2], force[e, 0] * inv_m, force[e, 1] * inv_m,
            force[e, 2] * inv_m, torque[e, 0], torque[e, 1], torque[e, 2], one - one, one / prm[e, 5])


@njit(inline="always", cache=True, error_model="numpy")
def _f64(t):
    """A tuple of 20 numbers as float64."""
    return (np.float64(t[0]), np.float64(t[1]), np.float64(t[2]), np.float64(t[3]), np.float64(t[4]),
            np.float64(t[5]), np.float64(t[6]), np.float64(t[7]), np.float64(t[8]), np.float64(t[9]),
            np.float64(t[10]), np.float64(t[11]), np.float64(t[12]), np.float64(t[13]), np.float64(t[14]),
            np.float64(t[15]), np.float64(t[16]), np.float64(t[17]), np.float64(t[18]), np.float64(t[19]))


@njit(cache=True, error_model="numpy")
def forward_rows(state, action, force, torque, target, prm, geo, weights):
    """Next state ``[N, 17]``, clean observation ``[N, 18]`` and reward ``[N]`` of every row, without
    termination or resets (the math that :func:`vjp_rows` differentiates), in the dtype of the arrays."""
    n = state.shape[0]
    nxt, obs, rew = np.empty_like(state), np.empty((n, 18), state.dtype), np.empty(n, state.dtype)
    rx = (geo[GEO_RX], geo[GEO_RX + 1], geo[GEO_RX + 2], geo[GEO_RX + 3])
    ry = (geo[GEO_RY], geo[GEO_RY + 1], geo[GEO_RY + 2], geo[GEO_RY + 3])
    yw = (geo[GEO_YAW], geo[GEO_YAW + 1], geo[GEO_YAW + 2], geo[GEO_YAW + 3])
    lo, hi, span = geo[GEO_RPM_MIN], geo[GEO_RPM_MAX], geo[GEO_HALF_SPAN]
    one = geo[GEO_DT] / geo[GEO_DT]
    for e in range(n):
        s = (state[e, 0], state[e, 1], state[e, 2], state[e, 3], state[e, 4], state[e, 5], state[e, 6],
             state[e, 7], state[e, 8], state[e, 9], state[e, 10], state[e, 11], state[e, 12], state[e, 13],
             state[e, 14], state[e, 15], state[e, 16])
        a = (min(max(action[e, 0], -one), one), min(max(action[e, 1], -one), one),
             min(max(action[e, 2], -one), one), min(max(action[e, 3], -one), one))
        p = _row_params(e, prm, force, torque, geo)
        x = _rk4(s, (a[0] + one) * span + lo, (a[1] + one) * span + lo, (a[2] + one) * span + lo,
                 (a[3] + one) * span + lo, p, rx, ry, yw, geo[GEO_DT], geo[GEO_H6], lo, hi)
        for i in range(17):
            nxt[e, i] = x[i]
        o = _clean_obs(x, target[e, 0], target[e, 1], target[e, 2])
        for i in range(18):
            obs[e, i] = o[i]
        p0, p1, p2 = x[0] - target[e, 0], x[1] - target[e, 1], x[2] - target[e, 2]
        d0, d1, d2, d3 = a[0] - weights[7], a[1] - weights[7], a[2] - weights[7], a[3] - weights[7]
        cost = (weights[0] * (p0 * p0 + p1 * p1 + p2 * p2) + weights[1] * (one - x[3] * x[3])
                + weights[2] * (x[7] * x[7] + x[8] * x[8] + x[9] * x[9])
                + weights[3] * (x[10] * x[10] + x[11] * x[11] + x[12] * x[12])
                + weights[4] * (d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3))
        rew[e] = -weights[5] * cost + weights[6]
    return nxt, obs, rew


@njit(inline="always", cache=True, error_model="numpy")
def _row17(a, e, ok):
    """Row ``e`` of ``a`` (17 or more columns) as a float64 17-tuple, or zeros when not ``ok``."""
    if not ok:
        return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    f = np.float64
    return (f(a[e, 0]), f(a[e, 1]), f(a[e, 2]), f(a[e, 3]), f(a[e, 4]), f(a[e, 5]), f(a[e, 6]), f(a[e, 7]),
            f(a[e, 8]), f(a[e, 9]), f(a[e, 10]), f(a[e, 11]), f(a[e, 12]), f(a[e, 13]), f(a[e, 14]), f(a[e, 15]),
            f(a[e, 16]))


@njit(inline="always", cache=True, error_model="numpy")
def _store_row_vjp(g_state, g_action, g_hist, g_obs, e, ok, gs, ga, gc, dc, raw):
    """Write row ``e`` of one step's cotangents (shared by the nominal and the vehicle kernels).

    ``g_state[e]`` gets ``gs``. ``g_action[e]`` gets ``ga + dc * gc`` (``dc``: d rotor command / d action), plus,
    on a live row, the cotangent of the new history's last slot; it is zero where the clamp to [-1, 1] was
    active. On a live row, ``g_hist[e]`` gets the history's cotangent shifted back by one action."""
    m = g_obs.shape[1] - 18
    for i in range(17):
        g_state[e, i] = gs[i]
    for i in range(4):
        gai = ga[i] + dc[i] * gc[i]
        if ok and m > 0:
            gai += np.float64(g_obs[e, 14 + m + i])
        g_action[e, i] = gai if -1.0 <= raw[i] <= 1.0 else 0.0
    if ok:
        for i in range(m - 4):
            g_hist[e, 22 + i] = g_obs[e, 18 + i]


@njit(cache=True, error_model="numpy")
def vjp_rows(state, action, force, torque, target, prm, geo, weights, g_next, g_obs, g_reward, live):
    """Cotangents of the pre-step ``state`` ``[N, 17]``, of the raw ``action`` ``[N, 4]`` (before its clamp
    to [-1, 1]) and of the previous action history of one hover step.

    ``g_next`` ``[N, 17]`` is the cotangent of the next state and ``g_obs`` ``[N, 18 + 4 H]`` that of the
    actor observation: the clean 18 columns, then the new action history (oldest first: the previous history
    shifted by one action, then the clamped action; ``H = 0``: no history). Both are used only for rows with
    ``live`` (envs that were not reset: a reset starts a gradient-free branch); ``g_reward`` ``[N]`` applies to
    every row (the reward is that of the pre-reset state). Returns ``g_state, g_action, g_prev``: ``g_prev``
    ``[N, 18 + 4 H]`` is the cotangent of the previous actor observation (non-zero only in its history).
    """
    n, m = state.shape[0], g_obs.shape[1] - 18
    dt_ = state.dtype
    g_state, g_action, g_hist = np.empty((n, 17), dt_), np.empty((n, 4), dt_), np.zeros((n, 18 + m), dt_)
    f64 = np.float64
    rx = (f64(geo[GEO_RX]), f64(geo[GEO_RX + 1]), f64(geo[GEO_RX + 2]), f64(geo[GEO_RX + 3]))
    ry = (f64(geo[GEO_RY]), f64(geo[GEO_RY + 1]), f64(geo[GEO_RY + 2]), f64(geo[GEO_RY + 3]))
    yw = (f64(geo[GEO_YAW]), f64(geo[GEO_YAW + 1]), f64(geo[GEO_YAW + 2]), f64(geo[GEO_YAW + 3]))
    lo, hi, span = f64(geo[GEO_RPM_MIN]), f64(geo[GEO_RPM_MAX]), f64(geo[GEO_HALF_SPAN])
    dt, h6 = f64(geo[GEO_DT]), f64(geo[GEO_H6])
    w = (f64(weights[0]), f64(weights[1]), f64(weights[2]), f64(weights[3]), f64(weights[4]), f64(weights[5]),
         f64(weights[6]), f64(weights[7]))
    for e in range(n):
        ok = live[e]
        s = _row17(state, e, True)
        raw = (f64(action[e, 0]), f64(action[e, 1]), f64(action[e, 2]), f64(action[e, 3]))
        a = (min(max(raw[0], -_D1), _D1), min(max(raw[1], -_D1), _D1), min(max(raw[2], -_D1), _D1),
             min(max(raw[3], -_D1), _D1))
        c = ((a[0] + 1.0) * span + lo, (a[1] + 1.0) * span + lo, (a[2] + 1.0) * span + lo,
             (a[3] + 1.0) * span + lo)
        p = _f64(_row_params(e, prm, force, torque, geo))
        y = _rk4(s, c[0], c[1], c[2], c[3], p, rx, ry, yw, dt, h6, lo, hi)
        t = (f64(target[e, 0]), f64(target[e, 1]), f64(target[e, 2]))
        go17 = _row17(g_obs, e, ok)
        go = (go17[0], go17[1], go17[2], go17[3], go17[4], go17[5], go17[6], go17[7], go17[8], go17[9], go17[10],
              go17[11], go17[12], go17[13], go17[14], go17[15], go17[16], f64(g_obs[e, 17]) if ok else 0.0)
        gy, ga = _obs_reward_vjp(y, a, t, go, f64(g_reward[e]), w)
        gs, gc = _rk4_vjp(s, c, p, rx, ry, yw, dt, h6, lo, hi, _add(gy, _row17(g_next, e, ok)))
        _store_row_vjp(g_state, g_action, g_hist, g_obs, e, ok, gs, ga, gc, (span, span, span, span), raw)
    return g_state, g_action, g_hist
