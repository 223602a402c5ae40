"""Where a hover policy's final position error comes from: a steady offset (bias) or spread, and when it settles.

Flies a trained run's actor on the held-out episodes of the hover protocol (``robot-rl eval``'s: 256 episodes,
``evaluation.seed``, the paper's noise and disturbances) and prints, over the survivors, the mean final position
error per axis (a steady offset), its spread, the median error against time, and the settle rate that removing
the mean offset would give (what an integral term would buy). Last line: JSON.

    PYTHONPATH=$PWD NUMBA_NUM_THREADS=1 python benchmarks/hover_error_breakdown.py runs/crazyflie-hover-sac
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from robot_rl.runs import load_actor
from sim.quadrotor.config import DomainRandomization
from sim.quadrotor.task import QuadrotorHoverEnv
from sim.quadrotor.vehicles import VehicleDistribution


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--episodes", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg, actor, meta = load_actor(args.run)
    ecfg = cfg.evaluation
    task = replace(cfg.task, num_envs=args.episodes, device="cpu", noise=True, randomization=DomainRandomization(),
                   vehicles=VehicleDistribution())
    env = QuadrotorHoverEnv(task, seed=ecfg.seed)
    obs = env.reset(seed=ecfg.seed)
    alive = torch.ones(args.episodes, dtype=torch.bool)
    errs = []
    for _ in range(task.episode_length):
        obs, _, terminated, _, info = env.step(actor(obs["policy"]).to(torch.float32))
        alive &= ~terminated
        errs.append(info["final_obs"]["critic"][:, :3].clone())
    env.close()
    e = torch.stack(errs)[:, alive]  # [T, survivors, 3] position minus target
    final = e[-1]
    window = e[-100:].mean(0)  # last second's mean: the steady part of the final error
    bias = final.mean(0)
    r = ecfg.settle_radius
    out = {"run": str(args.run), "env_steps": meta["env_steps"], "survival": alive.double().mean().item(),
           "settle": ((final.norm(dim=-1) < r).sum() / args.episodes).item(),
           "median_final_error_m": final.norm(dim=-1).median().item(),
           "mean_final_offset_m": [round(v, 4) for v in bias.tolist()],
           "final_spread_m": [round(v, 4) for v in final.std(0).tolist()],
           "last_second_mean_error_m": window.norm(dim=-1).median().item(),
           "last_second_wobble_m": (e[-100:] - window).norm(dim=-1).mean().item(),
           "settle_without_mean_offset": (((final - bias).norm(dim=-1) < r).sum() / args.episodes).item()}
    dt = task.dt
    print(f"{args.run}: {int(alive.sum())}/{args.episodes} survive; "
          f"final error median {out['median_final_error_m']:.3f} m")
    print(f"mean final offset (x, y, z) {out['mean_final_offset_m']} m, spread (std) {out['final_spread_m']} m")
    print(f"last second: median distance of the mean position {out['last_second_mean_error_m']:.3f} m, "
          f"mean wobble around it {out['last_second_wobble_m']:.3f} m")
    print("median error over time: " + ", ".join(f"{t * dt:.0f} s {e[t - 1].norm(dim=-1).median().item():.3f} m"
                                                  for t in range(100, task.episode_length + 1, 100)))
    print(f"settle {out['settle']:.3f}; with the mean offset removed {out['settle_without_mean_offset']:.3f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
