"""Several collect + update cycles of the fused TD3 loop in one numba call (``td3.fused``, after the first updates).

With the fused collection (:mod:`robot_rl.runners.fused_collect`) and the one-call update
(``TD3.update_from_replay``), a paper-td3 cycle (10 env steps, one critic update, every other one with the actor)
is two compiled calls; what is left around them is Python: the runner's loop and its chunk arithmetic, the calls'
argument handling, the losses. :func:`run_cycles` plans every cycle up to the runner's next boundary (log,
evaluation, checkpoint, stop, curriculum stage, the replay's end) with the plain loop's own arithmetic (the update
credit's float additions, the actor's schedule), draws all their random numbers with torch in the plain loop's
order (per cycle: one exploration ``randn`` per env step, then per update the critic rows' ``randint``, the
actor's, the target noise's ``randn``; none of them depends on a result), and runs the cycles in one call of
:func:`robot_rl.runners._collect_kernels.cycles`. The run is the cycle-by-cycle run bit for bit (tested).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from robot_rl import distributed
from robot_rl.algorithms import td3_explicit
from robot_rl.models.mlp_act import OUTPUT_CODES
from robot_rl.runners._collect_kernels import cycler

if TYPE_CHECKING:
    from robot_rl.runners.fused_collect import FusedCollector


def steps_to_update(credit: float, at: int, most: int, per: int, n: int, critic_starts: int,
                    updates_per_step: float) -> tuple[int, float, int]:
    """The plain off-policy loop's env steps from env step ``at`` (``per`` env steps each, ``n`` envs in this
    process) until its update credit reaches one, at most ``most``: ``(steps, credit, env step)`` after them. The
    one place of this arithmetic, so that the fused loops plan exactly the plain loop's cycles."""
    steps = 0
    while steps < most:
        steps += 1
        at += per
        if at >= critic_starts:
            credit += n * updates_per_step
            if credit >= 1.0:
                break
    return steps, credit, at


Plan = list[tuple[int, list[tuple[bool, bool, int]], int]]


def _plan(collector: FusedCollector) -> tuple[Plan, float, int]:
    """The cycles up to the next boundary: ``(env steps, [(actor step, critic-target step, replay size)], env step
    count at its updates)`` each, and the update credit and update count after them. A cycle that reaches the next
    curriculum stage is left out (the plain loop rewrites the stored rewards before that cycle's updates)."""
    r = collector.runner
    oc, c, n = r.cfg.off_policy, r.algo.cfg, r.env.num_envs
    per = n * r.world
    limit = r.iteration_limit
    every = r.cfg.curriculum.every
    stage_end = (r.env_steps // every + 1) * every if every > 0 else None
    if stage_end is not None:
        limit = min(limit, stage_end)
    room = (r.buffer.capacity - r.buffer.pos) // n
    credit, at, updates, size, used = r.update_credit, r.env_steps, r.algo.num_updates, r.buffer.size, 0
    plan: Plan = []
    while at < limit and used < room:
        most = min(max(1, -(-(limit - at) // per)), room - used)
        steps, cycle_credit, cycle_at = steps_to_update(credit, at, most, per, n, oc.critic_starts, oc.updates_per_step)
        if stage_end is not None and cycle_at >= stage_end:
            break
        size = min(size + steps * n, r.buffer.capacity)
        train_actor = cycle_at >= oc.actor_starts
        cycle = []
        while cycle_credit >= 1.0:  # OffPolicyRunner._updates
            cycle_credit -= 1.0
            actor = train_actor and (updates + 1) % c.policy_delay == 0
            updates += 1  # (SAC steps its critic targets on every update)
            cycle.append((actor, updates % getattr(c, "critic_target_delay", 1) == 0, size))
        plan.append((steps, cycle, cycle_at))
        credit, at, used = cycle_credit, cycle_at, used + steps
    return plan, credit, updates


def advance(collector: FusedCollector, steps: int, done: int, credit: float, num_updates: int) -> None:
    """The runner's state after a cycles call that took ``steps`` env steps and finished ``done`` episodes: the
    replay's position and size, the finished episodes' returns and lengths, the env step count, the update credit
    and count."""
    r, buf, n = collector.runner, collector.runner.buffer, collector.runner.env.num_envs
    buf.pos = (buf.pos + steps * n) % buf.capacity
    buf.size = min(buf.size + steps * n, buf.capacity)
    if done:
        r.recent["return"] += collector.finished[:done, 0].tolist()
        r.recent["length"] += collector.finished[:done, 1].tolist()
    r.env_steps += steps * n * r.world
    r.update_credit, r.algo.num_updates = credit, num_updates


def run_cycles(collector: FusedCollector) -> dict[str, list[float]] | None:
    """The runner's cycles up to its next boundary in one call; the losses each cycle's last update returns (as the
    plain loop's iterations do). None (nothing drawn, nothing changed) where it does not apply now: before the
    critic's first update and the actor's (their first steps build Adam's state through torch), with a learning-rate
    decay (changes between updates), in a distributed run, or with no whole cycle before the boundary."""
    r = collector.runner
    oc, algo, buf, env = r.cfg.off_policy, r.algo, r.buffer, r.env
    ex = algo._explicit
    if (oc.lr_decay_start > 0 or distributed.active() or ex is None or r.env_steps < oc.critic_starts
            or r.env_steps < oc.random_steps or not td3_explicit.applies(algo)):
        return None
    ex._views()
    critic_adam, actor_adam = ex.critic_adam.kernel_args(), ex.actor_adam.kernel_args()
    if critic_adam is None or actor_adam is None:
        return None
    plan, credit, num_updates = _plan(collector)
    if not plan:
        return None
    c, n, adim = algo.cfg, env.num_envs, env.action_dim
    bs = oc.batch_size
    rows = algo.batch_rows(bs)
    steps = sum(s for s, _, _ in plan)
    ups = [u for _, cycle, _ in plan for u in cycle]
    noise = torch.empty(steps, n, adim)
    idx = torch.empty(sum(rows + (bs if c.independent_batches and a else 0) for a, _, _ in ups), dtype=torch.int64)
    eps = torch.empty(len(ups) * rows, adim)
    table = np.zeros((len(plan), 4), np.int64)
    updates = np.zeros((len(ups), 7), np.int64)
    gen, dev = r.gen, buf.device
    k = i = u = 0
    for ci, (st, cycle, _) in enumerate(plan):  # the plain loop's draws, in its order
        table[ci] = st, k, u, u + len(cycle)
        for _ in range(st):
            torch.randn((n, adim), generator=gen, out=noise[k])
            k += 1
        for actor, target, size in cycle:
            na = bs if c.independent_batches and actor else 0
            torch.randint(0, size, (rows,), generator=gen, device=dev, out=idx[i:i + rows])
            if na:
                torch.randint(0, size, (na,), generator=gen, device=dev, out=idx[i + rows:i + rows + na])
            torch.randn((rows, adim), generator=gen, out=eps[u * rows:(u + 1) * rows])
            updates[u] = actor, target, i, rows, i + rows, na, u * rows
            i += rows + na
            u += 1
    if collector.finished.shape[0] < steps * n:
        collector.finished = np.empty((steps * n, 2), np.float32)
    losses, mean_q = np.zeros((len(ups), c.num_critics), np.float64), np.zeros(len(ups), np.float64)
    actor_w, actor_b = algo._numba_actor._weights()
    obs_p, obs_c = collector._obs_arrays()
    kernel = cycler(collector.step.kernel)
    with ex.threads:
        done = kernel(table, updates, noise.numpy(), idx.numpy(), eps.numpy(), obs_p, obs_c,
                      np.float32(c.exploration_noise), actor_w, actor_b, algo._numba_actor.codes[0],
                      OUTPUT_CODES[algo.actor.output], buf._np, buf.pos, r.ep_return.numpy(), r.ep_length.numpy(),
                      collector.finished, float(oc.termination_reward), collector.step.ctx, ex.scratch,
                      *ex.gather_args(buf, max(rows, bs)),
                      (ex.actor_np, ex.actor_target_np, ex.critic_np, ex.critic_target_np),
                      (ex.critic_grads_np, ex.actor_grads_np), (critic_adam[0], actor_adam[0]),
                      (critic_adam[1], actor_adam[1]), (ex.polyak_actor, ex.polyak_critic),
                      np.array([c.target_noise, c.target_noise_clip, c.gamma, c.tau], np.float64), ex.code,
                      int(c.independent_batches), ex.loss, losses, mean_q)
    advance(collector, steps, done, credit, num_updates)
    out: dict[str, list[float]] = {"critic_loss": [], "actor_loss": []}
    for _, cycle_ups in zip(plan, table[:, 2:], strict=True):
        if cycle_ups[1] > cycle_ups[0]:  # the last update's losses, as OffPolicyRunner._updates returns them
            last = cycle_ups[1] - 1
            out["critic_loss"].append(float(np.float32(losses[last].sum())))
            if updates[last, 0]:
                out["actor_loss"].append(float(np.float32(-mean_q[last])))
    return {k: v for k, v in out.items() if v}
