"""Numba kernels of the explicit SAC update (:mod:`robot_rl.algorithms.sac_explicit`): each step in one call.

A critic step (the current actor's squashed Gaussian sample of the next action and its log-probability, the
minimum over the target critics, the soft TD target, every critic's forward and backward) and an actor step
(reparameterised sample, every critic to its input, the minimum's gradient back through tanh, the log-std clamp
and the log-probability into the actor) are one compiled call each. The layers, the critics' regression and
the actor's backward are :mod:`robot_rl.algorithms._td3_kernels`' (torch's GEMM inside); what is SAC's is the
sampling and its derivatives, written here in the plain path's operation order (``SquashedGaussianActor.sample``
and autograd's formulas for ``clamp``, ``exp``, ``tanh`` and ``softplus``) so the paths agree to float rounding.
The noise ``eps`` is drawn by the caller with torch, in the plain path's order.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from robot_rl.algorithms._td3_kernels import (
    _actor_forward,
    _adam_groups,
    _adam_lerp_groups,
    _critic_forward,
    _lists,
    actor_backward,
    critic_regress,
    gather_,
    input_grad,
    min_q,
)

_F0, _F1, _F2 = np.float32(0.0), np.float32(1.0), np.float32(2.0)
_HALF, _MINUS_TWO = np.float32(0.5), np.float32(-2.0)
_HALF_LOG_2PI = np.float32(0.5 * math.log(2 * math.pi))
_LOG2 = np.float32(math.log(2.0))
_SOFTPLUS_THRESHOLD = np.float32(20.0)  # torch's default: softplus(x) = x above it
_SAMPLE_SHARES = 2  # the critic step's sample at s' in two row halves, one per thread (any count: the same numbers)


@njit(cache=True, error_model="numpy")
def _squash(out, eps, lo, hi, correction, a, logp, u, std):
    """From the actor's output ``out = [mean, raw log-std]`` (``[R, 2A]``) and the noise ``eps``: the action
    ``a = tanh(u)``, ``u = mean + eps exp(clamp(raw, lo, hi))``, its log-probability ``logp`` (minus
    ``sum log(1 - tanh(u)^2)`` with ``correction``), and ``u`` and the std for the backward pass."""
    rows, n = eps.shape
    for r in range(rows):
        base, corr = _F0, _F0
        for j in range(n):
            ls = min(max(out[r, n + j], lo), hi)
            e = eps[r, j]
            sd = np.exp(ls)
            uj = out[r, j] + e * sd
            a[r, j] = np.tanh(uj)
            u[r, j], std[r, j] = uj, sd
            base += (-_HALF * (e * e) - ls) - _HALF_LOG_2PI
            if correction:
                v = _MINUS_TWO * uj
                sp = v if v > _SOFTPLUS_THRESHOLD else np.log1p(np.exp(v))
                corr += _F2 * ((_LOG2 - uj) - sp)
        logp[r] = base - corr if correction else base


@njit(cache=True, error_model="numpy")
def _sample(obs, aw, ab, eps, code, keep, lo, hi, correction, posts, slopes, s):
    """The actor's forward pass and :func:`_squash`: ``(out, a, logp, u, std)``."""
    out = _actor_forward(obs, aw, ab, code, keep, posts, slopes, s)
    rows, n = eps.shape
    a, u, std = np.empty((rows, n), np.float32), np.empty((rows, n), np.float32), np.empty((rows, n), np.float32)
    logp = np.empty(rows, np.float32)
    _squash(out, eps, lo, hi, correction, a, logp, u, std)
    return out, a, logp, u, std


@njit(parallel=True, cache=True, error_model="numpy")
def _sample_rows(obs, aw, ab, eps, code, lo, hi, correction):
    """:func:`_sample`'s action and log-probability ``(a, logp)`` (no layers kept), the rows in
    :data:`_SAMPLE_SHARES` contiguous shares on numba's threads: the same numbers at any thread count."""
    rows, n = eps.shape
    a, logp = np.empty((rows, n), np.float32), np.empty(rows, np.float32)
    for c in prange(_SAMPLE_SHARES):
        r0, r1 = c * rows // _SAMPLE_SHARES, (c + 1) * rows // _SAMPLE_SHARES
        part = obs[r0:r1]
        posts, slopes = _lists(part)
        _, ac, lc, _, _ = _sample(part, aw, ab, eps[r0:r1], code, False, lo, hi, correction, posts, slopes,
                                  np.zeros(9, np.int32))  # a _blas.scratch() block of its own per share
        a[r0:r1] = ac
        logp[r0:r1] = lc
    return a, logp


@njit(cache=True, error_model="numpy")
def _cat(obs, a):
    rows, n_obs, n_act = obs.shape[0], obs.shape[1], a.shape[1]
    x = np.empty((rows, n_obs + n_act), np.float32)
    for r in range(rows):
        for j in range(n_obs):
            x[r, j] = obs[r, j]
        for j in range(n_act):
            x[r, n_obs + j] = a[r, j]
    return x


@njit(cache=True, error_model="numpy")
def critic_grads(next_policy, next_critic, reward, terminated, x, eps, aw, ab, tw, tb, cw, cb, gw, gb, code,
                 alpha, gamma, lo, hi, correction, loss):
    """One critic step's gradients into ``gw``/``gb`` (each critic's MSE into ``loss``), every critic on all rows
    of ``x = cat(critic_obs, action)``. Target: ``y = r + gamma (1 - terminated) (min_i Q'_i(s', a') - alpha
    logp(a'))`` with ``a'`` the current actor's (``aw``/``ab``) sample at ``s'`` with noise ``eps``."""
    a, logp = _sample_rows(next_policy, aw, ab, eps, code, lo, hi, correction)
    y = min_q(_cat(next_critic, a), tw, tb, code)
    for r in range(y.shape[0]):
        y[r] = reward[r] + gamma * (_F1 - terminated[r]) * (y[r] - alpha * logp[r])
    critic_regress(x, y, cw, cb, gw, gb, code, False, loss)


@njit(parallel=True, cache=True, error_model="numpy")
def _values_and_input_grads(x, cw, cb, code, scale):
    """Every critic's ``Q_i(x)`` (``[n, R]``) and the gradient of ``scale * sum_r Q_i(x_r)`` to its input
    (``[n, R, in]``), the members in parallel (numba's threads). A row's input gradient depends on that row alone,
    so the actor step takes row ``r``'s from the critic that is the minimum there: the same numbers as a backward
    of the minimum with zeros on the other critics' rows."""
    n, rows = cw[0].shape[0], x.shape[0]
    qs = np.empty((n, rows), np.float32)
    gxs = np.empty((n, rows, x.shape[1]), np.float32)
    for i in prange(n):
        s = np.zeros(9, np.int32)
        posts, slopes = _lists(x)
        qs[i] = _critic_forward(x, cw, cb, i, code, True, posts, slopes, s)
        gxs[i] = input_grad(np.full((rows, 1), scale, np.float32), cw, i, slopes, 0, s)
    return qs, gxs


@njit(cache=True, error_model="numpy")
def actor_grads(policy_obs, critic_obs, eps, aw, ab, cw, cb, gw, gb, code, alpha, lo, hi, correction,
                target_entropy, alpha_grad, s):
    """One actor step's gradients of ``mean(alpha logp(a) - min_i Q_i(s, a))`` (``a`` the reparameterised
    sample with noise ``eps``) into ``gw``/``gb``, and the temperature loss's ``-mean(log_alpha (logp +
    target_entropy))`` gradient into ``alpha_grad[0]``. Returns the actor loss and the entropy ``-mean logp``."""
    posts, slopes = _lists(policy_obs)
    posts.append(policy_obs)
    out, a, logp, u, std = _sample(policy_obs, aw, ab, eps, code, True, lo, hi, correction, posts, slopes, s)
    rows, n_act = a.shape
    n_obs = critic_obs.shape[1]
    x = _cat(critic_obs, a)
    inv = np.float32(1.0 / rows)
    qs, gxs = _values_and_input_grads(x, cw, cb, code, -inv)
    q = qs[0].copy()
    arg = np.zeros(rows, np.int64)
    for i in range(1, qs.shape[0]):
        for r in range(rows):
            if qs[i, r] < q[r]:
                q[r], arg[r] = qs[i, r], i
    loss, ent, la_grad = np.float64(0.0), np.float64(0.0), np.float64(0.0)
    for r in range(rows):
        loss += alpha * logp[r] - q[r]
        ent -= logp[r]
        la_grad += -inv * (logp[r] + target_entropy)
    alpha_grad[0] = la_grad
    da = np.empty((rows, n_act), np.float32)  # the minimum's gradient reaches the critic it came from
    for r in range(rows):
        for j in range(n_act):
            da[r, j] = gxs[arg[r], r, n_obs + j]
    gl = inv * alpha  # d loss / d logp
    go = np.empty_like(out)
    for r in range(rows):
        for j in range(n_act):
            t = a[r, j]
            du = da[r, j] * (_F1 - t * t)
            if correction:  # logp -= 2 (log 2 - u - softplus(-2u)): through -u and through the softplus
                d_sp = _F2 * gl
                v = _MINUS_TWO * u[r, j]
                if v <= _SOFTPLUS_THRESHOLD:
                    z = np.exp(v)
                    d_sp = d_sp * z / (z + _F1)
                du = du + _F2 * gl + d_sp * _MINUS_TWO
            go[r, j] = du
            raw = out[r, n_act + j]
            d_ls = du * eps[r, j] * std[r, j] - gl
            go[r, n_act + j] = d_ls if lo <= raw and raw <= hi else _F0
    actor_backward(go, aw, posts, slopes, gw, gb, s)
    return loss / rows, ent / rows


@njit(cache=True, error_model="numpy")
def temperature(log_alpha):
    """``exp(log_alpha[0])`` with numba's float32 exp: the temperature of ``sac.fused_collect``'s updates, step by
    step (``ExplicitSAC``) and in ``runners/_collect_kernels.sac_cycles`` alike."""
    return np.exp(log_alpha[0])


@njit(cache=True, error_model="numpy")
def update_from_replay(table, idx, eps_c, eps_a, cols, rows_c, rows_a, nets, grads, adams, hypers, flags, consts,
                       loss, alpha_grad, s):
    """One whole SAC update from replay rows ``idx``: the columns each step reads gathered into ``rows_c`` and
    ``rows_a`` (as the TD3 kernel's: ``cols`` is ``ExplicitTD3._cols``' map), :func:`critic_grads`, the critics'
    Adam with the critic targets' Polyak step (``adams[0]``'s groups carry their targets:
    ``ExplicitSAC.adam_args``; the actor step reads no target, so these are the step-by-step order's numbers); with
    ``flags[0]`` :func:`actor_grads`, the actor's and the temperature's Adam. ``nets`` = actor, critic, critic target
    (weights, biases); ``flags[1:]`` = activation code, squash correction; ``consts`` = alpha, gamma, tau, log-std
    min and max, target entropy. Returns the actor loss and the entropy (0 without the actor step)."""
    rc, np0, nc0, tc, pd, cd, ad = cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8]
    gather_(table, idx, cols[0], cols[0] + rows_c.shape[1], rows_c)
    rows = rows_c[:idx.size]
    actor, critic, critic_t = nets
    alpha, lo, hi = np.float32(consts[0]), np.float32(consts[3]), np.float32(consts[4])
    correction = flags[2] != 0
    critic_grads(rows[:, np0:np0 + pd], rows[:, nc0:nc0 + cd], rows[:, rc], rows[:, tc], rows[:, 0:cd + ad], eps_c,
                 actor[0], actor[1], critic_t[0], critic_t[1], critic[0], critic[1], grads[0][0], grads[0][1],
                 flags[1], alpha, np.float32(consts[1]), lo, hi, correction, loss)
    _adam_lerp_groups(adams[0], hypers[0], consts[2])  # with the critic targets' Polyak step
    actor_loss, entropy = 0.0, 0.0
    if flags[0]:
        gather_(table, idx, 0, cols[1], rows_a)
        ra = rows_a[:idx.size]
        actor_loss, entropy = actor_grads(ra[:, 0:pd], ra[:, pd:pd + cd], eps_a, actor[0], actor[1], critic[0],
                                          critic[1], grads[1][0], grads[1][1], flags[1], alpha, lo, hi, correction,
                                          np.float32(consts[5]), alpha_grad, s)
        _adam_groups(adams[1], hypers[1])
        _adam_groups(adams[2], hypers[2])
    return actor_loss, entropy
