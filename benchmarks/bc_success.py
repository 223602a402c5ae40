"""Behaviour cloning on an arm task: expert demonstrations -> diffusion policy and MSE-BC -> closed-loop success.

For each training seed: the scripted expert (``sim.arm.experts``, action noise 0.1, clean labels) writes
``--demos`` successful episodes as a LeRobot dataset (demonstration seed = training seed); the ``dp-<task>``
and ``mse-<task>`` presets (:mod:`robot_rl.policies.presets`) train on it; each policy then runs
``--episodes`` held-out episodes (env seeds from 1000, executed as deployment executes chunks:
:func:`robot_rl.policies.rollout.evaluate_chunked`). Success = mean over seeds.

    PYTHONPATH=. python benchmarks/bc_success.py --task panda-pick-cube [--seeds 0,1,2] [--demos 200]

Last line: {"task", "demos", "seeds", "dp_success", "mse_bc_success", "train_wall_s"} (+ per-seed figures).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robot_rl.data import write_dataset
from robot_rl.data.collect import collect_demos
from robot_rl.policies.presets import ARM_TASKS, bc_preset
from robot_rl.policies.rollout import evaluate_chunked
from robot_rl.runners.bc import BCRunner
from sim.registry import get_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="panda-pick-cube", choices=sorted(ARM_TASKS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--demos", type=int, default=200)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the preset's)")
    ap.add_argument("--out", default=None, help="keep datasets and runs here (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    spec = get_task(args.task)
    tmp = None if args.out else tempfile.TemporaryDirectory()
    root = Path(args.out or tmp.name)
    per_seed, train_wall = [], 0.0
    for seed in seeds:
        env = spec.make_env(spec.config_cls(num_envs=16))
        demos, summary = collect_demos(env, spec.expert(env, seed=seed + 1, action_noise=0.1), args.demos, seed=seed)
        demo_dir = write_dataset(root / f"demos-seed{seed}", demos, fps=round(1 / env.dt), task=args.task,
                                 overwrite=True)
        row = {"seed": seed, "expert_success": summary["successes"] / summary["attempts"]}
        for kind in ("dp", "mse"):
            cfg = bc_preset(f"{kind}-{args.task}", str(demo_dir), seed=seed)
            if args.steps:
                cfg.steps = args.steps
            runner = BCRunner(cfg, root / f"{kind}-seed{seed}")
            t0 = time.perf_counter()
            runner.train()
            row[f"{kind}_train_s"] = time.perf_counter() - t0
            train_wall += row[f"{kind}_train_s"]
            ev = evaluate_chunked(spec.make_env(spec.config_cls(num_envs=25)), runner.policy.eval(), args.episodes,
                                  seed=1000, noise_seed=seed)
            row[f"{kind}_success"] = ev["success_rate"]
            row[f"{kind}_mean_length"] = ev["mean_length"]
        per_seed.append(row)
        print(f"seed {seed}: expert {row['expert_success']:.2f}, diffusion {row['dp_success']:.2f} "
              f"({row['dp_train_s']:.0f} s), MSE-BC {row['mse_success']:.2f} ({row['mse_train_s']:.0f} s)", flush=True)
    result = {"task": args.task, "demos": args.demos, "seeds": seeds,
              "dp_success": float(np.mean([r["dp_success"] for r in per_seed])),
              "mse_bc_success": float(np.mean([r["mse_success"] for r in per_seed])),
              "train_wall_s": round(train_wall, 1), "episodes": args.episodes, "per_seed": per_seed}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
