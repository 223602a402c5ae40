"""Robustness sweep of the Panda tasks in MuJoCo and PyBullet: object mass/friction and servo gains x0.8/x1.2,
+10 ms action latency (:mod:`sim.arm.robustness`), on the held-out evaluation seed.

1. The scripted expert of each ``--tasks`` task (action noise 0.1, as in the demonstrations): ``--episodes``
   episodes per row and backend, one per env, the same initial states in every row (the success protocol's).
2. ``--dp-run RUN`` (a ``dp-panda-pick-cube`` run): ``robot-rl eval RUN --sim mujoco pybullet --episodes N
   --sweep-episodes N`` (exported ONNX sampler, a sampler reset per row).

    PYTHONPATH=. NUMBA_NUM_THREADS=1 python benchmarks/arm_robustness.py [--dp-run RUN] [--episodes 50]

Last line: ``{"expert": {task: {backend: {row: success}}}, "dp": {backend: {row: success}} | null}``, rows named
``nominal``, ``object_mass ×0.8``, ..., ``action_latency +10 ms``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robot_rl.commands.bc import run_bc_eval  # noqa: E402
from sim.arm.robustness import ArmEvalConfig, sweep_cases  # noqa: E402
from sim.registry import EVAL_SEED, get_task  # noqa: E402

BACKENDS = ("mujoco", "pybullet")


def label(row: dict) -> str:
    return row["parameter"] if row["parameter"] == "nominal" else f"{row['parameter']} {row['setting']}"


def expert_first_episodes(task: str, task_cfg, impl: str, episodes: int, seed: int = EVAL_SEED) -> dict:
    """Success and mean length of the first episode of each of ``episodes`` envs under the scripted expert."""
    spec = get_task(task)
    env = spec.make_env(replace(task_cfg, num_envs=episodes), seed=seed, impl=impl)
    env.reset(seed)
    expert = spec.expert(env, seed=seed + 1, action_noise=0.1)
    done = np.zeros(episodes, dtype=bool)
    success, length = np.zeros(episodes, dtype=bool), np.zeros(episodes, dtype=np.int64)
    while not done.all():
        _, executed = expert.act()
        *_, info = env.step(torch.from_numpy(executed))
        length += ~done
        ended = info["done_mask"].numpy() & ~done
        success |= ended & info["success"].numpy()
        done |= ended
        expert.reset(info["done_mask"].numpy())
    env.close()
    return {"success": float(success.mean()), "mean_length": float(length.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["panda-pick-cube"])
    ap.add_argument("--episodes", type=int, default=50, help="episodes per row and backend")
    ap.add_argument("--dp-run", type=Path, default=None, help="also sweep this behaviour-cloning run")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; seed {EVAL_SEED}", flush=True)
    out: dict = {"expert": {}, "dp": None, "episodes": args.episodes}
    for task in args.tasks:
        spec = get_task(task)
        out["expert"][task] = {}
        for impl in BACKENDS:
            t0, rows = time.perf_counter(), {}
            for row, case_cfg in sweep_cases(spec.config_cls(), ArmEvalConfig(sweep_episodes=args.episodes)):
                r = expert_first_episodes(task, case_cfg, impl, args.episodes)
                rows[label(row)] = r["success"]
                print(f"  {task} expert {impl:8s} {label(row):26s} {r['success']:6.1%} ({r['mean_length']:.0f} "
                      "steps)", flush=True)
            out["expert"][task][impl] = rows
            print(f"  {task} {impl}: {time.perf_counter() - t0:.0f} s", flush=True)
    if args.dp_run is not None:
        t0 = time.perf_counter()
        s = run_bc_eval(args.dp_run, args.episodes, video_episodes=0, sims=BACKENDS, sweep_episodes=args.episodes)
        out["dp"] = {k: {label(r): r["success"] for r in v["robustness"]} for k, v in s["transfer"].items()}
        out["dp_run"] = str(args.dp_run)
        print(f"dp run {args.dp_run}: {time.perf_counter() - t0:.0f} s, report {s['report']}", flush=True)
    out["load_average"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
