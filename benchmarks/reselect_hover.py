"""Apply a selection rule to the saved actors of ``hover_curve.py`` runs, then confirm its choice held out.

``hover_curve.py --out RUN`` saves the actor of every in-training evaluation (``RUN/actors/<env_steps>.pt``).
This flies each of them, in order, on ``--episodes`` selection episodes (``evaluation.selection_seed``, the
episodes of the in-training evaluations; never the held-out seed) until ``--in-a-row`` pass the bar in a row (where
``stop_when_passed`` with ``eval_episodes_during_training = --episodes`` and ``passes_in_a_row = --in-a-row``
would have stopped), takes ``keep_best``'s choice among those flown (the best passing one; without a pass the best
one) and flies that one on the held-out protocol (``evaluation.episodes`` on
``evaluation.seed``, as ``robot-rl eval``). Training is not affected by its evaluations, so this is the run that
rule would have produced, and the time to hover is the run's training time at that evaluation (``metrics.csv``).
One JSON line per run, then a table and a JSON summary line.

    PYTHONPATH=$PWD python benchmarks/reselect_hover.py runs/s2 runs/s4 --episodes 1024 [--in-a-row 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

import torch

from robot_rl.runs import build_actor, load_config
from sim.quadrotor.evaluation import evaluate, passes


def eval_times(run_dir: Path) -> dict[int, float]:
    """Training time (s) at each in-training evaluation of a run, from its ``metrics.csv``."""
    with (run_dir / "metrics.csv").open() as f:
        return {int(float(r["env_steps"])): float(r["train_time_s"]) for r in csv.DictReader(f)
                if r.get("eval_survival")}


def reselect(run_dir: Path, episodes: int, from_steps: int = 0, in_a_row: int = 1) -> dict:
    """Fly ``run_dir``'s saved actors (at or after ``from_steps``) on ``episodes`` selection episodes until
    ``in_a_row`` pass in a row (``passes_in_a_row``'s stop), and confirm ``keep_best``'s choice among those flown
    (the best passing one; without a pass the best one) held out."""
    cfg = load_config(run_dir)
    ecfg = cfg.evaluation
    saved = sorted((int(p.stem), p) for p in (run_dir / "actors").glob("*.pt") if int(p.stem) >= from_steps)
    if not saved:
        raise FileNotFoundError(f"{run_dir}/actors holds no saved actors (run hover_curve.py with --out)")
    actor = build_actor(cfg).eval()  # the policy: evaluate() flies it without gradients
    times = eval_times(run_dir)
    tried, best, best_key, streak, stop = [], None, None, 0, None
    for steps, path in saved:
        actor.load_state_dict(torch.load(path, weights_only=True))
        r = evaluate(actor, cfg.task, episodes, ecfg.settle_radius, seed=ecfg.selection_seed)
        ok = passes(r, ecfg)
        tried.append({"env_steps": steps, "sel_survival": r["survival"], "sel_settle": r["settle"]})
        print(json.dumps({"run": str(run_dir), **tried[-1]}), flush=True)
        key = (ok, min(r["survival"], r["settle"]), r["survival"] + r["settle"])
        if best_key is None or key > best_key:  # strictly better: the earliest on ties, as keep_best
            best, best_key = (steps, path, r), key
        streak = streak + 1 if ok else 0
        if streak >= in_a_row:
            stop = steps
            break
    steps, path, r = best
    actor.load_state_dict(torch.load(path, weights_only=True))
    held = evaluate(actor, cfg.task, ecfg.episodes, ecfg.settle_radius, seed=ecfg.seed)
    sel_ok = stop is not None
    return {"run": str(run_dir), "seed": cfg.seed, "selection_episodes": episodes, "in_a_row": in_a_row,
            "selection_passed": sel_ok, "passed": sel_ok and passes(held, ecfg), "env_steps": steps,
            "stop_env_steps": stop, "time_to_hover_s": times.get(stop) if sel_ok else None,
            "selection_survival": r["survival"], "selection_settle": r["settle"],
            "survival": held["survival"], "settle": held["settle"],
            "median_final_error_m": held["median_final_error_m"], "evaluations": tried}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--episodes", type=int, default=1024, help="selection episodes per evaluation")
    ap.add_argument("--from-steps", type=int, default=0, help="skip saved actors before this many env steps")
    ap.add_argument("--in-a-row", type=int, default=1, help="passing evaluations in a row that stop (passes_in_a_row)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for run in args.runs:
        row = reselect(run, args.episodes, args.from_steps, args.in_a_row)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "evaluations"}), flush=True)
    print(f"{'seed':>4} {'passed':>6} {'steps':>7} {'time_s':>7} {'sel_surv':>8} {'sel_set':>7} {'survival':>8} "
          f"{'settle':>7} {'err_cm':>6}")
    for r in rows:
        t = f"{r['time_to_hover_s']:.1f}" if r["time_to_hover_s"] is not None else "-"
        print(f"{r['seed']:>4} {str(r['passed']):>6} {r['env_steps']:>7} {t:>7} {r['selection_survival']:>8.1%} "
              f"{r['selection_settle']:>7.1%} {r['survival']:>8.1%} {r['settle']:>7.1%} "
              f"{r['median_final_error_m'] * 100:>6.1f}")
    passed = [r for r in rows if r["passed"]]
    print(json.dumps({"runs": [str(r["run"]) for r in rows], "seeds": [r["seed"] for r in rows],
                      "selection_episodes": args.episodes, "in_a_row": args.in_a_row, "passed": len(passed),
                      "median_time_to_hover_s": statistics.median(r["time_to_hover_s"] for r in passed)
                      if passed else None}))


if __name__ == "__main__":
    main()
