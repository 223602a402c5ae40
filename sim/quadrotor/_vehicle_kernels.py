"""Numba kernels of the fused hover env over a distribution of vehicles (``vehicles.enabled``).

The same task as ``_fused_kernels`` (and the same reset draws of initial state and disturbances), with every
env flying its own vehicle, mirroring the torch env (``task.py`` with ``vehicles.py``): a vehicle is drawn at
each reset from the env's reset event (13 draws before the state's, in the order of ``VEHICLE_KEYS``); the
command is ``max((a + 1) / 2 * rpm_max_v, idle_v)``; the dynamics (``_fused_physics._deriv``) take the vehicle's
mass, inertia, quadratic and linear thrust terms, rotor arms, yaw ratio, motor time constants up and down and
rotor-speed bounds; the reward's action term is relative to the vehicle's hover action; the actor observation
is ``latency_v`` steps old (a ring of the last ``L + 1`` clean observations per env, one shared head, refilled at
a reset) with noise scaled by ``obs_noise_scale_v``; the critic reads the vehicle normalised over the span and
the latency as a fraction of its maximum. One env at a time (no SIMD layout, serial): the vehicle preset runs
few envs, where per-call costs dominate.

Per-env vehicle buffers travel as ``vbufs`` = (veh ``[N, 13]`` raw values, vprm ``[N, VP_SIZE]`` derived
parameters, delay ``[N, 18 (L + 1)]``); distribution and frame constants in ``vd`` (float64, ``VD_*``).

Outcome-prioritised resampling (``vd[VD_REPLAY]`` > 0, ``vehicle_replay.py``): the vehicles come instead from a
stream of their own (``rbufs``, shared with the torch env), and a done env re-flies, with probability
``vd[VD_REPLAY]``, a vehicle from a ring of recent crashes (:func:`replay_reset`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.quadrotor._fused_kernels import (
    GEO_DT,
    GEO_G,
    GEO_H6,
    T_CRITIC_HIST,
    T_HIST,
    T_MAX_STEPS,
    T_POS_LIMIT,
    _noise_rows,
    _reset_state,
)
from sim.quadrotor._fused_physics import _clean_obs, _nan_if_not_finite, _rk4
from sim.quadrotor._fused_rng import draw, event_stream, to_unit

(VP_KQ, VP_KL, VP_M, VP_J, VP_TAU_UP, VP_TAU_DN, VP_MIN, VP_MAX, VP_RX, VP_RY, VP_YAW, VP_HOVER, VP_LAT, VP_NOISE,
 VP_SIZE) = 0, 1, 2, 3, 6, 7, 8, 9, 10, 14, 18, 22, 23, 24, 25
(VD_LO, VD_HI, VD_KF, VD_WH, VD_G, VD_J, VD_RX, VD_RY, VD_SIGN, VD_HLO, VD_HHI, VD_NHARD, VD_REPLAY,
 VD_REPLAY_ONCE, VD_REL_RPM, VD_SIZE) = (0, 13, 26, 27, 28, 29, 32, 36, 40, 44, 57, 70, 71, 72, 73, 74)
# replay counters (``rbufs[4]``): ring fill, ring head, replayed draws, fresh draws, crashes of each
(RS_COUNT, RS_HEAD, RS_REPLAYED, RS_FRESH, RS_CRASH_REPLAYED, RS_CRASH_FRESH, RS_SIZE) = 0, 1, 2, 3, 4, 5, 6
N_VEH = 13
_F0, _F1, _F2, _FH, _FM1 = np.float32(0.0), np.float32(1.0), np.float32(2.0), np.float32(0.5), np.float32(-1.0)


@njit(cache=True, error_model="numpy")
def derive(e, veh, vprm, vd):
    """Dynamics parameters ``vprm[e]`` of the vehicle ``veh[e]``: ``vehicles.vehicle_param_tensors`` and
    ``vehicle_hover_action`` in their float32 operation order (the frame's constants rounded to float32 first)."""
    v, out, f = veh[e], vprm[e], np.float32
    kf, wh, g = f(vd[VD_KF]), f(vd[VD_WH]), f(vd[VD_G])
    kq = v[3] * kf * (_F1 - v[4])
    kl = v[3] * kf * v[4] * wh
    weight = v[0] * g
    f_max, f_hover = v[9] * weight / f(4.0), weight / f(4.0)  # per rotor: kq w^2 + kl w = f
    rpm_max = (-kl + np.sqrt(kl * kl + f(4.0) * kq * f_max)) / (_F2 * kq)
    rpm_hover = (-kl + np.sqrt(kl * kl + f(4.0) * kq * f_hover)) / (_F2 * kq)
    out[VP_KQ], out[VP_KL], out[VP_M] = kq, kl, v[0]
    out[VP_J], out[VP_J + 1], out[VP_J + 2] = f(vd[VD_J]) * v[1], f(vd[VD_J + 1]) * v[1], f(vd[VD_J + 2]) * v[2]
    out[VP_TAU_UP], out[VP_TAU_DN] = v[6], v[7]
    out[VP_MIN], out[VP_MAX] = min(v[8], rpm_max), rpm_max
    for i in range(4):
        out[VP_RX + i] = f(vd[VD_RX + i]) * v[10]
        out[VP_RY + i] = f(vd[VD_RY + i]) * v[10]
        out[VP_YAW + i] = f(vd[VD_SIGN + i]) * v[5]
    out[VP_HOVER] = _F2 * max(rpm_hover, v[8]) / rpm_max - _F1
    out[VP_LAT], out[VP_NOISE] = v[11], v[12]


@njit(cache=True, error_model="numpy")
def fresh_vehicle(z, hard, vd, row):
    """A vehicle from draws ``0..12`` of stream ``z`` into ``row`` (uniform, inertia log-uniform, latency an
    integer; ``hard``: from the hard ranges ``vd[VD_HLO:]``, with the same draws)."""
    olo, ohi = (VD_HLO, VD_HHI) if hard else (VD_LO, VD_HI)
    for i in range(N_VEH):
        lo, hi, u = vd[olo + i], vd[ohi + i], to_unit(draw(z, i))
        if i == 1 or i == 2:
            x = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
        elif i == 11:
            x = lo + min(np.floor(u * (hi - lo + 1.0)), hi - lo)
        else:
            x = lo + u * (hi - lo)
        row[i] = np.float32(x)


@njit(cache=True, error_model="numpy")
def replay_reset(envs, crashed, veh, rbufs, vd):
    """New vehicles ``veh[envs]`` of the done envs ``envs`` (ascending; ``crashed[k]``: env ``envs[k]`` crashed).

    First every crashed env that flew a fresh vehicle puts it in the ring (``envs`` order; into the first free
    slot, or a full ring overwrites the slot at its head, which then advances; a replayed vehicle that crashes
    again is not added twice); then each env, from event ``rctr[e]`` of its own stream ``rkeys[e]``, re-flies a
    uniformly chosen ring entry with probability ``vd[VD_REPLAY]`` (ring not empty; ``vd[VD_REPLAY_ONCE]``: the
    entry leaves the ring, its slot taken by the last one) or else draws a fresh vehicle from that event.
    """
    rkeys, rctr, rsrc, ring, rs = rbufs
    cap = ring.shape[0]
    for k in range(envs.size):
        e = envs[k]
        if not crashed[k]:
            continue
        rs[RS_CRASH_REPLAYED if rsrc[e] else RS_CRASH_FRESH] += 1
        if rsrc[e] or cap == 0:
            continue
        h = rs[RS_COUNT]
        if h < cap:
            rs[RS_COUNT] = h + 1
        else:
            h = rs[RS_HEAD]
            rs[RS_HEAD] = (h + 1) % cap
        for i in range(N_VEH):
            ring[h, i] = veh[e, i]
    for k in range(envs.size):
        e = envs[k]
        z = event_stream(rkeys[e], rctr[e])
        rctr[e] += np.uint64(1)
        n = rs[RS_COUNT]
        if n > 0 and to_unit(draw(z, N_VEH)) < vd[VD_REPLAY]:
            j = min(int(to_unit(draw(z, N_VEH + 1)) * n), n - 1)
            for i in range(N_VEH):
                veh[e, i] = ring[j, i]
                if vd[VD_REPLAY_ONCE] > 0.0:
                    ring[j, i] = ring[n - 1, i]
            if vd[VD_REPLAY_ONCE] > 0.0:
                rs[RS_COUNT] = n - 1
            rsrc[e] = 1
            rs[RS_REPLAYED] += 1
        else:
            fresh_vehicle(z, e < vd[VD_NHARD], vd, veh[e])
            rsrc[e] = 0
            rs[RS_FRESH] += 1


@njit(cache=True, error_model="numpy")
def _reset_env_v(e, bufs, vbufs, geo, task, vd):
    """Draw a new vehicle for env ``e`` from its reset event (:func:`fresh_vehicle`; the first ``vd[VD_NHARD]``
    envs from the hard ranges; with replay on, ``veh[e]`` was drawn already), then its episode (rotors at
    ``task[T_INIT_RPM]``, or with ``vd[VD_REL_RPM]`` 1 at the speed action 0 commands on the vehicle, 2 at its hover
    speed)."""
    veh, vprm = vbufs[0], vbufs[1]
    keys, ctr = bufs[8], bufs[9]
    z = event_stream(keys[e], ctr[e])
    ctr[e] += np.uint64(1)
    if vd[VD_REPLAY] <= 0.0:
        fresh_vehicle(z, e < vd[VD_NHARD], vd, veh[e])
    derive(e, veh, vprm, vd)
    bufs[5][e, 0] = vprm[e, VP_M]  # the disturbance force scales with the vehicle's weight
    _reset_state(e, z, N_VEH, bufs, geo, task)
    if vd[VD_REL_RPM] > 0.0:
        if vd[VD_REL_RPM] > 1.5:  # 2: its hover speed, not below idle (task.init_rpm_hover)
            w0 = min(_FH * (vprm[e, VP_HOVER] + _F1) * vprm[e, VP_MAX], vprm[e, VP_MAX])
        else:  # 1: the speed action 0 commands on this vehicle (task.init_rpm_relative)
            w0 = max(_FH * vprm[e, VP_MAX], vprm[e, VP_MIN])
        for i in range(4):
            bufs[0][e, 13 + i] = w0


@njit(cache=True, error_model="numpy")
def _step_rows_v(action, bufs, vbufs, outs, head, geo, task, weights):
    """Dynamics, reward, termination and action ring of every env, each on its own vehicle."""
    state, force, torque, target, steps, prm, factors, ring, keys, ctr = bufs
    vprm = vbufs[1]
    reward, terms, flags = outs[2], outs[3], outs[4]
    gx, gy, gz, dt, h6 = geo[GEO_G], geo[GEO_G + 1], geo[GEO_G + 2], geo[GEO_DT], geo[GEO_H6]
    limit, max_steps = np.float32(task[T_POS_LIMIT]), int(task[T_MAX_STEPS])
    w0, w1, w2, w3, w4, scale, const = (weights[0], weights[1], weights[2], weights[3], weights[4], weights[5],
                                        weights[6])
    hoff = 4 * head
    for e in range(state.shape[0]):
        vp = vprm[e]
        s = (state[e, 0], state[e, 1], state[e, 2], state[e, 3], state[e, 4], state[e, 5], state[e, 6],
             state[e, 7], state[e, 8], state[e, 9], state[e, 10], state[e, 11], state[e, 12], state[e, 13],
             state[e, 14], state[e, 15], state[e, 16])
        a = (min(max(action[e, 0], _FM1), _F1), min(max(action[e, 1], _FM1), _F1),
             min(max(action[e, 2], _FM1), _F1), min(max(action[e, 3], _FM1), _F1))
        hm, idle, top = _FH * vp[VP_MAX], vp[VP_MIN], vp[VP_MAX]
        inv_m = _F1 / vp[VP_M]
        p = (vp[VP_KQ], inv_m, vp[VP_J], vp[VP_J + 1], vp[VP_J + 2], _F1 / vp[VP_J], _F1 / vp[VP_J + 1],
             _F1 / vp[VP_J + 2], _F1 / vp[VP_TAU_UP], gx, gy, gz, force[e, 0] * inv_m, force[e, 1] * inv_m,
             force[e, 2] * inv_m, torque[e, 0], torque[e, 1], torque[e, 2], vp[VP_KL], _F1 / vp[VP_TAU_DN])
        rx = (vp[VP_RX], vp[VP_RX + 1], vp[VP_RX + 2], vp[VP_RX + 3])
        ry = (vp[VP_RY], vp[VP_RY + 1], vp[VP_RY + 2], vp[VP_RY + 3])
        yw = (vp[VP_YAW], vp[VP_YAW + 1], vp[VP_YAW + 2], vp[VP_YAW + 3])
        x = _rk4(s, max((a[0] + _F1) * hm, idle), max((a[1] + _F1) * hm, idle), max((a[2] + _F1) * hm, idle),
                 max((a[3] + _F1) * hm, idle), p, rx, ry, yw, dt, h6, idle, top)
        for i in range(17):
            state[e, i] = x[i]
        p0, p1, p2 = x[0] - target[e, 0], x[1] - target[e, 1], x[2] - target[e, 2]
        hov = vp[VP_HOVER]
        d0, d1, d2, d3 = a[0] - hov, a[1] - hov, a[2] - hov, a[3] - hov
        t0 = p0 * p0 + p1 * p1 + p2 * p2
        t1 = _F1 - x[3] * x[3]
        t2 = x[7] * x[7] + x[8] * x[8] + x[9] * x[9]
        t3 = x[10] * x[10] + x[11] * x[11] + x[12] * x[12]
        t4 = d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3
        terms[e, 0], terms[e, 1], terms[e, 2], terms[e, 3], terms[e, 4] = t0, t1, t2, t3, t4
        reward[e] = -scale * (w0 * t0 + w1 * t1 + w2 * t2 + w3 * t3 + w4 * t4) + const
        for i in range(4):
            ring[e, hoff + i] = a[i]
        nan = _nan_if_not_finite(x)
        term = (abs(p0) > limit) | (abs(p1) > limit) | (abs(p2) > limit) | (nan != nan)
        steps[e] += 1
        trunc = (steps[e] >= max_steps) & (not term)
        flags[0, e], flags[1, e], flags[2, e] = term, trunc, term | trunc


@njit(cache=True, error_model="numpy")
def _obs_rows_v(envs, lo, hi, bufs, vbufs, policy, critic, start, sig, task, vd, dhead, fresh):
    """Observations of the envs ``envs[lo:hi]``: the clean one enters the delay ring at ``dhead`` (``fresh``:
    fills the whole ring, as after a reset); the actor reads the slot ``latency`` steps back, plus noise."""
    state, force, torque, target, steps, prm, factors, ring, keys, ctr = bufs
    veh, vprm, delay = vbufs
    noise = _noise_rows(envs, lo, hi, keys, ctr)
    slots = delay.shape[1] // 18
    lmax = slots - 1
    hist = policy.shape[1] - 18
    m = hist - start
    cai = task[T_CRITIC_HIST] != 0.0
    ch = int(task[T_CRITIC_HIST]) - 1  # the critic's columns of the history (the most recent ones), if cai
    h0 = 28 + N_VEH
    for k in range(hi - lo):
        e = envs[lo + k]
        vp, d = vprm[e], delay[e]
        x = (state[e, 0], state[e, 1], state[e, 2], state[e, 3], state[e, 4], state[e, 5], state[e, 6],
             state[e, 7], state[e, 8], state[e, 9], state[e, 10], state[e, 11], state[e, 12])
        clean = _clean_obs(x, target[e, 0], target[e, 1], target[e, 2])
        for j in range(slots if fresh else 1):
            o = 18 * (j if fresh else dhead)
            for i in range(18):
                d[o + i] = clean[i]
        lat = int(vp[VP_LAT])
        src, ns = 18 * ((dhead - lat) % slots), vp[VP_NOISE]
        for i in range(18):
            critic[e, i] = clean[i]
            policy[e, i] = d[src + i] + noise[k, i] * sig[i] * ns
        for i in range(3):
            critic[e, 18 + i] = force[e, i]
            critic[e, 21 + i] = torque[e, i]
        for i in range(4):
            critic[e, 24 + i] = state[e, 13 + i] / vp[VP_MAX] * _F2 - _F1
        for i in range(N_VEH):
            lo_i, hi_i = vd[VD_LO + i], vd[VD_HI + i]
            critic[e, 28 + i] = np.float32((veh[e, i] - lo_i) / max(hi_i - lo_i, 1e-12) * 2.0 - 1.0)
        row, past = policy[e], ring[e]
        for i in range(m):
            row[18 + i] = past[start + i]
        for i in range(start):
            row[18 + m + i] = past[i]
        if cai:
            for i in range(ch):
                critic[e, h0 + i] = row[18 + hist - ch + i]
            if lmax > 0:
                critic[e, h0 + ch] = np.float32(lat) / np.float32(lmax)


@njit(cache=True, error_model="numpy")
def _outputs_v(n, task, ring, head, slots):
    """Fresh outputs ``(policy, critic, reward, terms, flags)`` and the ring column of the oldest action."""
    hist = ring.shape[1] if task[T_HIST] > 0 else 0
    critic_dim = 28 + N_VEH + ((int(task[T_CRITIC_HIST]) - 1 + (slots > 1)) if task[T_CRITIC_HIST] != 0.0 else 0)
    outs = (np.empty((n, 18 + hist), np.float32), np.empty((n, critic_dim), np.float32),
            np.empty(n, np.float32), np.empty((n, 5), np.float32), np.empty((3, n), np.bool_))
    return outs, (4 * head + 4) % ring.shape[1] if hist > 0 else 0


@njit(cache=True, error_model="numpy")
def _reset_rows_v(envs, crashed, bufs, vbufs, rbufs, policy, critic, final, start, geo, sig, task, vd, dhead):
    """Reset the envs ``envs`` (``crashed``: which of them crashed): their observation rows to ``final`` (when it
    has rows), new vehicles and episodes, fresh observations."""
    pd = policy.shape[1]
    for k in range(final.shape[0]):
        for i in range(pd):
            final[k, i] = policy[envs[k], i]
        for i in range(critic.shape[1]):
            final[k, pd + i] = critic[envs[k], i]
    if vd[VD_REPLAY] > 0.0:
        replay_reset(envs, crashed, vbufs[0], rbufs, vd)
    for k in range(envs.size):
        _reset_env_v(envs[k], bufs, vbufs, geo, task, vd)
    _obs_rows_v(envs, 0, envs.size, bufs, vbufs, policy, critic, start, sig, task, vd, dhead, True)


@njit(cache=True, error_model="numpy")
def step_kernel_v(action, bufs, vbufs, rbufs, head, dhead, envs, geo, task, sig, weights, vd):
    """``_fused_kernels.step_kernel`` over vehicles (``dhead``: the delay-ring slot of this step's observation)."""
    n = envs.size
    outs, start = _outputs_v(n, task, bufs[7], head, vbufs[2].shape[1] // 18)
    policy, critic, flags = outs[0], outs[1], outs[4]
    _step_rows_v(action, bufs, vbufs, outs, head, geo, task, weights)
    _obs_rows_v(envs, 0, n, bufs, vbufs, policy, critic, start, sig, task, vd, dhead, False)
    done_idx = np.flatnonzero(flags[2])
    final = np.empty((done_idx.size, policy.shape[1] + critic.shape[1]), np.float32)
    crashed = flags[0][done_idx]
    _reset_rows_v(done_idx, crashed, bufs, vbufs, rbufs, policy, critic, final, start, geo, sig, task, vd, dhead)
    return policy, critic, outs[2], outs[3], flags, done_idx, final


@njit(cache=True, error_model="numpy")
def reset_kernel_v(envs, bufs, vbufs, rbufs, head, dhead, geo, task, sig, vd):
    """Reset every env (new vehicles) and return fresh observations ``(policy, critic)``."""
    outs, start = _outputs_v(envs.size, task, bufs[7], head, vbufs[2].shape[1] // 18)
    policy, critic = outs[0], outs[1]
    _reset_rows_v(envs, np.zeros(envs.size, np.bool_), bufs, vbufs, rbufs, policy, critic,
                  np.empty((0, 0), np.float32), start, geo, sig, task, vd, dhead)
    return policy, critic


@njit(cache=True, error_model="numpy")
def refresh_kernel_v(bufs, vbufs, vd):
    """Recompute every env's ``vprm`` from ``veh`` (and the disturbance mass); restart the delay rings at the
    current clean observation."""
    veh, vprm, delay = vbufs
    state, target = bufs[0], bufs[3]
    for e in range(veh.shape[0]):
        derive(e, veh, vprm, vd)
        bufs[5][e, 0] = vprm[e, VP_M]
        x = (state[e, 0], state[e, 1], state[e, 2], state[e, 3], state[e, 4], state[e, 5], state[e, 6],
             state[e, 7], state[e, 8], state[e, 9], state[e, 10], state[e, 11], state[e, 12])
        clean = _clean_obs(x, target[e, 0], target[e, 1], target[e, 2])
        for j in range(delay.shape[1]):
            delay[e, j] = clean[j % 18]
