"""Numba kernels of the fused hover env: RK4, reward, termination, observations and resets in one pass.

Work is split into chunks of envs (``CHUNK``); each chunk runs one plain (serial) numba loop per stage over its
envs while they are hot in cache, and chunks run in parallel. The call tree is kept shallow on purpose: numba
re-optimises a callee's code in every caller, so compile time grows with depth. Per-env helpers take and return
tuples of scalars only: a numba call per env that passes arrays costs reference counting dearer than the physics.

Per-env buffers travel as the tuple ``bufs`` = (state, force, torque, target, steps, prm, factors, ring, keys, ctr)
and step outputs as ``outs`` = (policy, critic, reward, terms, flags).

All physics is float32 in the operation order of the torch reference (``dynamics.py``, ``task.py``), except that
divisions by constants (mass, inertia, motor time constant, quaternion norm, maximum RPM) are multiplications by
their reciprocals (a difference of an ulp or so).
No fast-math flags: the results are IEEE float32 and identical for any number of threads.

Shared constants travel in two small arrays, ``geo`` (float32, see ``GEO_*``) and ``task`` (float64, ``T_*``);
per-env parameters in ``prm`` ``[N, 6]`` = mass, inertia x/y/z, thrust coefficient, motor time constant.
The per-env physics is ``_fused_physics``; the same task over a distribution of vehicles is ``_vehicle_kernels``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from sim.quadrotor._fused_physics import _clean_obs, _nan_if_not_finite, _rk4
from sim.quadrotor._fused_rng import (
    FALLBACK_BASE,
    ZIG_K,
    ZIG_W,
    _ziggurat_fallback,
    draw,
    event_stream,
    normal32,
    normal_pair,
    to_unit,
)

(GEO_RX, GEO_RY, GEO_YAW, GEO_G, GEO_RPM_MIN, GEO_RPM_MAX, GEO_DT, GEO_H6, GEO_HALF_SPAN, GEO_BASE,
 GEO_SIZE) = 0, 4, 8, 12, 15, 16, 17, 18, 19, 20, 26
(T_POS_LIMIT, T_MAX_STEPS, T_HOVER, T_NOISE, T_GUIDE, T_INIT_P, T_MIN_W, T_INIT_V, T_INIT_W, T_INIT_RPM, T_FSTD,
 T_TSTD, T_DR, T_DR_LO, T_DR_HI, T_HIST, T_CRITIC_HIST, T_INIT_HOVER, T_SIZE) = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                                                                12, 13, 17, 21, 22, 23, 24)
_LOW32 = np.uint64(0xFFFFFFFF)
#: Envs per chunk of a step (the chunk's data stays in L2 between stages) and of resets.
CHUNK, RESET_CHUNK = 512, 32
_F0, _F1, _F2, _FH, _FM1 = np.float32(0.0), np.float32(1.0), np.float32(2.0), np.float32(0.5), np.float32(-1.0)


@njit(cache=True, error_model="numpy")
def _reset_env(e, bufs, geo, task):
    """Sample a new episode for env ``e``: parameters (if randomised), initial state, disturbances."""
    state, force, torque, target, steps, prm, factors, ring, keys, ctr = bufs
    z = event_stream(keys[e], ctr[e])
    ctr[e] += np.uint64(1)
    j = 0
    if task[T_DR] != 0.0:
        for i in range(4):
            lo, hi = task[T_DR_LO + i], task[T_DR_HI + i]
            factors[e, i] = np.float32(to_unit(draw(z, j)) * (hi - lo) + lo)
            j += 1
        prm[e, 0] = geo[GEO_BASE] * factors[e, 0]
        for i in range(1, 4):
            prm[e, i] = geo[GEO_BASE + i] * factors[e, 1]
        prm[e, 4] = geo[GEO_BASE + 4] * factors[e, 2]
        prm[e, 5] = geo[GEO_BASE + 5] * factors[e, 3]
    _reset_state(e, z, j, bufs, geo, task)


@njit(inline="always", cache=True, error_model="numpy")
def _reset_state(e, z, j, bufs, geo, task):
    """Initial state, disturbances (force scaled by the weight of ``prm[e, 0]``) and cleared history of env ``e``
    from draws ``j, j + 1, ...`` of its reset event ``z``."""
    state, force, torque, target, steps, prm, factors, ring, keys, ctr = bufs
    s = state[e]
    fb = FALLBACK_BASE
    guided = to_unit(draw(z, j)) < task[T_GUIDE]
    j += 1
    if guided:
        for i in range(3):
            s[i] = target[e, i]
        s[3], s[4], s[5], s[6] = _F1, np.float32(0.0), np.float32(0.0), np.float32(0.0)
    else:
        pm = task[T_INIT_P]
        for i in range(3):
            s[i] = np.float32(to_unit(draw(z, j)) * 2.0 * pm - pm) + target[e, i]
            j += 1
        if task[T_MIN_W] >= 1.0:  # a maximum angle of 0: level (rejection would never accept)
            s[3], s[4], s[5], s[6] = _F1, np.float32(0.0), np.float32(0.0), np.float32(0.0)
        while task[T_MIN_W] < 1.0:  # uniform over rotations of at most the maximum angle, by rejection
            q0, q1, fb = normal_pair(z, j, fb)
            q2, q3, fb = normal_pair(z, j + 1, fb)
            j += 2
            qn = np.sqrt(np.float64(q0) ** 2 + np.float64(q1) ** 2 + np.float64(q2) ** 2 + np.float64(q3) ** 2)
            sign = 1.0 if q0 >= 0 else -1.0
            if qn > 0.0 and sign * q0 / qn >= task[T_MIN_W]:
                s[3], s[4], s[5], s[6] = sign * q0 / qn, sign * q1 / qn, sign * q2 / qn, sign * q3 / qn
                break
    vm, wm = task[T_INIT_V], task[T_INIT_W]
    for i in range(3):
        s[7 + i] = np.float32(to_unit(draw(z, j)) * 2.0 * vm - vm)
        s[10 + i] = np.float32(to_unit(draw(z, j + 1)) * 2.0 * wm - wm)
        j += 2
    w0 = np.float32(task[T_INIT_RPM])
    if task[T_INIT_HOVER] != 0.0:  # this env's hover speed (task.init_rpm_hover): 4 k_f w^2 = m |g|
        g = np.sqrt(geo[GEO_G] * geo[GEO_G] + geo[GEO_G + 1] * geo[GEO_G + 1] + geo[GEO_G + 2] * geo[GEO_G + 2])
        w0 = np.float32(np.sqrt(prm[e, 0] * g / (np.float32(4.0) * prm[e, 4])))
        w0 = min(max(w0, geo[GEO_RPM_MIN]), geo[GEO_RPM_MAX])
    for i in range(4):
        s[13 + i] = w0
    weight = prm[e, 0] * geo[GEO_G + 2] * _FM1
    fstd, tstd = weight * np.float32(task[T_FSTD]), np.float32(task[T_TSTD])
    for i in range(3):
        nf, fb = normal32(draw(z, j) & _LOW32, z, fb)
        nt, fb = normal32(draw(z, j + 1) & _LOW32, z, fb)
        j += 2
        force[e, i] = nf * fstd
        torque[e, i] = nt * tstd
    for i in range(ring.shape[1]):
        ring[e, i] = 0.0
    steps[e] = 0


#: Rows of the per-chunk structure-of-arrays scratch of ``_step_rows`` (one column per env).
(S_STATE, S_CMD, S_ACT, S_PRM, S_FM, S_TQ, S_TGT, S_TERMS, S_REWARD, S_TERM, S_ROWS) = (
    0, 17, 21, 25, 34, 37, 40, 43, 48, 49, 50)


@njit(cache=True, error_model="numpy")
def _step_rows(lo, hi, action, bufs, outs, head, geo, task, weights):
    """Dynamics, reward, termination and action ring of envs ``lo..hi``, in blocks of ``CHUNK``.

    The envs' inputs are gathered into a structure-of-arrays scratch (one row per quantity, one column per env),
    so that the RK4 loop is branch-free over contiguous rows and compiles to SIMD code (AVX2/AVX-512 lanes over
    envs; about 4x faster than one env at a time), then the results are scattered back.
    """
    state, force, torque, target, steps, prm, factors, ring, keys, ctr = bufs
    reward, terms, flags = outs[2], outs[3], outs[4]
    rx = (geo[GEO_RX], geo[GEO_RX + 1], geo[GEO_RX + 2], geo[GEO_RX + 3])
    ry = (geo[GEO_RY], geo[GEO_RY + 1], geo[GEO_RY + 2], geo[GEO_RY + 3])
    yw = (geo[GEO_YAW], geo[GEO_YAW + 1], geo[GEO_YAW + 2], geo[GEO_YAW + 3])
    gx, gy, gz = geo[GEO_G], geo[GEO_G + 1], geo[GEO_G + 2]
    lo_rpm, hi_rpm, dt, h6, span = geo[GEO_RPM_MIN], geo[GEO_RPM_MAX], geo[GEO_DT], geo[GEO_H6], geo[GEO_HALF_SPAN]
    hover, limit = np.float32(task[T_HOVER]), np.float32(task[T_POS_LIMIT])
    max_steps = int(task[T_MAX_STEPS])
    w0, w1, w2, w3, w4, scale, const = (weights[0], weights[1], weights[2], weights[3], weights[4], weights[5],
                                        weights[6])
    dr = task[T_DR] != 0.0
    m0, jx0, jy0, jz0, kf0, tau0 = (geo[GEO_BASE], geo[GEO_BASE + 1], geo[GEO_BASE + 2], geo[GEO_BASE + 3],
                                    geo[GEO_BASE + 4], geo[GEO_BASE + 5])
    base = (kf0, _F1 / m0, jx0, jy0, jz0, _F1 / jx0, _F1 / jy0, _F1 / jz0, _F1 / tau0)
    S = np.empty((S_ROWS, CHUNK + 16), np.float32)  # padded rows: no cache-set conflicts between rows
    hoff = 4 * head
    for blo in range(lo, hi, CHUNK):
        cnt = min(CHUNK, hi - blo)
        for k in range(cnt):  # gather
            e = blo + k
            for i in range(17):
                S[S_STATE + i, k] = state[e, i]
            for i in range(4):
                a = min(max(action[e, i], _FM1), _F1)
                S[S_ACT + i, k] = a
                S[S_CMD + i, k] = (a + _F1) * span + lo_rpm
            if dr:  # per-env parameters (else the shared ones)
                q = (prm[e, 4], _F1 / prm[e, 0], prm[e, 1], prm[e, 2], prm[e, 3], _F1 / prm[e, 1], _F1 / prm[e, 2],
                     _F1 / prm[e, 3], _F1 / prm[e, 5])
            else:
                q = base
            for i in range(9):
                S[S_PRM + i, k] = q[i]
            for i in range(3):
                S[S_FM + i, k] = force[e, i] * q[1]
                S[S_TQ + i, k] = torque[e, i]
                S[S_TGT + i, k] = target[e, i]
        for k in range(cnt):  # RK4, reward and termination: SIMD over envs
            s = (S[0, k], S[1, k], S[2, k], S[3, k], S[4, k], S[5, k], S[6, k], S[7, k], S[8, k], S[9, k], S[10, k],
                 S[11, k], S[12, k], S[13, k], S[14, k], S[15, k], S[16, k])
            p = (S[S_PRM, k], S[S_PRM + 1, k], S[S_PRM + 2, k], S[S_PRM + 3, k], S[S_PRM + 4, k], S[S_PRM + 5, k],
                 S[S_PRM + 6, k], S[S_PRM + 7, k], S[S_PRM + 8, k], gx, gy, gz, S[S_FM, k], S[S_FM + 1, k],
                 S[S_FM + 2, k], S[S_TQ, k], S[S_TQ + 1, k], S[S_TQ + 2, k], _F0, S[S_PRM + 8, k])
            x = _rk4(s, S[S_CMD, k], S[S_CMD + 1, k], S[S_CMD + 2, k], S[S_CMD + 3, k], p, rx, ry, yw, dt, h6,
                     lo_rpm, hi_rpm)
            S[0, k], S[1, k], S[2, k], S[3, k], S[4, k], S[5, k] = x[0], x[1], x[2], x[3], x[4], x[5]
            S[6, k], S[7, k], S[8, k], S[9, k], S[10, k], S[11, k] = x[6], x[7], x[8], x[9], x[10], x[11]
            S[12, k], S[13, k], S[14, k], S[15, k], S[16, k] = x[12], x[13], x[14], x[15], x[16]
            p0, p1, p2 = x[0] - S[S_TGT, k], x[1] - S[S_TGT + 1, k], x[2] - S[S_TGT + 2, k]
            d0, d1 = S[S_ACT, k] - hover, S[S_ACT + 1, k] - hover
            d2, d3 = S[S_ACT + 2, k] - hover, S[S_ACT + 3, k] - hover
            t0 = p0 * p0 + p1 * p1 + p2 * p2
            t1 = _F1 - x[3] * x[3]
            t2 = x[7] * x[7] + x[8] * x[8] + x[9] * x[9]
            t3 = x[10] * x[10] + x[11] * x[11] + x[12] * x[12]
            t4 = d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3
            S[S_TERMS, k], S[S_TERMS + 1, k], S[S_TERMS + 2, k] = t0, t1, t2
            S[S_TERMS + 3, k], S[S_TERMS + 4, k] = t3, t4
            S[S_REWARD, k] = -scale * (w0 * t0 + w1 * t1 + w2 * t2 + w3 * t3 + w4 * t4) + const
            nan = _nan_if_not_finite(x)  # NaN iff some state entry is inf or NaN
            out = (abs(p0) > limit) | (abs(p1) > limit) | (abs(p2) > limit) | (nan != nan)
            S[S_TERM, k] = _F1 if out else _F0
        for k in range(cnt):  # scatter
            e = blo + k
            for i in range(17):
                state[e, i] = S[S_STATE + i, k]
            for i in range(5):
                terms[e, i] = S[S_TERMS + i, k]
            for i in range(4):
                ring[e, hoff + i] = S[S_ACT + i, k]
            reward[e] = S[S_REWARD, k]
            steps[e] += 1
            term = S[S_TERM, k] != _F0
            trunc = (steps[e] >= max_steps) & (not term)
            flags[0, e], flags[1, e], flags[2, e] = term, trunc, term | trunc


@njit(cache=True, error_model="numpy")
def _noise_rows(envs, lo, hi, keys, ctr):
    """Standard normals ``[hi - lo, 18]`` for the actor noise of the envs ``envs[lo:hi]`` (one event each).

    Sample ``i`` of an event ``z`` is the ziggurat normal of the 32-bit half ``i % 2`` of ``draw(z, i // 2)``,
    its rare fall-backs drawing from ``draw(z, FALLBACK_BASE + ...)`` in sample order (the definition of
    :func:`normal_pair`). The fast path of all samples runs first, as one branch-free loop.
    """
    cnt = hi - lo
    z = np.empty(cnt, np.uint64)
    for k in range(cnt):
        e = envs[lo + k]
        z[k] = event_stream(keys[e], ctr[e])
        ctr[e] += np.uint64(1)
    bits = np.empty(cnt * 9, np.uint64)
    for k in range(cnt):
        for i in range(9):
            bits[9 * k + i] = draw(z[k], i)
    out = np.empty((cnt, 18), np.float32)
    flat = out.reshape(cnt * 18)
    bad = np.empty(cnt * 18, np.bool_)
    for t in range(cnt * 18):
        r32 = (bits[t >> 1] >> np.uint64(32 * (t & 1))) & _LOW32
        idx = r32 & np.uint64(0xFF)
        rabs = (r32 >> np.uint64(9)) & np.uint64(0x7FFFFF)
        x = np.float32(rabs) * ZIG_W[idx]
        flat[t] = -x if (r32 >> np.uint64(8)) & np.uint64(1) else x
        bad[t] = rabs >= ZIG_K[idx]
    k_last, j = -1, FALLBACK_BASE
    for t in range(cnt * 18):
        if bad[t]:  # about 1 % of the samples
            k = t // 18
            if k != k_last:
                k_last, j = k, FALLBACK_BASE
            x, j = _ziggurat_fallback(z[k], j, (bits[t >> 1] >> np.uint64(32 * (t & 1))) & _LOW32)
            flat[t] = np.float32(x)
    return out


@njit(cache=True, error_model="numpy")
def _obs_rows(envs, lo, hi, bufs, policy, critic, start, geo, sig, n_factors):
    """Observations of the envs ``envs[lo:hi]`` into their rows of ``policy`` and ``critic``.

    ``sig`` holds the 18 actor noise sigmas (zeros when noise is off: adding 0 is exact); the action history
    is read oldest first from the ring, starting at column ``start``, into the actor's row and, when the critic
    has the columns for it, into the critic's after its ``n_factors`` parameter factors.
    """
    state, force, torque, target, steps, prm, factors, ring, keys, ctr = bufs
    noise = _noise_rows(envs, lo, hi, keys, ctr)
    rpm_scale = _F2 / geo[GEO_RPM_MAX]
    hist = policy.shape[1] - 18
    m = hist - start
    h0 = 28 + n_factors  # first critic column of the action history
    critic_hist = critic.shape[1] - h0  # the actor's most recent critic_hist history columns, or 0
    for k in range(hi - lo):
        e = envs[lo + k]
        x = (state[e, 0], state[e, 1], state[e, 2], state[e, 3], state[e, 4], state[e, 5], state[e, 6],
             state[e, 7], state[e, 8], state[e, 9], state[e, 10], state[e, 11], state[e, 12])
        clean = _clean_obs(x, target[e, 0], target[e, 1], target[e, 2])
        for i in range(18):
            critic[e, i] = clean[i]
            policy[e, i] = clean[i] + noise[k, i] * sig[i]
        for i in range(3):
            critic[e, 18 + i] = force[e, i]
            critic[e, 21 + i] = torque[e, i]
        for i in range(4):
            critic[e, 24 + i] = state[e, 13 + i] * rpm_scale - _F1
        for i in range(n_factors):  # randomised parameter factors (none without randomisation)
            critic[e, 28 + i] = factors[e, i] - _F1
        row, past = policy[e], ring[e]  # 1-d rows: these loops vectorise
        for i in range(m):
            row[18 + i] = past[start + i]
        for i in range(start):
            row[18 + m + i] = past[i]
        crow = critic[e]
        for i in range(critic_hist):
            crow[h0 + i] = row[18 + hist - critic_hist + i]


@njit(cache=True, error_model="numpy")
def _reset_rows(envs, lo, hi, bufs, policy, critic, final, start, geo, task, sig):
    """Reset the envs ``envs[lo:hi]``: copy their observation rows to ``final`` rows ``lo:hi`` (when ``final``
    has rows), sample new episodes and write fresh observations."""
    pd = policy.shape[1]
    if final.shape[0]:
        for k in range(lo, hi):
            for i in range(pd):
                final[k, i] = policy[envs[k], i]
            for i in range(critic.shape[1]):
                final[k, pd + i] = critic[envs[k], i]
    for k in range(lo, hi):
        _reset_env(envs[k], bufs, geo, task)
    _obs_rows(envs, lo, hi, bufs, policy, critic, start, geo, sig, 4 if task[T_DR] != 0.0 else 0)


@njit(cache=True, error_model="numpy")
def _outputs(n, task, ring, head):
    """Fresh outputs ``(policy, critic, reward, terms, flags)`` (``flags`` rows: terminated, truncated, done)
    and the ring column of the oldest action."""
    hist = ring.shape[1] if task[T_HIST] > 0 else 0
    critic_dim = (32 if task[T_DR] != 0.0 else 28) + (int(task[T_CRITIC_HIST]) - 1 if task[T_CRITIC_HIST] != 0.0 else 0)
    outs = (np.empty((n, 18 + hist), np.float32), np.empty((n, critic_dim), np.float32),
            np.empty(n, np.float32), np.empty((n, 5), np.float32), np.empty((3, n), np.bool_))
    return outs, (4 * head + 4) % ring.shape[1] if hist > 0 else 0


@njit(parallel=True, cache=True, error_model="numpy")
def step_kernel(action, bufs, head, envs, geo, task, sig, weights):
    """Advance every env one control step and reset the finished ones.

    ``head`` is the ring slot that receives this step's action (the slot after it holds the oldest one);
    ``envs`` is ``arange(N)``. Returns ``policy, critic, reward, terms, flags, done_idx, final``: ``flags`` rows
    are terminated, truncated and done; ``final`` rows are the pre-reset observations (policy then critic
    columns) of the envs ``done_idx``. Chunks of ``CHUNK`` envs run in parallel.
    """
    n = envs.size
    outs, start = _outputs(n, task, bufs[7], head)
    policy, critic, flags = outs[0], outs[1], outs[4]
    nc = max(1, n // CHUNK)
    for c in prange(nc):
        lo, hi = c * n // nc, (c + 1) * n // nc
        _step_rows(lo, hi, action, bufs, outs, head, geo, task, weights)
        _obs_rows(envs, lo, hi, bufs, policy, critic, start, geo, sig, 4 if task[T_DR] != 0.0 else 0)
    done_idx = np.flatnonzero(flags[2])
    k = done_idx.size
    final = np.empty((k, policy.shape[1] + critic.shape[1]), np.float32)
    nr = max(1, k // RESET_CHUNK)
    for c in prange(nr):
        _reset_rows(done_idx, c * k // nr, (c + 1) * k // nr, bufs, policy, critic, final, start, geo, task, sig)
    return policy, critic, outs[2], outs[3], flags, done_idx, final


@njit(cache=True, error_model="numpy")
def reset_kernel(envs, bufs, head, geo, task, sig):
    """Reset every env (``envs`` is ``arange(N)``) and return fresh observations ``(policy, critic)``.

    Serial: it runs once per ``reset()``, and a parallel version would double the compile time.
    """
    n = envs.size
    outs, start = _outputs(n, task, bufs[7], head)
    policy, critic = outs[0], outs[1]
    _reset_rows(envs, 0, n, bufs, policy, critic, np.empty((0, 0), np.float32), start, geo, task, sig)
    return policy, critic
