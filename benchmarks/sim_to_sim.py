"""Sim-to-sim transfer of a crazyflie-hover export: survival and settle in our simulator, MuJoCo and PyBullet.

Flies the run's ``export/policy.onnx`` (onnxruntime, what deploys) on the held-out evaluation episodes
(``evaluation.seed``, 256 paper episodes) in each backend, with the ±10/20 % robustness sweep (mass, thrust
coefficient, motor time constant) in each, through ``robot-rl eval RUN --sim ours mujoco pybullet`` (the run's
``report_transfer.md`` gets the transfer table and ``transfer_trajectories_transfer.png``: the first 4 episodes'
position and attitude in each simulator). No retraining: the policy only ever trained in ours.
Then measures the throughput of each backend (full task steps with the hover action plus noise, 64 envs, one
thread, each in a fresh process) beside our fused numba simulator in the same run: wall steps/s and steps per
CPU-second (per core).

Without RUN_DIR it first trains one: ``robot-rl train crazyflie-hover --seed SEED --out runs/sim_to_sim/seedSEED``.

    PYTHONPATH=. python benchmarks/sim_to_sim.py [RUN_DIR] [--seed 0] [--episodes 256] [--no-sweep]

Last line: ``{"ours": {"survival", "settle", ...}, "mujoco": {...}, "pybullet": {...}, "fused": {...}, "plot"}``.
The Panda tasks' MuJoCo-vs-PyBullet figures are ``benchmarks/arm_sim_to_sim.py``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path

import numba
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robot_rl.commands.evaluate import run_eval  # noqa: E402
from sim.quadrotor import QuadrotorTaskConfig  # noqa: E402
from sim.registry import get_task  # noqa: E402

SIMS = ("ours", "mujoco", "pybullet")


def throughput(impl: str, n_envs: int = 64, seconds: float = 3.0) -> dict:
    """Full task steps per wall second and per CPU second of backend ``impl`` (one thread), measured in a fresh
    process (the evaluation's onnxruntime thread pool would otherwise count towards this process's CPU time)."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_throughput, (impl, n_envs, seconds))


def _throughput(impl: str, n_envs: int, seconds: float) -> dict:
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    env = get_task("quadrotor-hover").make_env(QuadrotorTaskConfig(num_envs=n_envs), seed=0, impl=impl)
    gen = torch.Generator().manual_seed(0)
    actions = [(env.hover_action + 0.1 * torch.randn(n_envs, 4, generator=gen)).clamp(-1, 1) for _ in range(64)]
    env.step(actions[0])  # compile / warm up
    steps, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        for a in actions:
            env.step(a)
        steps += len(actions) * n_envs
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    env.close()
    return {"steps_per_s": steps / wall, "steps_per_cpu_s": steps / cpu, "n_envs": n_envs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", nargs="?", type=Path, help="a crazyflie-hover run with export/ (default: train one)")
    ap.add_argument("--seed", type=int, default=0, help="training seed when no RUN_DIR is given")
    ap.add_argument("--episodes", type=int, default=None, help="evaluation episodes (default: the run's, 256)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the robustness sweep")
    args = ap.parse_args()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    run_dir = args.run_dir
    if run_dir is None:
        run_dir = Path("runs/sim_to_sim") / f"seed{args.seed}"
        if not (run_dir / "export" / "policy.onnx").is_file():
            print(f"training crazyflie-hover seed {args.seed} into {run_dir} ...", flush=True)
            subprocess.run([sys.executable, "-m", "robot_rl.cli", "train", "crazyflie-hover", "--seed",
                            str(args.seed), "--out", str(run_dir)], check=True)
    t0 = time.perf_counter()
    summary = run_eval(run_dir, args.episodes, not args.no_sweep, "onnx", sims=SIMS)
    plot = Path(summary["report"]).parent / "transfer_trajectories_transfer.png"  # the same 4 episodes in each
    print(f"evaluation in {len(SIMS)} simulators: {time.perf_counter() - t0:.0f} s; report {summary['report']}; "
          f"plot {plot}")
    out = {}
    print(f"{'simulator':10s} {'survival':>9s} {'settle':>8s} {'final err':>10s} {'worst sweep surv/settle':>24s}")
    for name, r in summary["transfer"].items():
        rows = r["robustness"]
        worst = (f"{min(x['survival'] for x in rows):.1%} / {min(x['settle'] for x in rows):.1%}" if rows else "-")
        print(f"{name:10s} {r['survival']:9.1%} {r['settle']:8.1%} {r['median_final_error_m'] * 100:8.1f}cm "
              f"{worst:>24s}")
        out[name] = {"survival": r["survival"], "settle": r["settle"], "passed": r["passed"],
                     "median_final_error_m": r["median_final_error_m"],
                     "sweep_min_survival": min((x["survival"] for x in rows), default=None),
                     "sweep_min_settle": min((x["settle"] for x in rows), default=None)}
    print("\nthroughput, 1 thread, 64 envs (reference: our fused numba simulator in the same run)")
    for label, impl in (("fused", "fused"), ("ours", "torch"), ("mujoco", "mujoco"), ("pybullet", "pybullet")):
        tp = throughput(impl)
        print(f"{label:10s} ({impl:8s}) {tp['steps_per_s']:12,.0f} steps/s {tp['steps_per_cpu_s']:12,.0f} "
              f"steps per CPU-s")
        out.setdefault(label, {})["steps_per_cpu_s"] = round(tp["steps_per_cpu_s"])
    out["run_dir"], out["plot"] = str(run_dir), str(plot) if plot.is_file() else None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
