"""Hand-written vector-Jacobian product of one fused hover step over vehicles (``_vehicle_kernels``).

The adjoint of ``_adjoint_kernels.vjp_rows`` with each env's vehicle in place of the frame's constants (the
vehicle is a constant of the differentiation, as in the torch env): its mass, inertia, thrust curve (quadratic
and linear term), rotor arms, yaw ratio, motor time constants up and down (the one in use is piecewise
constant), rotor-speed bounds (idle floor, maximum), command map ``max((a + 1) / 2 * rpm_max, idle)`` and hover
action (reward), and the observation latency.

Latency makes the actor observation of step ``t`` the clean observation of step ``t - latency`` (or, within
``latency`` steps of a reset, a constant). The differentiable state a step carries is therefore the dynamics
state (17) followed by the last ``L`` clean observations, newest first (``D_t[0..L-1]``, 18 each; ``L`` the
maximum latency): ``D_t = (clean(y_t), D_{t-1}[0..L-1])`` and the actor reads ``D_t[latency]``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.quadrotor._adjoint_kernels import _add, _f64, _obs_reward_vjp, _rk4_vjp, _row17, _store_row_vjp
from sim.quadrotor._fused_kernels import GEO_DT, GEO_G, GEO_H6
from sim.quadrotor._fused_physics import _rk4
from sim.quadrotor._vehicle_kernels import (
    VP_HOVER,
    VP_J,
    VP_KL,
    VP_KQ,
    VP_LAT,
    VP_M,
    VP_MAX,
    VP_MIN,
    VP_RX,
    VP_RY,
    VP_TAU_DN,
    VP_TAU_UP,
    VP_YAW,
)


@njit(inline="always", cache=True, error_model="numpy")
def _vehicle_params(e, vprm, force, torque, geo):
    """The ``p`` tuple of ``_deriv`` for env ``e``'s vehicle, in float64."""
    f, vp = np.float64, vprm[e]
    inv_m = 1.0 / f(vp[VP_M])
    return _f64((vp[VP_KQ], inv_m, vp[VP_J], vp[VP_J + 1], vp[VP_J + 2], 1.0 / f(vp[VP_J]), 1.0 / f(vp[VP_J + 1]),
                 1.0 / f(vp[VP_J + 2]), 1.0 / f(vp[VP_TAU_UP]), geo[GEO_G], geo[GEO_G + 1], geo[GEO_G + 2],
                 f(force[e, 0]) * inv_m, f(force[e, 1]) * inv_m, f(force[e, 2]) * inv_m, torque[e, 0], torque[e, 1],
                 torque[e, 2], vp[VP_KL], 1.0 / f(vp[VP_TAU_DN])))


@njit(inline="always", cache=True, error_model="numpy")
def _four(vp, i0):
    f = np.float64
    return (f(vp[i0]), f(vp[i0 + 1]), f(vp[i0 + 2]), f(vp[i0 + 3]))


@njit(inline="always", cache=True, error_model="numpy")
def _slope(u, idle, hm):
    """d max(u, idle) / d action for ``u = (action + 1) hm``."""
    return hm if u > idle else (0.5 * hm if u == idle else 0.0)


@njit(cache=True, error_model="numpy")
def vjp_rows_v(state, action, force, torque, target, vprm, geo, weights, g_next, g_obs, g_reward, live):
    """Cotangents of the pre-step carried state ``[N, 17 + 18 L]`` (dynamics state, then the last ``L`` clean
    observations), of the raw action ``[N, 4]`` and of the previous actor observation ``[N, 18 + 4 H]`` (non-zero
    only in its action history) of one step over vehicles ``vprm``; arguments as ``_adjoint_kernels.vjp_rows``,
    with ``g_next`` ``[N, 17 + 18 L]`` the cotangent of the carried state after the step. ``weights[7]`` (the
    frame's hover action) is replaced by each vehicle's."""
    n, m = state.shape[0], g_obs.shape[1] - 18
    lmax = (g_next.shape[1] - 17) // 18
    dt_ = state.dtype
    g_state, g_action, g_hist = (np.zeros((n, 17 + 18 * lmax), dt_), np.empty((n, 4), dt_),
                                 np.zeros((n, 18 + m), dt_))
    f64 = np.float64
    dt, h6 = f64(geo[GEO_DT]), f64(geo[GEO_H6])
    gd = np.zeros(18 * (lmax + 1))  # cotangents of D_t[0..L] of one env
    for e in range(n):
        ok = live[e]
        vp = vprm[e]
        s = _row17(state, e, True)
        raw = (f64(action[e, 0]), f64(action[e, 1]), f64(action[e, 2]), f64(action[e, 3]))
        a = (min(max(raw[0], -1.0), 1.0), min(max(raw[1], -1.0), 1.0), min(max(raw[2], -1.0), 1.0),
             min(max(raw[3], -1.0), 1.0))
        hm, idle, top = 0.5 * f64(vp[VP_MAX]), f64(vp[VP_MIN]), f64(vp[VP_MAX])
        u = ((a[0] + 1.0) * hm, (a[1] + 1.0) * hm, (a[2] + 1.0) * hm, (a[3] + 1.0) * hm)
        c = (max(u[0], idle), max(u[1], idle), max(u[2], idle), max(u[3], idle))
        p = _vehicle_params(e, vprm, force, torque, geo)
        rx, ry, yw = _four(vp, VP_RX), _four(vp, VP_RY), _four(vp, VP_YAW)
        y = _rk4(s, c[0], c[1], c[2], c[3], p, rx, ry, yw, dt, h6, idle, top)
        # the delay line: the actor read D_t[latency]; D_t[0] is this step's clean observation and
        # D_t[1..L] = D_{t-1}[0..L-1] (the pre-step carried state); D_t[L] is not carried on
        gd[:] = 0.0
        if ok:
            for i in range(18 * lmax):
                gd[i] = g_next[e, 17 + i]
            if int(vp[VP_LAT]) > lmax:
                raise ValueError("vjp_rows_v: g_next has fewer delay slots than a latency needs")
            o = 18 * int(vp[VP_LAT])
            for i in range(18):
                gd[o + i] += g_obs[e, i]
            for i in range(18 * lmax):
                g_state[e, 17 + i] = gd[18 + i]
        go = (gd[0], gd[1], gd[2], gd[3], gd[4], gd[5], gd[6], gd[7], gd[8], gd[9], gd[10], gd[11], gd[12], gd[13],
              gd[14], gd[15], gd[16], gd[17])
        w = (f64(weights[0]), f64(weights[1]), f64(weights[2]), f64(weights[3]), f64(weights[4]), f64(weights[5]),
             f64(weights[6]), f64(vp[VP_HOVER]))
        t = (f64(target[e, 0]), f64(target[e, 1]), f64(target[e, 2]))
        gy, ga = _obs_reward_vjp(y, a, t, go, f64(g_reward[e]), w)
        gs, gc = _rk4_vjp(s, c, p, rx, ry, yw, dt, h6, idle, top, _add(gy, _row17(g_next, e, ok)))
        # torch.maximum's gradient: to the larger input, split evenly on a tie
        dc = (_slope(u[0], idle, hm), _slope(u[1], idle, hm), _slope(u[2], idle, hm), _slope(u[3], idle, hm))
        _store_row_vjp(g_state, g_action, g_hist, g_obs, e, ok, gs, ga, gc, dc, raw)
    return g_state, g_action, g_hist
