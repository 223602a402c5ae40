"""How much can re-ranking a frozen diffusion base's chunks gain at all? Best of K by simulated continuation.

Value-guided re-ranking (``robot_rl.residual.rerank``) scores K sampled chunks with a learned value and runs the
best. This replaces the value by the simulator itself: where a chunk is due, each of the K candidates (candidate 0
= the base's own sample, as in re-ranking) is executed from a copy of the env's state and followed by the plain
base for ``--lookahead`` control steps (0: to the end of the episode); its score is +1 if the episode succeeds
within them, -1 if it fails (a failure termination), else 0; the best-scoring candidate runs (ties: the lowest
index, so the base's own chunk when nothing separates them). Each continuation draws *fresh* base and observation
noise (one draw per replanning, common to all K candidates), not the noise the real run then meets, so the
oracle is a one-sample estimate of each chunk's success, not a look at the future. With ``--k 1`` the same loop
runs the plain base (the reference, measured in the same run on the same episodes).

It is an upper bound for any value of horizon ``--lookahead`` that scores the same K samples (a perfect model
plus a Monte-Carlo return), far beyond what ``rerank`` trains: if it gains little, the base's K samples hold no
better chunk and no value can re-rank it to a gain; if it gains much, the value is what limits re-ranking.

    PYTHONPATH=. python benchmarks/rerank_oracle.py runs/lift4/dp-seed0 --episodes 64 --k 8 --lookahead 64

Last line: {"task", "episodes", "k", "lookahead", "base_success", "oracle_success", "env_steps_simulated" (K x
lookahead x envs per replanning: the budget; a continuation stops early only when every env's episode has ended),
"wall_s"}.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.runners.bc import load_policy
from sim.registry import EVAL_SEED, get_task


def _score(env: Any, base: FrozenChunkBase, chunks: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    """Run ``chunks`` at the due envs, then the base, for ``steps`` control steps from the current state with
    fresh noise from ``seed``: +1 success, -1 failure, 0 neither (per env, the first episode end only)."""
    base.generator.manual_seed(seed)
    env.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state  # the env's own generator object
    score = torch.zeros(base.num_envs)
    ended = torch.zeros(base.num_envs, dtype=torch.bool)
    a = base.act(chunks)
    for _ in range(steps):
        obs, _, terminated, _, info = env.step(a)
        now = info["done_mask"].cpu() & ~ended
        succ = info["success"].cpu().bool()
        score[now & succ] = 1.0
        score[now & ~succ & terminated.cpu().bool()] = -1.0
        ended |= now
        if bool(ended.all()):
            break
        base.step(obs["policy"].float(), info["done_mask"].cpu())
        a = base.act()
    return score


@torch.no_grad()
def run(run_dir: Path, episodes: int, k: int, lookahead: int, seed: int, env_seed: int = EVAL_SEED,
        record: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None) -> dict[str, Any]:
    """The plain base (``k`` 1) or the oracle on ``episodes`` episodes (one per env; ``env_seed``: the held-out
    ones by default). ``record``: per replanning, the envs still in their episode get ``(history [D, To * obs],
    executed parts of the K candidates normalised [D, K, n * A], scores [D, K])`` appended."""
    policy, meta = load_policy(run_dir)
    task = meta["config"].get("task")
    if not task:
        raise SystemExit(f"{run_dir}: the base's checkpoint names no task")
    spec = get_task(task)
    env = spec.make_env(replace(spec.config_cls(), num_envs=episodes, device="cpu"), seed=env_seed)
    obs = env.reset(seed=env_seed)
    base = FrozenChunkBase(policy, episodes, seed)
    base.reset(obs["policy"].float())
    horizon = lookahead or env.max_episode_steps
    done = torch.zeros(episodes, dtype=torch.bool)
    success = torch.zeros(episodes, dtype=torch.bool)
    length = torch.zeros(episodes, dtype=torch.long)
    ret = torch.zeros(episodes, dtype=torch.float64)
    simulated, replans, t0 = 0, 0, time.perf_counter()
    for _ in range(env.max_episode_steps):
        chunks = None
        if k > 1 and bool((base.due() & ~done).any()):  # an episode that still counts needs a chunk
            due, cands = base.candidate_chunks(k)
            env_state, base_state = env.state_dict(), base.state_dict()
            scores = torch.zeros(len(due), k)
            look_seed = 10_000_019 * (seed + 1) + replans
            for j in range(k):
                env.load_state_dict(env_state)
                base.load_state_dict(base_state)
                trial = base.chunk.clone()
                trial[due] = cands[:, j]
                scores[:, j] = _score(env, base, trial, horizon, look_seed)[due]
                simulated += horizon * episodes
            env.load_state_dict(env_state)
            base.load_state_dict(base_state)
            chunks = base.chunk.clone()
            if record is not None:
                live = ~done[due]
                executed = base.normalize_action(cands[live, :, : base.n_action_steps]).flatten(2)
                record.append((base.history[due][live].flatten(1), executed, scores[live]))
            best = torch.where(done[due], 0, scores.argmax(1))  # argmax: the first of equal scores
            chunks[due] = cands[torch.arange(len(due)), best]
            replans += 1
        obs, reward, _, _, info = env.step(base.act(chunks))
        ret += torch.where(done, 0.0, reward.cpu().double())
        length += (~done).long()
        ended = info["done_mask"].cpu() & ~done
        success |= ended & info["success"].cpu().bool()
        done |= ended
        if bool(done.all()):
            break
        base.step(obs["policy"].float(), info["done_mask"].cpu())
    env.close()
    return {"task": task, "success": success.double().mean().item(), "episode_success": success.tolist(),
            "episode_length": length.tolist(), "episode_return": ret.tolist(), "replans": replans,
            "env_steps_simulated": simulated, "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a dp-<task> run (the frozen base)")
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--k", type=int, default=8, help="candidates per replanning (candidate 0: the base's own)")
    ap.add_argument("--lookahead", type=int, default=64, help="control steps each candidate is simulated (0: the "
                    "episode's end)")
    ap.add_argument("--seed", type=int, default=0, help="the base's noise seed (as residual_lift's evaluations)")
    args = ap.parse_args()
    if args.k < 2 or args.episodes < 1 or args.lookahead < 0:
        raise SystemExit("need --k >= 2, --episodes >= 1 and --lookahead >= 0")
    torch.set_num_threads(1)
    plain = run(args.run, args.episodes, 1, args.lookahead, args.seed)
    print(json.dumps({"method": "base", **{k: v for k, v in plain.items() if not k.startswith("episode_")}}),
          flush=True)
    oracle = run(args.run, args.episodes, args.k, args.lookahead, args.seed)
    print(json.dumps({"method": "oracle", **{k: v for k, v in oracle.items() if not k.startswith("episode_")}}),
          flush=True)
    print(json.dumps({"task": plain["task"], "episodes": args.episodes, "k": args.k, "lookahead": args.lookahead,
                      "base_success": plain["success"], "oracle_success": oracle["success"],
                      "env_steps_simulated": oracle["env_steps_simulated"], "wall_s": oracle["wall_s"]}))


if __name__ == "__main__":
    main()
