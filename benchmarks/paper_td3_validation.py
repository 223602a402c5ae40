"""The L2F paper's validation criteria for trained runs (e.g. ``paper-td3``).

The paper validates on 10 episodes and reports the share that crash and the share that survive and end within
0.2 m of the target (RLtools' ``SettlingFractionPosition<200>``). This flies the run's actor over the 256 episodes
of ``robot-rl eval`` (same seed, initial states, noise and disturbances) and reports our figures (survival, settle
within 0.1 m, median final error), the paper's (within 0.2 m), and how the paper's two figures spread over the
25 consecutive groups of 10 episodes (what one 10-episode validation can show).

    PYTHONPATH=$PWD python benchmarks/paper_td3_validation.py runs/paper-td3/seed0 [more run dirs]
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from robot_rl.runs import load_actor
from sim.quadrotor.evaluation import evaluate


def validate(run_dir: str, episodes: int = 256) -> dict:
    cfg, actor, meta = load_actor(run_dir)
    torch.set_num_threads(1)
    r = evaluate(actor, cfg.task, episodes, cfg.evaluation.settle_radius)
    errs = r["final_errors_m"]
    groups = [errs[i:i + 10] for i in range(0, len(errs) - len(errs) % 10, 10)]
    crash = sorted(sum(e is None for e in g) / 10 for g in groups)
    within = sorted(sum(e is not None and e < 0.2 for e in g) / 10 for g in groups)

    def spread(x: list[float]) -> dict:
        return {"min": x[0], "median": statistics.median(x), "max": x[-1]}

    return {"run": run_dir, "seed": cfg.seed, "env_steps": meta["env_steps"],
            "train_time_s": round(meta["train_time_s"], 1), "survival": r["survival"], "settle_0p1m": r["settle"],
            "within_0p2m": r["within_0p2m"], "median_final_error_m": round(r["median_final_error_m"], 4),
            "episodes": episodes, "crash_per_10": spread(crash), "within_0p2m_per_10": spread(within)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--episodes", type=int, default=256)
    args = ap.parse_args()
    for run in args.runs:
        print(json.dumps(validate(run, args.episodes)))


if __name__ == "__main__":
    main()
