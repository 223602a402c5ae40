"""Env-steps/s of an Isaac Lab task (default ``Isaac-Cartpole``) on the CPU through the adapter (sim/isaac), and
of the raw Isaac Lab env (the reference, measured in the same run on the same instance).

Isaac Lab holds one simulation per process, so each ``num_envs`` runs in its own child process: it writes the
project's assets, builds ``isaac:Isaac-Cartpole`` (Newton / MuJoCo-Warp on the CPU), warms up, then times
``--steps`` steps of uniform random actions through :class:`sim.isaac.adapter.IsaacLabEnv` and through the wrapped
``ManagerBasedRLEnv.step`` (resets happen inside both). Also printed: the build time and ``uptime``'s load (the
machine is shared). Run in the Isaac Lab venv (``bash sim/isaac/make_venv.sh``):

    PYTHONPATH=. .venv-isaac/bin/python benchmarks/isaac_throughput.py [--num-envs 64 512] [--steps 200]
        [--task isaac:RobotRL-Crazyflie-Hover-Direct]

Last line JSON: ``{"num_envs", "steps_per_s", "raw_steps_per_s", "adapter_overhead", "build_s", "load"}``
(lists, one entry per ``num_envs``; overhead = 1 - adapter / raw).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(task: str, num_envs: int, steps: int, threads: int) -> dict:
    """One configuration (runs in a child process)."""
    import torch

    torch.set_num_threads(threads)
    from sim.isaac.assets import write_asset_root
    from sim.registry import get_task

    spec = get_task(task)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_asset_root(Path(tmp))
        t0 = time.perf_counter()
        env = spec.make_env(spec.config_cls(num_envs=num_envs, device="cpu", asset_root=str(root)), seed=0)
        build = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(0)
    actions = torch.rand(steps, num_envs, env.action_dim, generator=gen) * 2 - 1
    env.reset(seed=0)
    for a in actions[:20]:  # warm-up
        env.step(a)
    t0 = time.perf_counter()
    resets = 0
    for a in actions:
        resets += int(env.step(a)[4]["done_mask"].sum())
    ours = steps * num_envs / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for a in actions:
        env.env.step(a)
    raw = steps * num_envs / (time.perf_counter() - t0)
    env.close()
    return {"num_envs": num_envs, "steps_per_s": ours, "raw_steps_per_s": raw, "build_s": build, "resets": resets}


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="isaac:Isaac-Cartpole", help="e.g. isaac:RobotRL-Crazyflie-Hover-Direct")
    ap.add_argument("--num-envs", type=int, nargs="+", default=[64, 512])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(measure(args.task, args.child, args.steps, args.threads)))
        return
    rows = []
    print(f"{args.task} on the CPU (isaaclab 3.0.0, Newton / MuJoCo-Warp), {args.steps} timed steps, "
          f"torch threads {args.threads}")
    print(f"{'num_envs':>8} {'adapter steps/s':>16} {'raw Isaac Lab steps/s':>22} {'overhead':>9} {'build s':>8} "
          f"{'resets':>7}  load (1, 5, 15 min)")
    for n in args.num_envs:
        before = load()
        cmd = [sys.executable, __file__, "--child", str(n), "--task", args.task, "--steps", str(args.steps),
               "--threads", str(args.threads)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            sys.exit(f"num_envs {n} failed:\n{proc.stderr[-2000:]}")
        r = json.loads(line[len("RESULT "):]) | {"load": before}
        r["adapter_overhead"] = 1 - r["steps_per_s"] / r["raw_steps_per_s"]
        rows.append(r)
        print(f"{n:8d} {r['steps_per_s']:16.0f} {r['raw_steps_per_s']:22.0f} {r['adapter_overhead']:9.1%} "
              f"{r['build_s']:8.1f} {r['resets']:7d}  {before}")
    print(json.dumps({k: [round(r[k], 3) if isinstance(r[k], float) else r[k] for r in rows]
                      for k in ("num_envs", "steps_per_s", "raw_steps_per_s", "adapter_overhead", "build_s", "load")}))


if __name__ == "__main__":
    main()
