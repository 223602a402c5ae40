"""SAC's collect + update cycles in one numba call (``sac.fused_collect``), as ``fused_cycles`` does TD3's.

With the explicit update (one numba call per update) and 32 envs at one update per 5 transitions, what was left of
a ``crazyflie-hover-sac-fast`` iteration was Python: the torch sample that acts (~240 us a step in training, its
caches cold after the updates), the env's step and info dict, the stored reward's shaping, the replay write, the
episode counters, and ~45 us per update of argument handling around the kernel. :func:`run_sac_cycles` plans
every cycle up to the runner's next boundary with ``fused_cycles``' own arithmetic, draws their random numbers
with torch in the step-by-step loop's order (per cycle: one exploration ``randn`` per env step, then per update
the rows' ``randint``, the critic step's ``randn`` and the actor step's), and runs the cycles in one call of
:func:`robot_rl.runners._collect_kernels.sac_cycles`, each cycle's updates at the learning rates the runner's
decay gives at that cycle. The run is the step-by-step fused run (``FusedCollector.collect`` + the explicit
``update_from_replay``) bit for bit (tested).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from robot_rl import distributed
from robot_rl.runners._collect_kernels import sac_cycler
from robot_rl.runners.fused_cycles import _plan, advance

if TYPE_CHECKING:
    from robot_rl.runners.fused_collect import FusedCollector

_OPTIMIZERS = ("critic_opt", "actor_opt", "alpha_opt")  # the update kernel's order of Adam groups


def run_sac_cycles(collector: FusedCollector) -> dict[str, list[float]] | None:
    """The runner's cycles up to its next boundary in one call; the stats each cycle's last update returns (as
    the step-by-step loop's iterations do). None (nothing drawn, nothing changed) where it does not apply now:
    before the random steps end, before the critic's and the actor's first steps (they build Adam's state through
    torch), in a distributed run, or with no whole cycle before the boundary."""
    r = collector.runner
    oc, algo, buf, env = r.cfg.off_policy, r.algo, r.buffer, r.env
    if (distributed.active() or r.env_steps < oc.critic_starts or r.env_steps < oc.random_steps
            or algo._explicit is None):
        return None
    ex = algo._explicit
    ex._views()
    adams = ex.adam_args()
    if None in adams:
        return None
    plan, credit, num_updates = _plan(collector)
    if not plan:
        return None
    c, n, adim, bs = algo.cfg, env.num_envs, env.action_dim, oc.batch_size
    steps = sum(s for s, _, _ in plan)
    ups = [u for _, cycle, _ in plan for u in cycle]
    noise = torch.empty(steps, n, adim)
    idx = torch.empty(len(ups) * bs, dtype=torch.int64)
    eps = torch.empty(sum(2 * bs if a else bs for a, _, _ in ups), adim)
    table = np.zeros((len(plan), 4), np.int64)
    updates = np.zeros((len(ups), 3), np.int64)
    factors = np.ones((len(plan), 3), np.float64)
    gen, dev = r.gen, buf.device
    k = u = e = 0
    for ci, (st, cycle, at) in enumerate(plan):  # the step-by-step loop's draws, in its order
        table[ci] = st, k, u, u + len(cycle)
        if oc.lr_decay_start > 0:
            factors[ci, :2] = r.lr_factor(at)
        for _ in range(st):
            torch.randn((n, adim), generator=gen, out=noise[k])
            k += 1
        for actor, _, size in cycle:  # ExplicitSAC.update_from_replay
            torch.randint(0, size, (bs,), generator=gen, device=dev, out=idx[u * bs:(u + 1) * bs])
            torch.randn((bs, adim), generator=gen, out=eps[e:e + bs])
            if actor:
                torch.randn((bs, adim), generator=gen, out=eps[e + bs:e + 2 * bs])
            updates[u] = actor, u * bs, e
            e += 2 * bs if actor else bs
            u += 1
    hypers = [a[1].copy() for a in adams]
    if oc.lr_decay_start > 0:  # the decay multiplies the learning rates the runner started from
        for h, name in zip(hypers, _OPTIMIZERS[:2], strict=False):
            h[:, 0] = r.base_lrs[name]
    if collector.finished.shape[0] < steps * n:
        collector.finished = np.empty((steps * n, 2), np.float32)
    losses, stats = np.zeros((len(ups), c.num_critics), np.float64), np.zeros((len(ups), 3), np.float64)
    weights, biases = collector.actor._weights()
    obs_p, obs_c = collector._obs_arrays()
    lo, hi = ex.log_std
    flags = np.array([0, ex.code, c.squash_correction], np.int64)
    consts = np.array([0.0, c.gamma, c.tau, lo, hi, algo.target_entropy], np.float64)
    with ex.threads:
        done = sac_cycler(collector.step.kernel)(
            table, updates, noise.numpy(), idx.numpy(), eps.numpy(), obs_p, obs_c, weights, biases,
            collector.actor.codes[0], buf._np, buf.pos, r.ep_return.numpy(), r.ep_length.numpy(), collector.finished,
            float(oc.termination_reward), collector.precision, collector.step.ctx, ex.scratch, *ex._gather(buf, bs),
            (ex.actor_np, ex.critic_np, ex.critic_target_np), (ex.critic_grads_np, ex.actor_grads_np),
            tuple(a[0] for a in adams), tuple(hypers), factors, consts, flags, ex.log_alpha_np,
            ex.alpha_grad_np, bs, ex.loss, losses, stats)
    advance(collector, steps, done, credit, num_updates)
    if oc.lr_decay_start > 0:  # where the step-by-step loop leaves them: at the last cycle's decay
        for name in _OPTIMIZERS[:2]:
            for group, lr in zip(algo.optimizers()[name].param_groups, r.base_lrs[name], strict=True):
                group["lr"] = lr * factors[-1, 0]
    out: dict[str, list[float]] = {"critic_loss": [], "alpha": [], "actor_loss": [], "entropy": []}
    for lo_u, hi_u in table[:, 2:]:
        if hi_u > lo_u:  # the last update's stats, as OffPolicyRunner._updates returns them
            last = hi_u - 1
            out["critic_loss"].append(float(np.float32(losses[last].sum())))
            out["alpha"].append(float(stats[last, 2]))
            if updates[last, 0]:
                out["actor_loss"].append(float(np.float32(stats[last, 0])))
                out["entropy"].append(float(np.float32(stats[last, 1])))
    return {k: v for k, v in out.items() if v}
