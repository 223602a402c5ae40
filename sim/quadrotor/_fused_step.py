"""The fused hover env's step as a numba-callable kernel (the env contract's ``compiled_step``).

:func:`compiled_step` is :func:`~sim.quadrotor._fused_kernels.step_kernel` run serially, with the env's Python-side
state (the action ring's head) kept in an array of the context, so that a trainer's own compiled loop can step
the env without returning to Python (``sim.core.CompiledStep``). Same stages, same per-env random streams, same
outputs as ``FusedQuadrotorHoverEnv.step``; the envs run on the calling thread (a one-env off-policy run has
nothing to spread).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.quadrotor._fused_kernels import T_DR, _obs_rows, _outputs, _reset_rows, _step_rows


@njit(cache=True, error_model="numpy")
def compiled_step(action, ctx):
    """Advance every env one step on float32 ``action`` ``[N, 4]``; ``ctx`` = (bufs, head, envs, geo, task, sig,
    weights) with ``head`` a one-element int64 array (the ring slot of the newest action, advanced here).

    Returns ``policy, critic, reward, terms, flags, done_idx, final`` as ``step_kernel`` does."""
    bufs, head_arr, envs, geo, task, sig, weights = ctx
    ring = bufs[7]
    head = (head_arr[0] + 1) % (ring.shape[1] // 4)
    head_arr[0] = head
    n = envs.size
    outs, start = _outputs(n, task, ring, head)
    policy, critic, flags = outs[0], outs[1], outs[4]
    _step_rows(0, n, action, bufs, outs, head, geo, task, weights)
    _obs_rows(envs, 0, n, bufs, policy, critic, start, geo, sig, 4 if task[T_DR] != 0.0 else 0)
    done_idx = np.flatnonzero(flags[2])
    k = done_idx.size
    final = np.empty((k, policy.shape[1] + critic.shape[1]), np.float32)
    _reset_rows(done_idx, 0, k, bufs, policy, critic, final, start, geo, task, sig)
    return policy, critic, outs[2], outs[3], flags, done_idx, final
