"""Time to hover: train ``crazyflie-hover`` per seed until the first policy that passes the bar.

Wall time counts training only (collection + updates); the periodic evaluations that detect the pass are
timed separately. Last line: one JSON object (see ``benchmarks/README.md``).

    python benchmarks/time_to_hover.py --seeds 0,1,2,3,4 [--device cpu] [--max-env-steps N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from robot_rl import presets  # noqa: F401
from robot_rl.config import get_preset
from robot_rl.runs import make_runner
from sim.quadrotor.evaluation import evaluate, passes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="crazyflie-hover")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-env-steps", type=int, default=0, help="override the preset's step budget")
    ap.add_argument("--eval-every", type=int, default=0, help="override the preset's evaluation interval")
    args = ap.parse_args()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        cfg = get_preset(args.preset)
        cfg.seed, cfg.device, cfg.stop_when_passed = seed, args.device, True
        cfg.eval_every = args.eval_every or cfg.eval_every or 20_000
        if args.max_env_steps:
            cfg.off_policy.total_env_steps = cfg.on_policy.total_env_steps = args.max_env_steps
            cfg.off_policy.buffer_capacity = max(cfg.off_policy.buffer_capacity, args.max_env_steps)
        with tempfile.TemporaryDirectory() as tmp:
            runner = make_runner(cfg, Path(tmp))
            out = runner.train()
            # the bar is judged by the full protocol (256 episodes), like `robot-rl eval`
            full = evaluate(runner.policy_fn(), cfg.task, cfg.evaluation.episodes, cfg.evaluation.settle_radius)
        fp = out["first_pass"]
        ok = fp is not None and passes(full, cfg.evaluation)
        row = {"seed": seed, "passed": ok, "time_to_hover_s": fp["train_time_s"] if fp else None,
               "env_steps": fp["env_steps"] if fp else out["env_steps"], "survival": full["survival"],
               "settle": full["settle"], "median_final_error_m": full["median_final_error_m"],
               "train_time_s": out["train_time_s"], "eval_time_s": out["eval_time_s"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    passed = [r for r in rows if r["passed"]]
    print(f"{'seed':>4} {'passed':>6} {'time_s':>8} {'env_steps':>10} {'survival':>8} {'settle':>7} {'eval_s':>7}")
    for r in rows:
        t = f"{r['time_to_hover_s']:.1f}" if r["time_to_hover_s"] is not None else "-"
        print(f"{r['seed']:>4} {str(r['passed']):>6} {t:>8} {r['env_steps']:>10} {r['survival']:>8.1%} "
              f"{r['settle']:>7.1%} {r['eval_time_s']:>7.1f}")

    def med(key: str) -> float | None:
        return statistics.median(r[key] for r in passed) if passed else None

    print(json.dumps({"preset": args.preset, "device": args.device, "seeds": [r["seed"] for r in rows],
                      "passed": len(passed), "median_time_to_hover_s": med("time_to_hover_s"),
                      "median_env_steps": med("env_steps"), "median_settle": med("settle")}))


if __name__ == "__main__":
    main()
