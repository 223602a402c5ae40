"""Numba kernels of the explicit TD3 update (:mod:`robot_rl.algorithms.td3_explicit`): each step in one call.

A critic step (target actor, smoothed target action, twin target critics, TD target, every critic's forward and
backward) and an actor step (actor forward, the first critic to its input, the actor's backward) are one compiled
call each; the matrix products call torch's own BLAS (:mod:`robot_rl.models._blas`), everything elementwise
runs in the same loops. Adam and the Polyak averaging are one call each over all tensors of a network. On the
64-wide networks of the L2F paper the ~80 torch dispatches of an update cost more than its arithmetic.

The operation order is the plain autograd path's where it has one (bias added after the product as
``baddbmm``/``addmm`` do, activation derivatives as autograd's formulas, the target as
``reward + gamma * (1 - terminated) * q``), so the paths agree to float rounding. Layouts: actor weights
``[out, in]`` (``nn.Linear``), critic weights ``[n, in, out]`` and biases ``[n, out]`` (``EnsembleMLP``).
Activation codes are :data:`robot_rl.models.mlp_act.ACTIVATION_CODES`.
"""

from __future__ import annotations

import numpy as np
from numba import literal_unroll, njit, prange

from robot_rl.models._blas import mm
from robot_rl.models.mlp_act import activate_slope

_F0, _F1, _F2 = np.float32(0.0), np.float32(1.0), np.float32(2.0)
_ADAM_SHARES = 2  # the optimizer step in two halves, one per thread on two cores (any count: the same numbers)
_ADAM_SERIAL_BELOW = 1024  # elements: fewer take the shares one after the other on the calling thread


@njit(cache=True, error_model="numpy")
def _bias_act(z, b, code, slope):
    """``z <- act(z + b)`` in place (``code`` -1: no activation), ``slope <- act'(z + b)`` when it has rows."""
    rows, h = z.shape
    keep = slope.shape[0] > 0
    for r in range(rows):
        for j in range(h):
            v = z[r, j] + b[j]
            if code < 0:
                z[r, j] = v
            else:
                a, d = activate_slope(v, code)
                z[r, j] = a
                if keep:
                    slope[r, j] = d


@njit(cache=True, error_model="numpy")
def _actor_forward(x, weights, biases, code, keep, posts, slopes, s):
    """The actor's pre-squash output ``[R, A]`` (bias added); with ``keep`` every hidden layer's output and slope
    are appended to ``posts`` and ``slopes``."""
    h = x
    last = len(weights) - 1
    none = np.empty((0, 0), np.float32)
    for i in range(last + 1):
        w = weights[i]
        z = np.empty((h.shape[0], w.shape[0]), np.float32)
        mm(h, False, w, True, z, _F0, s)
        if i < last:
            sl = np.empty_like(z) if keep else none
            _bias_act(z, biases[i], code, sl)
            if keep:
                slopes.append(sl)
                posts.append(z)
        else:
            _bias_act(z, biases[i], -1, none)
        h = z
    return h


@njit(cache=True, error_model="numpy")
def _critic_forward(x, weights, biases, member, code, keep, posts, slopes, s):
    """Critic ``member``'s output ``[R]`` (bias added); records hidden outputs and slopes like the actor's."""
    h = x
    last = len(weights) - 1
    none = np.empty((0, 0), np.float32)
    for i in range(last + 1):
        w = weights[i][member]
        z = np.empty((h.shape[0], w.shape[1]), np.float32)
        mm(h, False, w, False, z, _F0, s)
        if i < last:
            sl = np.empty_like(z) if keep else none
            _bias_act(z, biases[i][member], code, sl)
            if keep:
                slopes.append(sl)
                posts.append(z)
        else:
            _bias_act(z, biases[i][member], -1, none)
        h = z
    return h[:, 0]


@njit(cache=True, error_model="numpy")
def _lists(x):
    """Empty lists of layer outputs and slopes (``x`` types them; layer 0's input goes in first)."""
    posts = [x for _ in range(0)]
    slopes = [np.empty((0, 0), np.float32) for _ in range(0)]
    return posts, slopes


@njit(cache=True, error_model="numpy")
def _mul(g, slope):
    rows, h = g.shape
    for r in range(rows):
        for j in range(h):
            g[r, j] *= slope[r, j]


@njit(cache=True, error_model="numpy")
def _col_sum(g, out):
    """``out[j] = sum_r g[r, j]`` (a bias gradient)."""
    out[:] = _F0
    for r in range(g.shape[0]):
        for j in range(g.shape[1]):
            out[j] += g[r, j]


@njit(cache=True, error_model="numpy")
def critic_grads(next_policy, next_critic, reward, terminated, x, eps, aw, ab, tw, tb, cw, cb, gw, gb, code,
                 sigma, clip, gamma, independent, loss, s):
    """One critic step's gradients into ``gw``/``gb`` (and each critic's MSE into ``loss``).

    Target: ``y = r + gamma (1 - terminated) min_i Q'_i(s', clamp(pi'(s') + clamp(sigma eps, +-clip), +-1))``
    over all ``R`` rows (actor target ``aw``/``ab``, critic targets ``tw``/``tb``). Critic ``i`` regresses on
    rows ``[i R/n, (i+1) R/n)`` of ``x = cat(critic_obs, action)`` with ``independent``, else on all rows."""
    rows = next_policy.shape[0]
    posts, slopes = _lists(next_policy)
    a = _actor_forward(next_policy, aw, ab, code, False, posts, slopes, s)
    n_obs, n_act = next_critic.shape[1], a.shape[1]
    xt = np.empty((rows, n_obs + n_act), np.float32)
    for r in range(rows):
        for j in range(n_obs):
            xt[r, j] = next_critic[r, j]
        for j in range(n_act):
            e = min(max(eps[r, j] * sigma, -clip), clip)
            xt[r, n_obs + j] = min(max(np.tanh(a[r, j]) + e, -_F1), _F1)
    y = min_q(xt, tw, tb, code)
    for r in range(rows):
        y[r] = reward[r] + gamma * (_F1 - terminated[r]) * y[r]
    critic_regress(x, y, cw, cb, gw, gb, code, independent, loss)


@njit(parallel=True, cache=True, error_model="numpy")
def min_q(x, weights, biases, code):
    """``min_i Q_i(x)`` over every member of a critic ensemble (``[R]``, a new array); the members in parallel
    (numba's threads), each on its own GEMM scratch."""
    n, rows = weights[0].shape[0], x.shape[0]
    qs = np.empty((n, rows), np.float32)
    for i in prange(n):
        posts, slopes = _lists(x)
        qs[i] = _critic_forward(x, weights, biases, i, code, False, posts, slopes, np.zeros(9, np.int32))
    y = qs[0].copy()
    for i in range(1, n):
        for r in range(rows):
            y[r] = min(y[r], qs[i, r])
    return y


@njit(parallel=True, cache=True, error_model="numpy")
def critic_regress(x, y, cw, cb, gw, gb, code, independent, loss):
    """Every critic's gradient of ``mean_r (Q_i(x_r) - y_r)^2`` into ``gw``/``gb`` (its value into ``loss[i]``);
    with ``independent`` critic ``i`` regresses on rows ``[i R/n, (i+1) R/n)`` of ``x`` and ``y``, else on all.
    The members in parallel (numba's threads): each writes only its own slices."""
    rows, n = y.shape[0], cw[0].shape[0]
    m = rows // n if independent else rows
    for i in prange(n):
        lo = i * m if independent else 0
        _regress_member(x[lo:lo + m], y[lo:lo + m], cw, cb, gw, gb, code, i, loss, np.zeros(9, np.int32))


@njit(cache=True, error_model="numpy")
def _regress_member(x, y, cw, cb, gw, gb, code, i, loss, s):
    """Critic ``i``'s MSE on ``(x, y)`` into ``loss[i]`` and its gradients into ``gw[k][i]``/``gb[k][i]``."""
    m, last = y.shape[0], len(cw) - 1
    posts, slopes = _lists(x)
    posts.append(x)
    q = _critic_forward(x, cw, cb, i, code, True, posts, slopes, s)
    g = np.empty((m, 1), np.float32)
    inv = np.float32(1.0 / m)
    acc = np.float64(0.0)
    for r in range(m):
        d = q[r] - y[r]
        acc += d * d
        g[r, 0] = inv * (_F2 * d)
    loss[i] = acc / m
    for k in range(last, -1, -1):
        mm(posts[k], True, g, False, gw[k][i], _F0, s)
        _col_sum(g, gb[k][i])
        if k > 0:
            w = cw[k][i]
            gp = np.empty((m, w.shape[0]), np.float32)
            mm(g, False, w, True, gp, _F0, s)
            _mul(gp, slopes[k - 1])
            g = gp


@njit(cache=True, error_model="numpy")
def actor_grads(policy_obs, critic_obs, aw, ab, cw, cb, gw, gb, code, s):
    """One actor step's gradients of ``-mean Q_1(s, tanh(pi(s)))`` into ``gw``/``gb``; returns the mean Q."""
    posts, slopes = _lists(policy_obs)
    posts.append(policy_obs)
    z = _actor_forward(policy_obs, aw, ab, code, True, posts, slopes, s)
    rows, n_act = z.shape
    n_obs = critic_obs.shape[1]
    x = np.empty((rows, n_obs + n_act), np.float32)
    for r in range(rows):
        for j in range(n_obs):
            x[r, j] = critic_obs[r, j]
        for j in range(n_act):
            x[r, n_obs + j] = np.tanh(z[r, j])
    c_posts, c_slopes = _lists(x)
    q = _critic_forward(x, cw, cb, 0, code, True, c_posts, c_slopes, s)
    mean = np.float64(0.0)
    for r in range(rows):
        mean += q[r]
    g = input_grad(np.full((rows, 1), np.float32(-1.0 / rows), np.float32), cw, 0, c_slopes, 0, s)
    ga = np.empty((rows, n_act), np.float32)
    for r in range(rows):
        for j in range(n_act):
            t = x[r, n_obs + j]
            ga[r, j] = g[r, n_obs + j] * (_F1 - t * t)
    actor_backward(ga, aw, posts, slopes, gw, gb, s)
    return mean / rows


@njit(cache=True, error_model="numpy")
def input_grad(g, cw, member, slopes, first, s):
    """Critic ``member``'s backward from its output gradient ``g`` ``[R, 1]`` to its input (no weight gradient
    kept); ``slopes[first + k]`` is its hidden layer ``k``'s slope."""
    for k in range(len(cw) - 1, -1, -1):
        w = cw[k][member]
        gp = np.empty((g.shape[0], w.shape[0]), np.float32)
        mm(g, False, w, True, gp, _F0, s)
        if k > 0:
            _mul(gp, slopes[first + k - 1])
        g = gp
    return g


@njit(cache=True, error_model="numpy")
def actor_backward(g, aw, posts, slopes, gw, gb, s):
    """The actor's backward from its output gradient ``g`` (consumed) into ``gw``/``gb``; ``posts[k]`` is layer
    ``k``'s input, ``slopes[k]`` hidden layer ``k``'s slope (as :func:`_actor_forward` records them)."""
    for k in range(len(aw) - 1, -1, -1):
        mm(g, True, posts[k], False, gw[k], _F0, s)
        _col_sum(g, gb[k])
        if k > 0:
            gp = np.empty((g.shape[0], aw[k].shape[1]), np.float32)
            mm(g, False, aw[k], False, gp, _F0, s)
            _mul(gp, slopes[k - 1])
            g = gp


@njit(cache=True, error_model="numpy")
def adam_(params, grads, exp_avg, exp_avg_sq, steps, decay, lr, beta1, beta2, eps):
    """Adam(W) on flat float32 views, as torch's fused CPU kernel: ``p *= 1 - lr decay``, ``m`` lerps to ``g``
    by ``1 - beta1``, ``v = beta2 v + (1 - beta2) g^2``, ``p -= lr / (1 - beta1^t) m / (sqrt(v) / sqrt(1 -
    beta2^t) + eps)`` (the scalars in float64); ``steps`` (float32, one per tensor) are incremented. Numba's threads
    take :data:`_ADAM_SHARES` contiguous shares of every tensor (elementwise: the same numbers at any count)."""
    adam_lerp_(params, grads, exp_avg, exp_avg_sq, steps, decay, lr, beta1, beta2, eps, params, 0.0)


@njit(parallel=True, cache=True, error_model="numpy")
def adam_lerp_(params, grads, exp_avg, exp_avg_sq, steps, decay, lr, beta1, beta2, eps, targets, tau):
    """:func:`adam_`, then with ``tau > 0`` each share's Polyak step ``target <- target + tau (p - target)`` on
    ``targets`` (flat views in ``params``' order) while that share is in cache: :func:`lerp_`'s numbers."""
    n = len(params)
    shrink, step_size, bc2_sqrt = np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n, np.float32)
    total = 0
    for t in range(n):
        steps[t][0] += _F1
        step = np.float64(steps[t][0])
        shrink[t] = np.float32(1.0 - lr * decay[t])
        step_size[t] = np.float32(lr / (1.0 - beta1 ** step))
        bc2_sqrt[t] = np.float32(np.sqrt(1.0 - beta2 ** step))
        total += params[t].size
    if total < _ADAM_SERIAL_BELOW:  # (SAC's temperature: one number) not worth waking a thread
        for c in range(_ADAM_SHARES):
            _adam_share(params, grads, exp_avg, exp_avg_sq, decay, shrink, step_size, bc2_sqrt, beta1, beta2, eps,
                        targets, tau, c)
    else:
        for c in prange(_ADAM_SHARES):
            _adam_share(params, grads, exp_avg, exp_avg_sq, decay, shrink, step_size, bc2_sqrt, beta1, beta2, eps,
                        targets, tau, c)


@njit(cache=True, error_model="numpy")
def _adam_share(params, grads, exp_avg, exp_avg_sq, decay, shrink, step_size, bc2_sqrt, beta1, beta2, eps, targets,
                tau, c):
    """Share ``c`` of :data:`_ADAM_SHARES` of every tensor's elements (and of its target's, with ``tau > 0``)."""
    for t in range(len(params)):
        size = params[t].size
        lo, hi = c * size // _ADAM_SHARES, (c + 1) * size // _ADAM_SHARES
        _adam_span(params[t][lo:hi], grads[t][lo:hi], exp_avg[t][lo:hi], exp_avg_sq[t][lo:hi], decay[t] != 0.0,
                   shrink[t], step_size[t], bc2_sqrt[t], beta1, beta2, eps)
        if tau > 0.0:
            _lerp_span(targets[t][lo:hi], params[t][lo:hi], np.float32(tau))


@njit(cache=True, error_model="numpy")
def _adam_span(p, g, m, v, decayed, shrink, step_size, bc2_sqrt, beta1, beta2, eps):
    """:func:`adam_`'s update of a span of one tensor (a loop from 0: LLVM vectorises it, not one from ``lo``)."""
    b1, b2 = np.float32(1.0 - beta1), np.float32(beta2)
    one_b2, e = np.float32(1.0 - beta2), np.float32(eps)
    for k in range(p.size):
        gk = g[k]
        if decayed:
            p[k] = p[k] * shrink
        m[k] = m[k] + b1 * (gk - m[k])
        v[k] = b2 * v[k] + one_b2 * gk * gk
        p[k] = p[k] - step_size * m[k] / (np.sqrt(v[k]) / bc2_sqrt + e)


@njit(cache=True, error_model="numpy")
def _lerp_span(a, b, w):
    for k in range(a.size):
        a[k] = a[k] + w * (b[k] - a[k])


@njit(cache=True, error_model="numpy")
def lerp_(targets, sources, tau):
    """``target <- target + tau (source - target)`` on flat views (``torch.lerp`` for ``tau < 0.5``)."""
    w = np.float32(tau)
    for t in range(len(targets)):
        _lerp_span(targets[t], sources[t], w)


@njit(cache=True, error_model="numpy")
def gather_(table, idx, c0, c1, out):
    """``out[r] = table[idx[r], c0:c1]`` as explicit row loops (contiguous inner copies that LLVM vectorises; an
    array-slice assignment per row, ``out[r] = table[i]``, measured slower than torch's ``index_select``)."""
    w = c1 - c0
    for r in range(idx.size):
        src = table[idx[r], c0:c1]
        dst = out[r]
        for c in range(w):
            dst[c] = src[c]


@njit(cache=True, error_model="numpy")
def _adam_groups(groups, hyper):
    """:func:`adam_` on every parameter group ``(params, grads, exp_avg, exp_avg_sq, steps, decay)``; ``hyper[g]``
    = lr, beta1, beta2, eps of group ``g``."""
    g = 0
    for grp in literal_unroll(groups):
        adam_(grp[0], grp[1], grp[2], grp[3], grp[4], grp[5], hyper[g, 0], hyper[g, 1], hyper[g, 2], hyper[g, 3])
        g += 1


@njit(cache=True, error_model="numpy")
def _adam_lerp_groups(groups, hyper, tau):
    """:func:`adam_lerp_` on every group ``(params, grads, exp_avg, exp_avg_sq, steps, decay, targets)`` (as
    :func:`_adam_groups`, each group's Polyak step on its ``targets`` with ``tau``)."""
    g = 0
    for grp in literal_unroll(groups):
        adam_lerp_(grp[0], grp[1], grp[2], grp[3], grp[4], grp[5], hyper[g, 0], hyper[g, 1], hyper[g, 2],
                   hyper[g, 3], grp[6], tau)
        g += 1


@njit(cache=True, error_model="numpy")
def update_from_replay(table, idx_c, idx_a, eps, cols, rows_c, rows_a, nets, grads, adams, hypers, polyak, flags,
                       consts, loss, s):
    """One whole TD3 update from replay rows ``idx_c`` (critics) and ``idx_a`` (actor; empty: the critic rows):
    the columns each step reads are gathered into ``rows_c`` (table columns ``cols[0]:``, from ``critic_obs`` to the
    end) and ``rows_a`` (``0:cols[1]``, ``policy_obs`` and ``critic_obs``); then :func:`critic_grads`, the critics'
    Adam, with ``flags[0]`` the actor's step, its Adam and the actor target's Polyak step, with ``flags[1]`` the
    critic targets' Polyak step. ``cols`` (relative to ``rows_c``): reward, next_policy_obs, next_critic_obs,
    terminated, then the widths of policy_obs, critic_obs, action. ``nets`` = actor, actor target, critic, critic
    target (weights, biases); ``consts`` = target noise, its clip, gamma, tau. Returns the actor step's mean Q."""
    rc, np0, nc0, tc, pd, cd, ad = cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8]
    c_end = cols[0] + rows_c.shape[1]
    gather_(table, idx_c, cols[0], c_end, rows_c)
    rows = rows_c[:idx_c.size]
    actor, actor_t, critic, critic_t = nets
    critic_grads(rows[:, np0:np0 + pd], rows[:, nc0:nc0 + cd], rows[:, rc], rows[:, tc], rows[:, 0:cd + ad], eps,
                 actor_t[0], actor_t[1], critic_t[0], critic_t[1], critic[0], critic[1], grads[0][0], grads[0][1],
                 flags[2], np.float32(consts[0]), np.float32(consts[1]), np.float32(consts[2]), flags[3] != 0, loss, s)
    _adam_groups(adams[0], hypers[0])
    mean_q = 0.0
    if flags[0]:
        if idx_a.size:
            gather_(table, idx_a, 0, cols[1], rows_a)
            pol, cri = rows_a[:idx_a.size, 0:pd], rows_a[:idx_a.size, pd:pd + cd]
        else:  # the shared batch: its policy_obs was not gathered
            gather_(table, idx_c, 0, cols[1], rows_a)
            pol, cri = rows_a[:idx_c.size, 0:pd], rows_a[:idx_c.size, pd:pd + cd]
        mean_q = actor_grads(pol, cri, actor[0], actor[1], critic[0], critic[1], grads[1][0], grads[1][1], flags[2], s)
        _adam_groups(adams[1], hypers[1])
        lerp_(polyak[0][0], polyak[0][1], consts[3])
    if flags[1]:
        lerp_(polyak[1][0], polyak[1][1], consts[3])
    return mean_q
