"""Time to hover: train ``crazyflie-hover`` per seed until the first policy that passes the bar.

The in-training evaluations that choose the stop fly ``evaluation.selection_seed``'s episodes (a preset with
``passes_in_a_row`` = k stops at the k-th passing evaluation in a row, and the time is taken there); the chosen policy
is then confirmed on the held-out ``evaluation.seed`` episodes (those of ``robot-rl eval``), and a seed counts as
passed only if that held-out evaluation passes. Both figures are reported. With ``--keep-best`` (or a preset with
``keep_best``) a seed whose evaluations never pass is confirmed on the actor of its best evaluation rather than
its last iterate. Wall time counts training only (collection + updates); the evaluations are timed separately.
Last line: one JSON object (see ``benchmarks/README.md``).

    python benchmarks/time_to_hover.py --seeds 0,1,2,3,4 [--device cpu] [--max-env-steps N] [--keep-best] \
        [--actor-average-halflife H] [-- --sac.explicit ...]

Arguments after ``--`` override the preset's config as ``robot-rl train``'s do (``--sac.gamma 0.98``); the
summary line then lists them under ``overrides``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
from pathlib import Path

import tyro

from robot_rl import presets  # noqa: F401
from robot_rl.commands.train import _as
from robot_rl.config import TrainConfig, cli_class, get_preset
from robot_rl.runs import make_runner
from sim.quadrotor.evaluation import evaluate, passes


def preset_with_overrides(name: str, overrides: list[str]) -> TrainConfig:
    """The preset's config with ``robot-rl train``-style overrides applied (none: the preset as registered)."""
    default = get_preset(name)
    if not overrides:
        return default
    typed = cli_class(default)
    return _as(TrainConfig, tyro.cli(typed, default=_as(typed, default), args=overrides)).check()


def main() -> None:
    argv = sys.argv[1:]
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="crazyflie-hover")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-env-steps", type=int, default=0, help="override the preset's step budget")
    ap.add_argument("--eval-every", type=int, default=0, help="override the preset's evaluation interval")
    ap.add_argument("--keep-best", action="store_true",
                    help="without a pass, confirm the actor of the best in-training evaluation (else the last)")
    ap.add_argument("--actor-average-halflife", type=int, default=None,
                    help="override the preset's actor_average_halflife (env steps; 0: off): the weight average is "
                         "the evaluated, kept and confirmed actor")
    args = ap.parse_args(argv)
    base = preset_with_overrides(args.preset, overrides)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        cfg = copy.deepcopy(base)
        cfg.seed, cfg.device, cfg.stop_when_passed = seed, args.device, True
        cfg.keep_best = cfg.keep_best or args.keep_best
        cfg.eval_every = args.eval_every or cfg.eval_every or 20_000
        if args.actor_average_halflife is not None:
            cfg.actor_average_halflife = args.actor_average_halflife
        if args.max_env_steps:
            cfg.off_policy.total_env_steps = cfg.on_policy.total_env_steps = args.max_env_steps
            cfg.off_policy.buffer_capacity = max(cfg.off_policy.buffer_capacity, args.max_env_steps)
        with tempfile.TemporaryDirectory() as tmp:
            runner = make_runner(cfg, Path(tmp))
            out = runner.train()
            # confirmation: the full protocol of `robot-rl eval` on episodes that did not choose the stop
            ecfg = cfg.evaluation
            held = evaluate(runner.policy_fn(best=True), cfg.task, ecfg.episodes, ecfg.settle_radius, seed=ecfg.seed)
        fp = out["first_pass"]
        ok = fp is not None and passes(held, ecfg)
        row = {"seed": seed, "passed": ok, "time_to_hover_s": fp["train_time_s"] if fp else None,
               "env_steps": fp["env_steps"] if fp else out["env_steps"],
               "selection_survival": fp["survival"] if fp else None, "selection_settle": fp["settle"] if fp else None,
               "survival": held["survival"], "settle": held["settle"],
               "median_final_error_m": held["median_final_error_m"],
               "confirmed_env_steps": out["best"]["env_steps"] if out["best"] else out["env_steps"],
               "train_time_s": out["train_time_s"], "eval_time_s": out["eval_time_s"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    passed = [r for r in rows if r["passed"]]
    print(f"selection: {cfg.eval_episodes_during_training} episodes, seed {cfg.evaluation.selection_seed}; held out: "
          f"{cfg.evaluation.episodes} episodes, seed {cfg.evaluation.seed}")
    print(f"{'seed':>4} {'passed':>6} {'time_s':>8} {'env_steps':>10} {'sel_surv':>8} {'sel_set':>7} "
          f"{'survival':>8} {'settle':>7} {'err_cm':>6} {'eval_s':>7}")

    def pct(x: float | None) -> str:
        return f"{x:.1%}" if x is not None else "-"

    for r in rows:
        t = f"{r['time_to_hover_s']:.1f}" if r["time_to_hover_s"] is not None else "-"
        print(f"{r['seed']:>4} {str(r['passed']):>6} {t:>8} {r['env_steps']:>10} {pct(r['selection_survival']):>8} "
              f"{pct(r['selection_settle']):>7} {r['survival']:>8.1%} {r['settle']:>7.1%} "
              f"{r['median_final_error_m'] * 100:>6.1f} {r['eval_time_s']:>7.1f}")

    def med(key: str) -> float | None:
        return statistics.median(r[key] for r in passed) if passed else None

    print(json.dumps({"preset": args.preset, "overrides": overrides, "device": args.device,
                      "seeds": [r["seed"] for r in rows],
                      "passed": len(passed), "selection_passed": sum(r["selection_settle"] is not None for r in rows),
                      "median_time_to_hover_s": med("time_to_hover_s"), "median_env_steps": med("env_steps"),
                      "median_selection_settle": med("selection_settle"), "median_settle": med("settle"),
                      "selection_seed": cfg.evaluation.selection_seed, "heldout_seed": cfg.evaluation.seed}))


if __name__ == "__main__":
    main()
