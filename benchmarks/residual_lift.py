"""Residual RL lift on an arm task: frozen diffusion base vs base + ResiP, + EXPO and + value-guided re-ranking.

For each seed: the scripted expert writes ``--demos`` successful episodes (action noise 0.1, clean labels, as
``benchmarks/bc_success.py``), the ``dp-<task>`` preset trains the base (``--bc-steps`` optimiser steps; or
``--base-runs`` loads them), ResiP trains a residual on it for ``--resip-steps`` env steps, EXPO
(:func:`robot_rl.residual.expo.lift`) trains until its in-training evaluation reaches ``--expo-target`` (default:
ResiP's held-out success, "EXPO to the same success"; ``--expo '{"passes_in_a_row": 2}'``: two evaluations in a
row, and ResiP's env steps to that target are read by the same rule) or ``--expo-steps`` run out
(``--continue-expo``: the EXPO runs already in ``--out`` go on from their checkpoints), and re-ranking
(:func:`robot_rl.commands.vgps.lift`) fits a value on base rollouts + demonstrations (or with
``--rerank '{"value": "branched"}'`` on branched base rollouts). Every policy runs the same
``--episodes`` held-out episodes of the task's evaluation protocol (seed 1000003, one episode per env, chunks on
the runtime's synchronous schedule, the same base noise). Robustness (``--sweep-episodes``, 0: none): the same
held-out episodes with object mass x0.8 / x1.2, object friction x0.8 / x1.2 and +10 ms action latency
(:mod:`sim.arm.robustness`: episode i of a row is episode i of the nominal evaluation with one parameter off).
``--resip '{"keep_best": true, "eval_every": 40000, "eval_episodes": 100}'``: ResiP's figure is the actor of its best
in-training evaluation (selection episodes), confirmed on the held-out ones (``resip_kept`` in the row says
which). ``--skip expo,rerank`` leaves methods out (their figures null). Times are CPU wall seconds with one torch
thread.

    PYTHONPATH=. python benchmarks/residual_lift.py --task panda-peg-insert [--seeds 0,1,2] [--episodes 200]
    PYTHONPATH=. python benchmarks/residual_lift.py --combine s0.log s1.log s2.log  # seeds or methods run apart

Last line: {"task", "base_success", "resip_success", "expo_success", "rerank_success", "resip_env_steps",
"expo_env_steps"} (means over seeds) + per-seed rows (with each method's ``robustness`` rows).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_rl.commands import vgps
from robot_rl.data import write_dataset
from robot_rl.data.collect import collect_demos
from robot_rl.logging import read_metrics
from robot_rl.policies.presets import ARM_TASKS, bc_preset
from robot_rl.residual import expo as expo_method
from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.resip import ResidualExecutor, ResiPConfig
from robot_rl.runners.bc import BCRunner, load_policy
from robot_rl.runners.resip import ResiPRunner, evaluate_residual, task_config
from sim.arm.robustness import ArmEvalConfig, sweep_cases
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


#: Robustness rows (parameters of :func:`sim.arm.robustness.sweep_cases`): the nominal task (the reference of the
#: rows, on the sweep's episode count) and the parameters the issue asks for.
ROBUSTNESS = ("nominal", "object_mass", "object_friction", "action_latency")


def robustness(task: str, make_policy: Callable[[], Any], episodes: int) -> dict[str, float]:
    """Success of a fresh ``make_policy()`` on the held-out episodes in every :data:`ROBUSTNESS` row
    (``"nominal"``, ``"object_mass ×0.8"``, ..., ``"action_latency +10 ms"``); the same episodes and base noise
    in each (with the wrist force/torque sensor where the policy reads its ``wrench`` group)."""
    spec = get_task(task)
    ecfg = spec.evaluation.config_cls()
    out = {}
    policy = make_policy()  # the first row's; its groups say whether the scene needs the wrist sensor
    wrench = "wrench" in getattr(policy, "obs_groups", ())
    for row, case_cfg in sweep_cases(task_config(task, wrench), ArmEvalConfig(sweep_episodes=episodes)):
        if row["parameter"] in ROBUSTNESS:
            policy = policy if policy is not None else make_policy()
            res = spec.evaluate(policy, case_cfg, ecfg, episodes)
            policy = None
            name = row["parameter"] if row["parameter"] == "nominal" else f"{row['parameter']} {row['setting']}"
            out[name] = res["success"]
    return out


def residual_policy(policy: Any, actor: Any, episodes: int, seed: int) -> Callable[[], ResidualExecutor]:
    """Fresh evaluation policies of base ``policy`` + ``actor`` (None: the base) over ``episodes`` envs, base noise
    from ``seed`` (:func:`robot_rl.runners.resip.evaluate_residual`'s)."""
    return lambda: ResidualExecutor(FrozenChunkBase(policy, episodes, seed), actor)


def steps_to(curve: list[tuple[int, float]], target: float, in_a_row: int = 1) -> int | None:
    """Env-step count of ``curve`` (``(env_steps, success)`` in training order) at the first evaluation that
    closes ``in_a_row`` evaluations at or above ``target`` in a row (EXPO's stop rule, ``passes_in_a_row``)."""
    run = 0
    for steps, success in curve:
        run = run + 1 if success >= target else 0
        if run >= in_a_row:
            return steps
    return None


def eval_curve(run_dir: Path) -> list[tuple[int, float]]:
    """``(env_steps, eval_success)`` of a ResiP or EXPO run's in-training evaluations (selection seed)."""
    m = read_metrics(run_dir)
    return [(int(s), v) for s, v in zip(m.get("env_steps", []), m.get("eval_success", []), strict=True)
            if not math.isnan(v)]


def summary(task: str, episodes: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The last line: the issue's keys as means over the seeds' ``rows`` (None where a method has no figure for
    some seed), the seeds, the episode count and the rows themselves."""
    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows]
        return None if any(v is None for v in vals) else float(np.mean(vals))

    return {"task": task, **{k: mean(k) for k in ("base_success", "resip_success", "expo_success",
                                                  "rerank_success", "resip_env_steps", "expo_env_steps")},
            "seeds": [r["seed"] for r in rows], "episodes": episodes, "per_seed": rows}


METHODS = ("resip", "expo", "rerank")


def merge_rows(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One seed's row from two runs that measured different methods on the same base (``--base-runs``, ``--skip``):
    the base figure must agree and no method may have a figure in both."""
    if a["base_success"] != b["base_success"]:
        raise SystemExit(f"--combine: seed {a['seed']} has base success {a['base_success']} in one log and "
                         f"{b['base_success']} in another: not the same base")
    both = [m for m in METHODS if a.get(f"{m}_success") is not None and b.get(f"{m}_success") is not None]
    if both:
        raise SystemExit(f"--combine: seed {a['seed']} has a {both[0]} figure in two logs")
    row = a | {k: v for k, v in b.items() if v is not None and a.get(k) is None}
    row["robustness"] = a.get("robustness", {}) | b.get("robustness", {})
    if "resip_curve" in row and row.get("expo_target") is not None:
        row["resip_env_steps_to_expo_target"] = steps_to(row["resip_curve"], row["expo_target"],
                                                         row.get("expo_passes_in_a_row", 1))
    return row


def combine(logs: list[Path]) -> dict[str, Any]:
    """One summary over earlier runs of this script (one seed per process, say): each log's last line is its
    summary; the task and episode count must agree, and a seed in several logs must have the same base and each
    method in one of them only (:func:`merge_rows`)."""
    lines = []
    for log in logs:
        text = log.read_text().strip().splitlines() if log.is_file() else []
        try:
            lines.append(json.loads(text[-1]) if text else None)
        except json.JSONDecodeError:
            lines.append(None)
        if not isinstance(lines[-1], dict) or "per_seed" not in lines[-1]:
            raise SystemExit(f"--combine: {log} does not end with this script's summary line")
    for key in ("task", "episodes"):
        if len({line[key] for line in lines}) != 1:
            raise SystemExit(f"--combine: the logs disagree on {key}: {sorted({str(line[key]) for line in lines})}")
    rows: dict[int, dict[str, Any]] = {}
    for row in (row for line in lines for row in line["per_seed"]):
        rows[row["seed"]] = merge_rows(rows[row["seed"]], row) if row["seed"] in rows else row
    return summary(lines[0]["task"], lines[0]["episodes"], [rows[s] for s in sorted(rows)])


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
    ap.add_argument("--continue-expo", action="store_true",
                    help="continue the EXPO runs already in --out (their checkpoints) up to --expo-steps; --expo "
                    "may raise passes_in_a_row (a run stopped at its target goes on to the stricter stop)")
    ap.add_argument("--expo-steps", type=int, default=40_000, help="EXPO's env-step budget")
    ap.add_argument("--expo-eval-every", type=int, default=4000, help="env steps between EXPO's selection evals")
    ap.add_argument("--expo", default="", help="extra EXPOTrainConfig fields as JSON, e.g. "
                    "'{\"updates_per_step\": 8, \"expo\": {\"num_candidates\": 4}}'")
    ap.add_argument("--expo-target", type=float, default=None,
                    help="EXPO stops at this selection-eval success (default: ResiP's held-out success)")
    ap.add_argument("--rerank-k", type=int, default=8, help="chunks re-ranked per replanning")
    ap.add_argument("--rerank-rollouts", type=int, default=200, help="base rollouts the value learns from")
    ap.add_argument("--rerank-steps", type=int, default=5000, help="value gradient steps")
    ap.add_argument("--rerank", default="", help="VGPSConfig fields as JSON (over --rerank-*), e.g. the value "
                    "from branched rollouts: '{\"value\": \"branched\", \"branched\": {\"episodes\": 96}}'")
    ap.add_argument("--sweep-episodes", type=int, default=0,
                    help="episodes per robustness row (0: no robustness rows; they reuse the held-out seed)")
    ap.add_argument("--skip", default="", help="comma-separated methods to leave out: resip, expo, rerank "
                    "(base: no robustness rows for the base)")
    ap.add_argument("--combine", nargs="+", type=Path, default=None, metavar="LOG",
                    help="print one summary over earlier runs' output (one seed per process, or one seed's methods "
                    "run apart on the same --base-runs) and exit")
    args = ap.parse_args()
    if args.combine:
        print(json.dumps(combine(args.combine), ensure_ascii=False))
        return
    skip = {m for m in args.skip.split(",") if m}
    if unknown := skip - {"base", *METHODS}:
        ap.error(f"--skip: unknown methods {sorted(unknown)}")
    if "resip" in skip and "expo" not in skip and args.expo_target is None:
        ap.error("--skip resip: EXPO's target defaults to ResiP's success; give --expo-target")
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
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
        row = {"seed": seed, "base_success": base["success"], "bc_train_wall_s": None if bc_wall is None else
               round(bc_wall, 1), "eval_wall_s": round(eval_wall, 1), "episodes": args.episodes,
               "eval_seed": base["seed"], "resip_success": None, "resip_env_steps": None}
        row["robustness"] = {}

        def sweep(name: str, make_policy: Callable[[], Any], row: dict = row) -> None:
            if args.sweep_episodes:
                t0 = time.perf_counter()
                row["robustness"][name] = robustness(args.task, make_policy, args.sweep_episodes)
                print(json.dumps({"robustness": name, **row["robustness"][name],
                                  "wall_s": round(time.perf_counter() - t0, 1)}, ensure_ascii=False), flush=True)

        print(json.dumps({"seed": seed, "base_success": base["success"], "eval_wall_s": row["eval_wall_s"]}),
              flush=True)
        if "base" not in skip:
            sweep("base", residual_policy(policy, None, args.sweep_episodes, seed))
        if "resip" not in skip:
            cfg = ResiPConfig(base=str(base_run), task=args.task, seed=seed, total_env_steps=args.resip_steps,
                              checkpoint_every=0, **(json.loads(args.resip) if args.resip else {}))
            runner = ResiPRunner(cfg, root / f"resip-seed{seed}")
            if args.continue_resip:
                runner.load(root / f"resip-seed{seed}" / "checkpoint")
            runner.train()
            actor = runner.kept_actor()  # with keep_best: the best selection evaluation's, confirmed held out here
            res = evaluate_residual(args.task, policy, actor, args.episodes, noise_seed=seed)
            curve = eval_curve(root / f"resip-seed{seed}")
            row |= {"resip_success": res["success"], "resip_env_steps": runner.env_steps,
                    "resip_train_wall_s": round(runner.train_time, 1),  # training iterations only
                    "resip_kept": runner.best, "resip_curve": curve}
            print(json.dumps({k: row[k] for k in ("resip_success", "resip_env_steps", "resip_train_wall_s",
                                                  "resip_kept")}), flush=True)
            sweep("resip", residual_policy(policy, actor, args.sweep_episodes, seed))
        if "expo" not in skip:
            target = args.expo_target if args.expo_target is not None else row["resip_success"] or 0.95
            expo_fields = json.loads(args.expo) if args.expo else {}
            expo = expo_method.lift(args.task, base_run, args.episodes, seed, root / f"expo-seed{seed}",
                                    env_steps=args.expo_steps, target_success=target,
                                    eval_every=args.expo_eval_every, resume=args.continue_expo, **expo_fields)
            make_expo = expo.pop("make_policy")
            in_a_row = expo_fields.get("passes_in_a_row", 1)
            row |= {"expo_" + k: v for k, v in expo.items()} | {
                "expo_target": target, "expo_passes_in_a_row": in_a_row,
                "expo_curve": eval_curve(root / f"expo-seed{seed}")}
            if "resip_curve" in row:
                row["resip_env_steps_to_expo_target"] = steps_to(row["resip_curve"], target, in_a_row)
            print(json.dumps({k: v for k, v in row.items() if k.startswith("expo")}), flush=True)
            sweep("expo", make_expo)
        if "rerank" not in skip:
            fields = {"k": args.rerank_k, "rollout_episodes": args.rerank_rollouts, "steps": args.rerank_steps}
            rerank = vgps.lift(args.task, base_run, args.episodes, seed, root / f"rerank-seed{seed}",
                               **fields | (json.loads(args.rerank) if args.rerank else {}))
            make_rerank = rerank.pop("make_policy")
            row |= {"rerank_" + k: v for k, v in rerank.items() if k != "env_steps"}
            print(json.dumps({k: v for k, v in row.items() if k.startswith("rerank")}), flush=True)
            sweep("rerank", make_rerank)
        row["load_average"] = round(os.getloadavg()[0], 2)
        row.setdefault("expo_success", None)
        row.setdefault("expo_env_steps", None)
        row.setdefault("rerank_success", None)
        print(json.dumps(row, ensure_ascii=False), flush=True)
        rows.append(row)

    print(json.dumps(summary(args.task, args.episodes, rows), ensure_ascii=False))


if __name__ == "__main__":
    main()
