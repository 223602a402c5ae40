"""What EXPO's on-the-fly policy does to a frozen base before and after learning, on the held-out episodes.

Rows (each the task's held-out evaluation, the base's noise from ``--seed``): the base alone; an untrained EXPO
agent (random Q ensemble, zero-mean edits) with one candidate (must equal the base exactly) and with ``--k``
candidates (whole chunks scored by a random Q: a score near the base's says the selection itself keeps the
base's behaviour); and, for each ``--runs`` EXPO run, the trained agent as trained, with its edits switched off
(base candidates only) and with one candidate (edits of the base's own chunk only); for a run whose base kept
training on its imitation loss (``expo.base_bc_every``), also that updated base alone (``updated_base``).

    PYTHONPATH=. python benchmarks/expo_selection.py --base RUN [--runs EXPO_RUN ...] [--episodes 200] [--no-untrained]

Last line: {"base_success", "untrained_k1", "untrained_k", "runs": {run: {"trained", "no_edits", "k1"[,
"updated_base"]}}} (``--no-untrained``: without the untrained rows).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from robot_rl.residual.expo import EXPOAgent, EXPOConfig
from robot_rl.runners.bc import load_policy
from robot_rl.runners.expo import CandidatePolicy, load_expo
from robot_rl.runners.resip import evaluate_residual
from sim.registry import get_task


def held_out(task: str, policy: Any, episodes: int) -> dict[str, float]:
    spec = get_task(task)
    t0 = time.perf_counter()
    res = spec.evaluate(policy, spec.config_cls(), spec.evaluation.config_cls(), episodes)
    return {"success": res["success"], "mean_length": res["mean_episode_length"],
            "wall_s": round(time.perf_counter() - t0, 1)}


def untrained(policy: Any, k: int, seed: int) -> EXPOAgent:
    torch.manual_seed(seed)
    to = policy.n_obs_steps
    norm = (policy.obs_norm.mid.repeat(to), policy.obs_norm.span.repeat(to))
    return EXPOAgent(EXPOConfig(num_candidates=k, hidden=(128, 128)), to * policy.obs_dim, policy.act_dim,
                     norm).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="the behaviour-cloning run (dp-<task>)")
    ap.add_argument("--runs", nargs="*", default=[], help="EXPO runs on that base")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0, help="base noise seed")
    ap.add_argument("--no-untrained", action="store_true", help="leave out the untrained-agent rows")
    args = ap.parse_args()
    torch.set_num_threads(1)
    policy, _ = load_policy(args.base)
    task = json.loads((Path(args.base) / "config.json").read_text())["task"]
    base = evaluate_residual(task, policy, None, args.episodes, noise_seed=args.seed)
    out: dict[str, Any] = {"task": task, "episodes": args.episodes, "base_success": base["success"]}
    print(json.dumps({"row": "base", "success": base["success"], "mean_length": base["mean_episode_length"]}),
          flush=True)
    for k in () if args.no_untrained else (1, args.k):
        row = held_out(task, CandidatePolicy(policy, untrained(policy, k, args.seed), args.seed), args.episodes)
        print(json.dumps({"row": f"untrained k={k}", **row}), flush=True)
        out["untrained_k1" if k == 1 else "untrained_k"] = row["success"]
    out["runs"] = {}
    for run in args.runs:
        rows = {}
        cfg, pol, _, meta = load_expo(run)
        if meta.get("base_bc"):  # the base trained on successful data, without EXPO's selection
            row = evaluate_residual(task, pol, None, args.episodes, noise_seed=args.seed)
            print(json.dumps({"row": f"{run} updated_base", "success": row["success"],
                              "mean_length": row["mean_episode_length"]}), flush=True)
            rows["updated_base"] = row["success"]
        for name in ("trained", "no_edits", "k1"):
            cfg, pol, agent, _ = load_expo(run)
            if name == "no_edits":
                agent.edit.scale = 0.0  # every edit is the base action itself: ties go to the unedited candidate
            if name == "k1":
                agent.cfg.num_candidates = 1
            row = held_out(task, CandidatePolicy(pol, agent, args.seed), args.episodes)
            print(json.dumps({"row": f"{run} {name}", **row}), flush=True)
            rows[name] = row["success"]
        out["runs"][run] = rows
    print(json.dumps(out))


if __name__ == "__main__":
    main()
