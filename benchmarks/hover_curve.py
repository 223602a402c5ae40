"""Learning curve of a hover preset with every in-training evaluation also confirmed on held-out episodes.

Trains ``PRESET`` with ``robot-rl train``'s overrides; at each in-training evaluation (the selection episodes,
``evaluation.selection_seed``) it also flies the held-out episodes (``evaluation.seed``, those of ``robot-rl
eval``) with the same actor, so the curve shows how far a policy chosen on the selection episodes holds up, and
what keeping the best evaluation (``keep_best``'s rule) or the last iterate would give. One JSON line per
evaluation, then a table and a JSON summary line. Each evaluated actor is saved as ``RUN/actors/<env_steps>.pt``
(a state dict), so another selection rule can be applied to the same run afterwards
(``benchmarks/reselect_hover.py``). With ``--actor-average-halflife H`` the evaluated (and saved) actor is the weight
average; each evaluation then also flies the learning actor on the same selection episodes (``raw_sel_*``, a
diagnostic that chooses nothing) and saves it as ``RUN/actors_raw/<env_steps>.pt``: the run without the average is
the same run (training does not depend on it), so both are read from one run.

    PYTHONPATH=$PWD NUMBA_NUM_THREADS=1 python benchmarks/hover_curve.py crazyflie-hover-sac --seed 0 \\
        --curriculum.every 12500 [--out RUN]
    PYTHONPATH=$PWD NUMBA_NUM_THREADS=1 python benchmarks/hover_curve.py --resume RUN [overrides]  # continue RUN
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
import tyro

from robot_rl.commands.train import _as
from robot_rl.config import TrainConfig, cli_class, get_training_config
from robot_rl.runs import load_config, make_runner
from sim.quadrotor.evaluation import evaluate, passes


def best_index(rows: list[dict], bar) -> int:
    """``keep_best``'s choice among the rows: passing the bar first, then the highest lowest rate, then the highest
    sum of the rates, the earliest."""
    keys = [(passes({"survival": r["sel_survival"], "settle": r["sel_settle"]}, bar),
             min(r["sel_survival"], r["sel_settle"]), r["sel_survival"] + r["sel_settle"]) for r in rows]
    return keys.index(max(keys))


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        raise SystemExit(__doc__)
    resume = Path(sys.argv[2]) if sys.argv[1] == "--resume" and len(sys.argv) > 2 else None
    name = load_config(resume).preset if resume else sys.argv[1]
    default = load_config(resume) if resume else get_training_config(name)
    typed = cli_class(default)
    args = sys.argv[3:] if resume else sys.argv[2:]
    cfg = _as(TrainConfig, tyro.cli(typed, default=_as(typed, default), args=args)).check()
    cfg.preset, cfg.eval_every = name, cfg.eval_every or 20_000
    ecfg = cfg.evaluation
    run_dir = resume or Path(cfg.out or tempfile.mkdtemp(prefix="hover_curve_"))
    runner = make_runner(cfg, run_dir)
    if resume:
        runner.load(run_dir / "checkpoint")
    (run_dir / "actors").mkdir(parents=True, exist_ok=True)
    averaged = cfg.actor_average_halflife > 0
    if averaged:
        (run_dir / "actors_raw").mkdir(exist_ok=True)
    rows: list[dict] = []
    select = runner.evaluate_now

    def evaluate_both(episodes: int) -> dict:
        r = select(episodes)
        held = evaluate(runner.policy_fn(), cfg.task, ecfg.episodes, ecfg.settle_radius, seed=ecfg.seed)
        torch.save(runner.policy_actor.state_dict(), run_dir / "actors" / f"{runner.env_steps}.pt")
        rows.append({"env_steps": runner.env_steps, "train_time_s": round(runner.train_time, 1),
                     "sel_survival": r["survival"], "sel_settle": r["settle"],
                     "survival": held["survival"], "settle": held["settle"],
                     "median_final_error_m": held["median_final_error_m"]})
        if averaged:  # the learning actor on the same selection episodes: what the run without the average flies
            with torch.no_grad():
                raw = evaluate(runner.actor, cfg.task, episodes, ecfg.settle_radius, seed=ecfg.selection_seed)
            torch.save(runner.actor.state_dict(), run_dir / "actors_raw" / f"{runner.env_steps}.pt")
            rows[-1] |= {"raw_sel_survival": raw["survival"], "raw_sel_settle": raw["settle"],
                         "raw_sel_median_final_error_m": raw["median_final_error_m"]}
        print(json.dumps(rows[-1]), flush=True)
        return r

    runner.evaluate_now = evaluate_both
    out = runner.train()
    print(f"{'steps':>8} {'sel_surv':>8} {'sel_set':>7} {'survival':>8} {'settle':>7} {'err_cm':>6}")
    for r in rows:
        print(f"{r['env_steps']:>8} {r['sel_survival']:>8.1%} {r['sel_settle']:>7.1%} {r['survival']:>8.1%} "
              f"{r['settle']:>7.1%} {r['median_final_error_m'] * 100:>6.1f}")
    best = rows[best_index(rows, ecfg)] if rows else None
    print(json.dumps({"preset": name, "seed": cfg.seed, "train_time_s": out["train_time_s"],
                      "final": rows[-1] if rows else None, "best": best,
                      "best_passes_heldout": bool(best) and passes(best, ecfg)}))


if __name__ == "__main__":
    main()
