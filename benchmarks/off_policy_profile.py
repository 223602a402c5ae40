"""Where an off-policy (TD3/SAC) training step spends its time: act, env step, replay add/sample, updates.

Builds the preset's runner (one torch thread), fills the replay buffer with ``--fill`` env steps, then times each
part on its own (mean over ``--reps`` calls after a warm-up), for the plain autograd path (``fused=False``), the
fused one (``fused=True``: numba acting and replay write, TD3's explicit update) and ``node`` (the fused path as
it was before those: one autograd node per network, torch acting and replay write) and, for SAC presets,
``explicit`` (``sac.explicit``: the update as hand-written numba kernels, on top of ``fused``), interleaved in the
same process so that the ratios survive a loaded machine.
``--impls plain`` also runs on trees without the ``fused`` option (the "before" measurement). Per env step the
cost is ``act + env + add + updates_per_step * (critic + sample) + actor share``; ``replay_update_us`` is one
``update_from_replay`` call (sample and update, the actor at its own schedule). The last line is JSON.

    PYTHONPATH=$PWD NUMBA_NUM_THREADS=1 python benchmarks/off_policy_profile.py --preset paper-td3
    PYTHONPATH=$PWD NUMBA_NUM_THREADS=1 python benchmarks/off_policy_profile.py --preset crazyflie-hover-sac \
        --impls plain,fused,explicit
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from robot_rl.algorithms import td3_explicit
from robot_rl.algorithms.td3 import TD3
from robot_rl.config import get_preset
from robot_rl.runs import make_runner

CLOCK = time.perf_counter


def timed(fn, reps: int) -> float:
    """Mean microseconds per call of ``fn`` (after ``reps // 10`` warm-up calls), on :data:`CLOCK`."""
    for _ in range(max(reps // 10, 5)):
        fn()
    t = CLOCK()
    for _ in range(reps):
        fn()
    return (CLOCK() - t) / reps * 1e6


def parts(preset: str, impl: str, fill: int, reps: int, tmp: Path, has_fused: bool) -> dict[str, float]:
    cfg = get_preset(preset)
    if has_fused:
        section = getattr(cfg, cfg.algorithm)
        section.fused = impl != "plain"
        if impl == "explicit":
            if not hasattr(section, "explicit"):
                raise SystemExit(f"--impls explicit: {cfg.algorithm} has no explicit option (TD3's is in fused)")
            section.explicit = True
    cfg.off_policy.critic_starts = cfg.off_policy.actor_starts = 10**12  # collection only while filling
    cfg.checkpoint_every = cfg.eval_every = 0
    runner = make_runner(cfg, tmp)
    runner.train(stop_at=fill)
    algo, env, buf, gen, oc = runner.algo, runner.env, runner.buffer, runner.gen, cfg.off_policy
    if impl == "node":  # the fused path before the explicit TD3 update: torch acting and replay write
        algo._numba_actor, buf._np = None, None
    obs = runner.obs["policy"]
    action = algo.act(obs, explore=True)
    _, reward, terminated, _, info = env.step(action)
    final = info["final_obs"]
    terms = info["reward_terms"] if env.reward_term_names else reward.new_zeros(env.num_envs, 0)
    fields = {"policy_obs": runner.obs["policy"], "critic_obs": runner.obs["critic"], "action": action,
              "reward_terms": terms, "reward": reward, "next_policy_obs": final["policy"],
              "next_critic_obs": final["critic"], "terminated": terminated.float()}
    size, pos = buf.size, buf.pos

    def add() -> None:
        buf.add(**fields)
        buf.size, buf.pos = size, pos  # keep the buffer from filling up

    out = {"act_us": timed(lambda: algo.act(obs, explore=True), reps * 10),
           "env_step_us": timed(lambda: env.step(action), reps * 10), "replay_add_us": timed(add, reps * 10)}
    td3 = isinstance(algo, TD3)
    rows = algo.batch_rows(oc.batch_size) if td3 else oc.batch_size
    out["replay_sample_us"] = timed(lambda: buf.sample(rows, gen), reps)
    batch, actor_batch = buf.sample(rows, gen), buf.sample(oc.batch_size, gen)
    delay = algo.cfg.policy_delay

    def update(with_actor: bool) -> None:
        algo.num_updates = delay - 1 if with_actor else delay  # the next update is (not) an actor update
        if td3:
            algo.update(batch, train_actor=True, actor_batch=actor_batch)
        else:
            algo.update(batch, train_actor=with_actor)

    explicit = td3_explicit.applies
    if impl == "node":
        td3_explicit.applies = lambda _: False  # the autograd-node updates (TD3Config.fused before)
    try:
        critic = timed(lambda: update(False), reps)
        both = timed(lambda: update(True), reps)
    finally:
        td3_explicit.applies = explicit
    # sampling and updating through update_from_replay, at the algorithm's own actor schedule (TD3's and the explicit
    # SAC's one numba call; sample + update elsewhere)
    out["replay_update_us"] = timed(lambda: algo.update_from_replay(buf, oc.batch_size, True), reps)
    out |= {"critic_update_us": critic, "actor_update_us": both - critic,
            "loop_us_per_env_step": (out["act_us"] + out["env_step_us"] + out["replay_add_us"]) / env.num_envs
            + oc.updates_per_step * (critic + out["replay_sample_us"] + (both - critic) / delay)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper-td3")
    ap.add_argument("--impls", default="plain,fused",
                    help="comma list of plain | node (the fused path's autograd nodes, torch acting and replay "
                         "write) | fused (numba acting and replay write, TD3's explicit update) | explicit (SAC "
                         "only: fused plus sac.explicit)")
    ap.add_argument("--fill", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2, help="alternate the impls this many times; best per part")
    ap.add_argument("--clock", choices=["wall", "thread"], default="wall",
                    help="thread: CPU time of this (the only computing) thread, which waiting for a core shared "
                         "with other jobs does not inflate")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.clock == "thread" else time.perf_counter
    torch.set_num_threads(1)
    impls = args.impls.split(",")
    has_fused = hasattr(get_preset(args.preset).td3, "fused")  # trees from before the fused path: plain only
    best: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for impl in impls:
                got = parts(args.preset, impl, args.fill, args.reps, Path(tmp) / f"{impl}{r}", has_fused)
                best[impl] = {k: min(v, best.get(impl, {}).get(k, v)) for k, v in got.items()}
    keys = list(next(iter(best.values())))
    print(f"{'part (us)':<24}" + "".join(f"{i:>12}" for i in impls) + f"{'first/last':>12}")
    for k in keys:
        vals = [best[i][k] for i in impls]
        ratio = f"{vals[0] / vals[-1]:>11.2f}x" if len(vals) > 1 and vals[-1] > 0 else ""
        print(f"{k:<24}" + "".join(f"{v:>12.1f}" for v in vals) + ratio)
    print(json.dumps({"preset": args.preset, **{i: {k: round(v, 1) for k, v in best[i].items()} for i in impls}}))


if __name__ == "__main__":
    main()
