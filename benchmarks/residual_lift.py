"""Residual RL lift on an arm task: frozen diffusion base vs base + ResiP (and EXPO / re-ranking when present).

For each seed: the scripted expert writes ``--demos`` successful episodes (action noise 0.1, clean labels, as
``benchmarks/bc_success.py``), the ``dp-<task>`` preset trains the base (or ``--base-runs`` loads them), ResiP
trains a residual on it for ``--resip-steps`` env steps, and both run the same ``--episodes`` held-out episodes
of the task's evaluation protocol (seed 1000003, one episode per env, chunks on the runtime's synchronous
schedule, the same base noise). EXPO and value-guided re-ranking run through :func:`expo_hook` /
:func:`rerank_hook` once their modules exist (``robot_rl.residual.expo``, ``robot_rl.residual.rerank``), else
their figures are null. Times are CPU wall seconds with one torch thread.

    PYTHONPATH=. python benchmarks/residual_lift.py --task panda-peg-insert [--seeds 0,1,2] [--episodes 200]

Last line: {"task", "base_success", "resip_success", "expo_success", "rerank_success", "resip_env_steps",
"expo_env_steps"} (means over seeds) + per-seed rows.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_rl.data import write_dataset
from robot_rl.data.collect import collect_demos
from robot_rl.policies.presets import ARM_TASKS, bc_preset
from robot_rl.residual.resip import ResiPConfig
from robot_rl.runners.bc import BCRunner, load_policy
from robot_rl.runners.resip import ResiPRunner, evaluate_residual
from sim.registry import get_task


def train_base(task: str, seed: int, demos: int, root: Path, steps: int | None) -> tuple[Path, float]:
    """Demonstrations + ``dp-<task>`` for ``seed``; returns the run directory and the training wall time."""
    spec = get_task(task)
    env = spec.make_env(spec.config_cls(num_envs=16))
    data, _ = collect_demos(env, spec.expert(env, seed=seed + 1, action_noise=0.1), demos, seed=seed)
    demo_dir = write_dataset(root / f"demos-seed{seed}", data, fps=round(1 / env.dt), task=task, overwrite=True)
    cfg = bc_preset(f"dp-{task}", str(demo_dir), seed=seed)
    if steps:
        cfg.steps = steps
    t0 = time.perf_counter()
    BCRunner(cfg, root / f"dp-seed{seed}").train()
    return root / f"dp-seed{seed}", time.perf_counter() - t0


def expo_hook(task: str, base_run: Path, episodes: int, seed: int, work: Path) -> dict[str, Any] | None:
    """EXPO's figures for this base: ``robot_rl.residual.expo.lift(task, base_run, episodes, seed, work)`` must
    return ``{"success", "env_steps", "train_wall_s"}`` on the same held-out episodes; None until it exists."""
    return _hook("robot_rl.residual.expo", task, base_run, episodes, seed, work)


def rerank_hook(task: str, base_run: Path, episodes: int, seed: int, work: Path) -> dict[str, Any] | None:
    """Value-guided re-ranking's figures (``robot_rl.residual.rerank.lift``, same signature and result)."""
    return _hook("robot_rl.residual.rerank", task, base_run, episodes, seed, work)


def _hook(module: str, *args: Any) -> dict[str, Any] | None:
    if importlib.util.find_spec(module) is None:
        return None
    mod = importlib.import_module(module)
    return mod.lift(*args) if hasattr(mod, "lift") else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="panda-peg-insert", choices=sorted(ARM_TASKS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--demos", type=int, default=100)
    ap.add_argument("--bc-steps", type=int, default=None, help="base optimiser steps (default: the preset's)")
    ap.add_argument("--base-runs", default=None, help="folder with dp-seed<S> runs to reuse instead of training")
    ap.add_argument("--resip-steps", type=int, default=400_000, help="ResiP env steps")
    ap.add_argument("--resip", default="", help="extra ResiPConfig fields as JSON, e.g. '{\"scale\": 0.2}'")
    ap.add_argument("--out", default=None, help="keep datasets and runs here (default: a temporary folder)")
    ap.add_argument("--continue-resip", action="store_true",
                    help="continue the ResiP runs already in --out (their checkpoints) up to --resip-steps")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = None if args.out else tempfile.TemporaryDirectory()
    root = Path(args.out or tmp.name)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        if args.base_runs:
            base_run, bc_wall = Path(args.base_runs) / f"dp-seed{seed}", None
        else:
            base_run, bc_wall = train_base(args.task, seed, args.demos, root, args.bc_steps)
        policy, _ = load_policy(base_run)
        t0 = time.perf_counter()
        base = evaluate_residual(args.task, policy, None, args.episodes, noise_seed=seed)
        eval_wall = time.perf_counter() - t0
        cfg = ResiPConfig(base=str(base_run), task=args.task, seed=seed, total_env_steps=args.resip_steps,
                          checkpoint_every=0, **(json.loads(args.resip) if args.resip else {}))
        runner = ResiPRunner(cfg, root / f"resip-seed{seed}")
        if args.continue_resip:
            runner.load(root / f"resip-seed{seed}" / "checkpoint")
        runner.train()
        resip_wall = runner.train_time  # training iterations only, summed over continued runs
        res = evaluate_residual(args.task, policy, runner.actor, args.episodes, noise_seed=seed)
        expo = expo_hook(args.task, base_run, args.episodes, seed, root / f"expo-seed{seed}")
        rerank = rerank_hook(args.task, base_run, args.episodes, seed, root / f"rerank-seed{seed}")
        row = {"seed": seed, "base_success": base["success"], "resip_success": res["success"],
               "resip_env_steps": runner.env_steps, "resip_train_wall_s": round(resip_wall, 1),
               "bc_train_wall_s": None if bc_wall is None else round(bc_wall, 1),
               "eval_wall_s": round(eval_wall, 1), "episodes": args.episodes, "eval_seed": res["seed"],
               "expo_success": expo and expo["success"], "expo_env_steps": expo and expo["env_steps"],
               "expo_train_wall_s": expo and expo["train_wall_s"], "rerank_success": rerank and rerank["success"],
               "rerank_k": rerank and rerank["k"], "rerank_value_env_steps": rerank and rerank["value_env_steps"],
               "rerank_train_wall_s": rerank and rerank["train_wall_s"]}
        print(json.dumps(row), flush=True)
        rows.append(row)

    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows]
        return None if any(v is None for v in vals) else float(np.mean(vals))

    out = {"task": args.task, **{k: mean(k) for k in ("base_success", "resip_success", "expo_success",
                                                       "rerank_success", "resip_env_steps", "expo_env_steps")},
           "seeds": [r["seed"] for r in rows], "episodes": args.episodes, "per_seed": rows}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
