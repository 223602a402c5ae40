"""Where paper-td3's fused training step spends its CPU time, measured inside the real training loop.

Trains ``paper-td3`` (``--td3.fused``, one torch thread; ``--step-by-step``: without the fused
collection chunks) to ``--start`` env steps, then runs ``--steps`` more with
the runner's iteration split into its parts, each timed in **CPU time of this thread** (``time.thread_time``: on
the shared machine a preempted process does not count the time it waits, so the parts add up to what a quiet
core would spend, up to cache and frequency effects of the neighbours). The explicit update is split further by
wrapping its calls: the torch GEMMs (``torch.mm``/``bmm``), each numba kernel of ``_td3_kernels`` (by name; since
the one-call steps a kernel holds its GEMMs too), the other torch ops by name, and the rest (torch's Adam kernel
where it is called, the Python between the calls).
Wrapping adds ~0.3 us per wrapped call; the ``untimed`` line is the same steps without any wrapping.
The last line is JSON: ``{"per_env_step_us": {...}, "critic_update_us": {...}, "actor_update_us": {...}}``.

    PYTHONPATH=$PWD NUMBA_NUM_THREADS=1 python benchmarks/td3_breakdown.py [--start 30000 --steps 20000]
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from robot_rl.algorithms import _td3_kernels as K
from robot_rl.algorithms import td3_explicit
from robot_rl.config import get_preset
from robot_rl.runners import fused_cycles, off_policy
from robot_rl.runners.off_policy import OffPolicyRunner
from robot_rl.runs import make_runner

clk = time.thread_time
T: dict[str, float] = defaultdict(float)
N: dict[str, int] = defaultdict(int)
KERNELS = [k for k in dir(K) if not k.startswith("_") and callable(getattr(K, k)) and hasattr(getattr(K, k), "py_func")]
SAMPLED = False
CYCLEWISE = False
"""``--cyclewise``: one collection call and one update call per cycle (before ``fused_cycles.run_cycles``)."""
INNER: dict[str, float] = defaultdict(float)
"""Parts of ``run_cycles`` (not added to the per-step total): its numba call and its torch draws."""
IN_CYCLES = [False]
"""``--sampled``: sample with ``ReplayBuffer.sample`` and then ``TD3.update`` (before ``update_from_replay``)."""
TORCH_OPS = ("randn", "randint", "empty", "empty_like", "cat", "sum", "full_like", "tensor", "_foreach_lerp_",
             "_foreach_add_")


def timed(name: str, fn, *a, **k):
    t = clk()
    r = fn(*a, **k)
    T[name] += clk() - t
    N[name] += 1
    return r


def iteration(self: OffPolicyRunner) -> dict[str, float]:
    """``OffPolicyRunner._iteration`` for paper-td3 (no random steps, no termination reward, no lr decay), timed."""
    oc, env = self.cfg.off_policy, self.env
    if self.collector is not None and not CYCLEWISE:  # every cycle up to the next boundary in one call
        IN_CYCLES[0] = True
        out = timed("fused cycles (run_cycles: collection + sampling + updates)", fused_cycles.run_cycles,
                    self.collector)
        IN_CYCLES[0] = False
        if out is not None:
            timed("curriculum", self._apply_curriculum, self._recompute_rewards)
            return out
    if self.collector is not None:  # the fused chunks: the steps up to the next update in one call
        steps = timed("chunk length (Python)", self._chunk_steps)
        timed("fused collection (act + env + replay + episodes)", self.collector.collect, steps)
        timed("curriculum", self._apply_curriculum, self._recompute_rewards)
        if self.env_steps < oc.critic_starts:
            return {}
        return updates(self, oc)
    action = timed("act", self.algo.act, self.obs["policy"], explore=True)
    obs, reward, terminated, truncated, info = timed("env step", env.step, action)
    t = clk()
    final, terms, term = info["final_obs"], info["reward_terms"], terminated.float()
    fields = {"policy_obs": self.obs["policy"], "critic_obs": self.obs["critic"], "action": action,
              "reward_terms": terms, "reward": reward, "next_policy_obs": final["policy"],
              "next_critic_obs": final["critic"], "terminated": term}
    T["replay fields"] += clk() - t
    timed("replay add", self.buffer.add, **fields)
    t = clk()
    self.obs = {k: v.clone() for k, v in obs.items()}
    T["obs clone"] += clk() - t
    timed("episode tracking", self._track_episodes, reward, terminated | truncated)
    self.env_steps += env.num_envs * self.world
    timed("curriculum", self._apply_curriculum, self._recompute_rewards)
    if self.env_steps < oc.critic_starts:
        return {}
    self.update_credit += env.num_envs * oc.updates_per_step
    return updates(self, oc)


def updates(self: OffPolicyRunner, oc) -> dict[str, float]:
    """``OffPolicyRunner._updates`` for paper-td3 (no lr decay), timed."""
    train_actor = self.env_steps >= oc.actor_starts
    stats: dict[str, torch.Tensor] = {}
    while self.update_credit >= 1.0:
        self.update_credit -= 1.0
        if SAMPLED:
            batch = timed("sample (critic)", self.buffer.sample, self.algo.batch_rows(oc.batch_size), self.gen)
            actor_batch = (timed("sample (actor)", self.buffer.sample, oc.batch_size, self.gen)
                           if self.algo.actor_due(train_actor) else None)
            stats = timed("update", self.algo.update, batch, train_actor=train_actor, actor_batch=actor_batch)
        else:
            stats = timed("update (+ replay sampling)", self.algo.update_from_replay, self.buffer, oc.batch_size,
                          train_actor)
    t = clk()
    out = {k: float(v) for k, v in stats.items()}
    T["loss .item()"] += clk() - t
    return out


def wrap(owner, name: str, label: str, scope: dict) -> None:
    f = getattr(owner, name)

    @functools.wraps(f)
    def w(*a, **k):
        t = clk()
        r = f(*a, **k)
        scope[label] += clk() - t
        return r

    setattr(owner, name, w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", type=int, default=30_000, help="env steps trained before measuring (actor on)")
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--step-by-step", action="store_true",
                    help="collect one env step per iteration (the fused path before the fused collection chunks)")
    ap.add_argument("--sampled", action="store_true",
                    help="sample with ReplayBuffer.sample, then TD3.update (the loop before TD3.update_from_replay)")
    ap.add_argument("--cyclewise", action="store_true",
                    help="one collection and one update call per cycle (the loop before fused_cycles.run_cycles)")
    args = ap.parse_args()
    global SAMPLED, CYCLEWISE
    SAMPLED, CYCLEWISE = args.sampled, args.cyclewise or args.sampled
    torch.set_num_threads(1)
    cfg = get_preset("paper-td3")
    cfg.seed, cfg.td3.fused = args.seed, True
    cfg.checkpoint_every = cfg.eval_every = 0
    with tempfile.TemporaryDirectory() as tmp:
        runner = make_runner(cfg, Path(tmp))
        if args.step_by_step:
            runner.collector = None
        if CYCLEWISE:
            off_policy.run_cycles = lambda collector: None
        if SAMPLED:
            algo = runner.algo

            def sample_then_update(buffer, batch_size, train_actor):
                batch = buffer.sample(algo.batch_rows(batch_size), algo.gen)
                actor_batch = buffer.sample(batch_size, algo.gen) if algo.actor_due(train_actor) else None
                return {k: float(v) for k, v in algo.update(batch, train_actor, actor_batch).items()}
            algo.update_from_replay = sample_then_update
        runner.train(stop_at=args.start)
        # train() ends with a checkpoint (the whole replay table): not part of a training step (before this
        # change the measured segments included it: ~25-40 us per env step of "glue" over 20k steps)
        runner.save = lambda *a, **k: None
        t0 = clk()
        runner.train(stop_at=args.start + args.steps)
        untimed = (clk() - t0) / args.steps * 1e6
        # the explicit update's parts: counted per update kind (critic-only / with actor) below
        ops: dict[str, float] = defaultdict(float)
        for name in ("mm", "bmm"):
            if hasattr(torch, name):
                wrap(torch, name, "GEMM (torch)", ops)
        for name in KERNELS:
            wrap(K, name, f"numba K.{name}", ops)
        for name in TORCH_OPS:
            wrap(torch, name, f"torch.{name}", ops)
        crit: dict[str, float] = defaultdict(float)
        both: dict[str, float] = defaultdict(float)
        counts = {"critic": 0, "both": 0}
        update = td3_explicit.ExplicitTD3.update
        from_replay = td3_explicit.ExplicitTD3.update_from_replay

        def split_update(self, *args):
            ops.clear()
            t = clk()
            out = (update if SAMPLED else from_replay)(self, *args)
            total = clk() - t
            dest, key = (both, "both") if "actor_loss" in out else (crit, "critic")
            counts[key] += 1
            dest["total"] += total
            for k, v in ops.items():
                dest[k] += v
            return out

        if SAMPLED:
            td3_explicit.ExplicitTD3.update = split_update
        else:
            td3_explicit.ExplicitTD3.update_from_replay = split_update
        OffPolicyRunner._iteration = iteration
        cycler = fused_cycles.cycler

        def timed_cycler(env_kernel):
            kernel = cycler(env_kernel)

            def call(*a):
                t = clk()
                r = kernel(*a)
                INNER["of which the numba call"] += clk() - t
                return r
            return call

        fused_cycles.cycler = timed_cycler
        for name in ("randn", "randint"):
            f = getattr(fused_cycles.torch, name)

            def draw(*a, _f=f, **k):
                t = clk()
                r = _f(*a, **k)
                if IN_CYCLES[0]:
                    INNER["of which torch draws"] += clk() - t
                return r
            setattr(fused_cycles.torch, name, draw)
        t0 = clk()
        runner.train(stop_at=args.start + 2 * args.steps)
        timed_total = (clk() - t0) / args.steps * 1e6
    per_step = {k: T[k] / args.steps * 1e6 for k in T}
    per_step["runner loop + iteration glue"] = timed_total - sum(per_step.values())
    c = {k: v / counts["critic"] * 1e6 for k, v in crit.items()} if counts["critic"] else {"total": 0.0}
    b = {k: v / counts["both"] * 1e6 for k, v in both.items()} if counts["both"] else {"total": 0.0}
    for d in (c, b):  # (with run_cycles only the updates outside its calls are split here)
        d["Adam kernel + Python + other"] = d["total"] - sum(v for k, v in d.items() if k != "total")
    a = {k: b.get(k, 0.0) - c.get(k, 0.0) for k in b}
    mode = " step by step" if args.step_by_step else " (fused collection chunks)"
    print(f"paper-td3 fused{mode}, seed {args.seed}, env steps {args.start}-{args.start + args.steps}; CPU us of this "
          f"thread per env step: untimed {untimed:.1f}, timed {timed_total:.1f}")
    for k, v in sorted(per_step.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<32}{v:8.1f}")
    inner = {k: v / args.steps * 1e6 for k, v in INNER.items()}
    for k, v in inner.items():
        print(f"    {k:<30}{v:8.1f}")
    print(f"critic update ({counts['critic']} of them), us per update:")
    for k, v in sorted(c.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<32}{v:8.1f}")
    print(f"what an actor update adds ({counts['both']} updates with one), us:")
    for k, v in sorted(a.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<32}{v:8.1f}")
    r = functools.partial(round, ndigits=1)
    print(json.dumps({"untimed_us_per_env_step": r(untimed), "timed_us_per_env_step": r(timed_total),
                      "per_env_step_us": {k: r(v) for k, v in per_step.items()},
                      "run_cycles_us": {k: r(v) for k, v in inner.items()},
                      "critic_update_us": {k: r(v) for k, v in c.items()},
                      "actor_update_us": {k: r(v) for k, v in a.items()}}))


if __name__ == "__main__":
    main()
