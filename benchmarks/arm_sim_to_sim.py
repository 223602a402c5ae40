"""Sim-to-sim transfer of the Panda tasks: MuJoCo (reference) vs PyBullet, on the same held-out seeds.

1. The scripted experts (``sim.arm.experts``, action noise 0.1 as in the demonstrations) on every Panda task:
   ``--episodes`` episodes per backend from the evaluation seed (1 000 003), 16 envs.
2. Policies trained in MuJoCo only, each through ``robot-rl eval RUN --sim mujoco pybullet`` (the task's held-out
   episodes, ``--policy-episodes``; a fresh sampler with the same noise per backend): a diffusion run (``--dp-run
   RUN``, any BC run; without it ``robot-rl demos panda-pick-cube --episodes 200`` + ``robot-rl train
   dp-panda-pick-cube`` (seed ``--seed``) trains one), optionally an RL run (``--sac-run``, e.g. panda-reach-sac)
   and a ResiP run (``--resip-run``: base alone and base + residual). Each also traces its first 4 episodes in
   both backends and plots them (``transfer_trajectories*.png`` + ``.npz`` in the run, next to its report): the
   JSON row gives the plot, how far apart the initial frames are, each episode's outcome per backend and when the
   backends' progress distance first differs by more than 1 cm.
3. Throughput of ``panda-pick-cube`` (random ee_delta actions, IK included, one thread, each in a fresh process):
   MuJoCo and PyBullet (one Bullet world per env, the default, and all envs in one world) in the same run;
   control steps per wall second and per CPU second (per core).

    PYTHONPATH=. python benchmarks/arm_sim_to_sim.py [--dp-run RUN] [--sac-run RUN] [--resip-run RUN]
        [--episodes 50] [--policy-episodes N] [--parts experts policies throughput]

Last line: ``{"experts": {task: {"mujoco", "pybullet"}}, "dp": {"mujoco", "pybullet", "task", "traces"},
"sac": {...} | null, "resip": {"mujoco": {"base", "resip"}, ...} | null, "throughput": {label: {"steps_per_s",
"steps_per_cpu_s"}}}`` (a part left out by ``--parts``: absent).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robot_rl.commands.bc import run_bc_eval  # noqa: E402
from robot_rl.commands.evaluate import run_eval  # noqa: E402
from robot_rl.commands.resip import run_resip_eval  # noqa: E402
from sim.arm.catalog import ARM_TASK_NAMES  # noqa: E402
from sim.registry import EVAL_SEED, get_task  # noqa: E402

BACKENDS = ("mujoco", "pybullet")
PARTS = ("experts", "policies", "throughput")


def expert_success(task: str, impl: str, episodes: int, seed: int = EVAL_SEED, num_envs: int = 16) -> dict:
    """Success rate and mean length of ``task``'s scripted expert in backend ``impl`` (the first ``episodes``)."""
    spec = get_task(task)
    env = spec.make_env(spec.config_cls(num_envs=num_envs), seed=seed, impl=impl)
    env.reset(seed)
    expert = spec.expert(env, seed=seed + 1, action_noise=0.1)
    outcomes, lengths, steps = [], [], np.zeros(num_envs, dtype=np.int64)
    t0 = time.perf_counter()
    while len(outcomes) < episodes:
        _, executed = expert.act()
        *_, info = env.step(torch.from_numpy(executed))
        steps += 1
        done = info["done_mask"].numpy()
        outcomes += info["success"].numpy()[done].tolist()
        lengths += steps[done].tolist()
        steps[done] = 0
        expert.reset(done)
    env.close()
    return {"success": float(np.mean(outcomes[:episodes])), "mean_length": float(np.mean(lengths[:episodes])),
            "episodes": episodes, "wall_s": round(time.perf_counter() - t0, 1)}


def throughput(impl: str, n_envs: int, per_client: int = 0, seconds: float = 3.0) -> dict:
    """Control steps of ``panda-pick-cube`` per wall and per CPU second, in a fresh one-thread process."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_throughput, (impl, n_envs, per_client, seconds))


def _throughput(impl: str, n_envs: int, per_client: int, seconds: float) -> dict:
    os.environ["NUMBA_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    spec = get_task("panda-pick-cube")
    cfg = spec.config_cls(num_envs=n_envs)
    cfg.sim.envs_per_client = per_client
    env = spec.make_env(cfg, seed=0, impl=impl)
    gen = torch.Generator().manual_seed(0)
    actions = [torch.rand(n_envs, env.action_dim, generator=gen) * 2 - 1 for _ in range(16)]
    for a in actions:  # warm up, leave the reset pose
        env.step(a)
    steps, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        for a in actions:
            env.step(a)
        steps += len(actions) * n_envs
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    env.close()
    return {"steps_per_s": round(steps / wall, 1), "steps_per_cpu_s": round(steps / cpu, 1), "n_envs": n_envs}


def train_dp_pick(root: Path, seed: int) -> Path:
    """``robot-rl demos`` + ``robot-rl train dp-panda-pick-cube`` (the README's commands) into ``root``."""
    run = root / f"dp-pick-seed{seed}"
    if (run / "export" / "policy.onnx").is_file():
        return run
    cli = [sys.executable, "-m", "robot_rl.cli"]
    demos = root / f"pick-demos-seed{seed}"
    if not demos.exists():
        subprocess.run([*cli, "demos", "panda-pick-cube", "--episodes", "200", "--seed", str(seed), "--out",
                        str(demos)], check=True)
    subprocess.run([*cli, "train", "dp-panda-pick-cube", "--demos", str(demos), "--seed", str(seed), "--out",
                    str(run), "--eval-episodes", "0", "--video-episodes", "0"], check=True)
    return run


def traced(summary: dict) -> dict | None:
    """A run's traced episodes (``eval*.json`` ``transfer_traces``): plot, initial gap, parting times."""
    t = summary.get("transfer_traces")
    return None if t is None else {k: t[k] for k in ("plot", "initial_gap", "parting_times_s")}


def policies(args: argparse.Namespace, out: dict) -> None:
    """Part 2: the policy runs through ``robot-rl eval RUN --sim mujoco pybullet``."""
    dp_run = args.dp_run or train_dp_pick(args.root, args.seed)
    dp = run_bc_eval(dp_run, args.policy_episodes, video_episodes=0, sims=BACKENDS, sweep=not args.no_sweep)
    out["dp"] = {k: v["success"] for k, v in dp["transfer"].items()} | {
        "run": str(dp_run), "task": json.loads((dp_run / "config.json").read_text())["task"],
        "episodes": dp["episodes"], "traces": traced(dp)}
    print(f"BC run {dp_run}: " + ", ".join(f"{k} {v['success']:.1%}" for k, v in dp["transfer"].items())
          + f"; report {dp['report']}; traces {out['dp']['traces']}", flush=True)
    out["sac"] = None
    if args.sac_run is not None:
        rl = run_eval(args.sac_run, args.policy_episodes, not args.no_sweep, "onnx", video_episodes=0, sims=BACKENDS)
        out["sac"] = {k: v["success"] for k, v in rl["transfer"].items()} | {"run": str(args.sac_run),
                                                                              "traces": traced(rl)}
        print(f"RL run {args.sac_run}: " + ", ".join(f"{k} {v['success']:.1%}" for k, v in rl["transfer"].items())
              + f"; traces {out['sac']['traces']}", flush=True)
    out["resip"] = None
    if args.resip_run is not None:
        rs = run_resip_eval(args.resip_run, args.policy_episodes, sims=BACKENDS, sweep=not args.no_sweep)
        out["resip"] = {k: {"base": v["base_success"], "resip": v["resip_success"]}
                        for k, v in rs["simulators"].items()} | {"run": str(args.resip_run),
                                                                  "episodes": rs["episodes"], "traces": traced(rs)}
        print(f"ResiP run {args.resip_run}: " + ", ".join(
            f"{k} base {v['base_success']:.1%} -> resip {v['resip_success']:.1%}" for k, v in rs["simulators"].items())
              + f"; traces {out['resip']['traces']}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dp-run", type=Path, default=None, help="a BC run (default: train dp-panda-pick-cube)")
    ap.add_argument("--sac-run", type=Path, default=None, help="also fly this RL run (e.g. panda-reach-sac)")
    ap.add_argument("--resip-run", type=Path, default=None, help="also fly this ResiP run (base and base + residual)")
    ap.add_argument("--root", type=Path, default=Path("runs/arm_sim_to_sim"), help="where a trained run goes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--episodes", type=int, default=50, help="expert episodes per task and backend")
    ap.add_argument("--policy-episodes", type=int, default=None, help="policy episodes (default: the task's 100)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the policies' robustness sweeps")
    ap.add_argument("--envs", type=int, nargs="+", default=[16, 64], help="env counts of the throughput rows")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    out: dict = {}
    if "experts" in args.parts:
        out["experts"] = {}
        print(f"scripted experts, {args.episodes} episodes from seed {EVAL_SEED}, action noise 0.1")
        for task in sorted(ARM_TASK_NAMES):
            row = {impl: expert_success(task, impl, args.episodes) for impl in BACKENDS}
            out["experts"][task] = row
            print(f"  {task:22s} " + "  ".join(f"{impl} {r['success']:6.1%} ({r['mean_length']:.0f} steps, "
                                                f"{r['wall_s']:.0f} s)" for impl, r in row.items()), flush=True)
    if "policies" in args.parts:
        policies(args, out)
    if "throughput" in args.parts:
        print("\nthroughput of panda-pick-cube, 1 thread (control steps incl. IK; per CPU second = per core)")
        out["throughput"] = {}
        for n in args.envs:
            for label, impl, per in ((f"mujoco_{n}", "mujoco", 0), (f"pybullet_{n}", "pybullet", 1),
                                     (f"pybullet_{n}_shared_world", "pybullet", 0)):
                tp = throughput(impl, n, per)
                out["throughput"][label] = tp
                print(f"  {label:28s} {tp['steps_per_s']:9,.0f} steps/s {tp['steps_per_cpu_s']:9,.0f} per CPU-s",
                      flush=True)
    out["load_average"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
