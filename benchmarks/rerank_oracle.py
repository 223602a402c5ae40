"""How much can re-ranking a frozen diffusion base's chunks gain at all? Best of K by simulated continuation.

Value-guided re-ranking (``robot_rl.residual.rerank``) scores K sampled chunks with a learned value and runs the
best. This replaces the value by the simulator itself: where a chunk is due, each of the K candidates (candidate 0
= the base's own sample, as in re-ranking) is executed from a copy of the env's state and followed by the plain
base for ``--lookahead`` control steps (0: to the end of the episode); its score is +1 if the episode succeeds
within them, -1 if it fails (a failure termination), else 0; the best-scoring candidate runs (ties: the lowest
index, so the base's own chunk when nothing separates them). Each continuation draws *fresh* base and observation
noise (one draw per replanning, common to all K candidates), not the noise the real run then meets, so the
oracle is a one-sample estimate of each chunk's success, not a look at the future. With ``--k 1`` the same loop
runs the plain base (the reference, measured in the same run on the same episodes). The loop is
:func:`robot_rl.residual.branched.best_of_k_rollouts`, which also collects ``robot-rl train vgps --value
branched``'s data on training episodes.

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
from pathlib import Path
from typing import Any

import torch

from robot_rl.residual.branched import best_of_k_rollouts
from robot_rl.runners.bc import load_policy
from sim.registry import EVAL_SEED


def run(run_dir: Path, episodes: int, k: int, lookahead: int, seed: int, env_seed: int = EVAL_SEED) -> dict[str, Any]:
    """The plain base (``k`` 1) or the oracle on ``episodes`` held-out episodes (``env_seed``), one per env."""
    policy, meta = load_policy(run_dir)
    task = meta["config"].get("task")
    if not task:
        raise SystemExit(f"{run_dir}: the base's checkpoint names no task")
    return best_of_k_rollouts(policy, task, episodes, k, lookahead, seed, env_seed)


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
