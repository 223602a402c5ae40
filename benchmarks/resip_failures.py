"""Where do `panda-peg-insert` episodes fail? Base alone vs base + ResiP residual on the held-out episodes.

Runs the same held-out episodes as ``robot-rl eval RUN`` (the task's evaluation seed, one episode per env, the
base's noise from the run's seed, the residual's mean) and classifies every failed episode by where its peg tip
is when the episode times out, from the true hole pose (the policy sees it with a per-episode ~3 mm error):

- ``mouth``: the peg's axis is over the opening (tip radial offset < the hole radius) but the tip is stuck above
  the success depth (the round tip rests on the rim edge);
- ``rim``: the tip rests on the ring wall, at about the rim's height (radial offset beyond the hole radius);
- ``outside``: the tip went down beside the ring (more than half the hole depth below the rim, not inserted).

It also reports success by the size of the per-episode hole-observation error and the fraction of the episode
the peg spent in contact.

    PYTHONPATH=. python benchmarks/resip_failures.py RUN [--episodes 200]

Last line: {"run", "episodes", "base": {...}, "resip": {...}}, each with "success", "mean_length",
"failures": {"mouth", "rim", "outside"}, "contact_fraction_failed", "success_by_error_mm".
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import torch

from robot_rl.commands.resip import load_resip
from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.resip import ResidualExecutor
from robot_rl.runners.resip import task_config
from sim.evaluation import policy_input
from sim.registry import get_task

ERROR_BINS_MM = (0.0, 2.0, 4.0, 6.0, np.inf)


def classify_failures(success: np.ndarray, radial: np.ndarray, depth: np.ndarray, hole_radius: float,
                      hole_depth: float) -> dict[str, np.ndarray]:
    """Masks ``mouth``/``rim``/``outside`` of the failed episodes from the final tip state: ``radial`` offset from
    the true hole axis and ``depth`` below the rim (m)."""
    failed = ~np.asarray(success, bool)
    outside = failed & (depth > hole_depth / 2)  # well below the rim, yet not inserted: beside the ring
    return {"mouth": failed & ~outside & (radial < hole_radius), "rim": failed & ~outside & (radial >= hole_radius),
            "outside": outside}


def rollout(task: str, policy: Any, actor: Any, episodes: int, noise_seed: int) -> dict[str, Any]:
    """One held-out episode per env; the final tip state of each (true hole frame) and its outcome."""
    spec = get_task(task)
    seed = spec.evaluation.config_cls().seed
    wrench = actor is not None and actor.wrench_dim > 0
    env = spec.make_env(task_config(task, wrench, num_envs=episodes, device="cpu"), seed=seed)
    if env.task_name != "panda-peg-insert":
        raise ValueError(f"resip_failures.py classifies panda-peg-insert episodes, not {env.task_name!r}")
    execute = ResidualExecutor(FrozenChunkBase(policy, episodes, noise_seed), actor)
    obs = env.reset(seed=seed)
    error = np.linalg.norm(env.hole_bias[:, :2], axis=1) * 1e3
    hole = env.hole.copy()
    done, success = np.zeros(episodes, bool), np.zeros(episodes, bool)
    length, contact = np.zeros(episodes), np.zeros(episodes)
    radial, depth = np.zeros(episodes), np.zeros(episodes)
    for _ in range(env.max_episode_steps):
        active = ~done
        tip = env.peg_tip()
        radial[active] = np.linalg.norm(tip[active, :2] - hole[active, :2], axis=1)
        depth[active] = hole[active, 2] - tip[active, 2]
        contact += active * np.asarray(env.in_contact("peg"), dtype=float).reshape(-1)
        obs, _, _, _, info = env.step(execute(policy_input(execute, obs)).to(torch.float32))
        ended = info["done_mask"].cpu().numpy().astype(bool) & active
        success |= ended & info["success"].cpu().numpy().astype(bool)
        length += active
        done |= ended
        if done.all():
            break
    env.close()
    c = env.cfg
    failed = ~success
    kinds = classify_failures(success, radial, depth, c.peg_radius + c.clearance / 2, c.hole_depth)
    by_error = {}
    for lo, hi in zip(ERROR_BINS_MM[:-1], ERROR_BINS_MM[1:], strict=True):
        m = (error >= lo) & (error < hi)
        rate = float(success[m].mean()) if m.any() else None
        by_error[f"{lo:g}-{hi:g}"] = {"episodes": int(m.sum()), "success": rate}
    return {"success": float(success.mean()), "mean_length": float(length.mean()),
            "failures": {k: int(v.sum()) for k, v in kinds.items()},
            "failed_final_depth_mm": {k: float(np.median(depth[v]) * 1e3) if v.any() else None
                                      for k, v in kinds.items()},
            "contact_fraction_failed": float((contact[failed] / length[failed]).mean()) if failed.any() else None,
            "success_by_error_mm": by_error}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="ResiP run directory (robot-rl train resip)")
    p.add_argument("--episodes", type=int, default=200)
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg, policy, actor, meta = load_resip(args.run)
    out: dict[str, Any] = {"run": args.run, "episodes": args.episodes, "env_steps": meta["env_steps"]}
    for name, a in (("base", None), ("resip", actor)):
        out[name] = rollout(cfg.task, policy, a, args.episodes, cfg.seed)
        r = out[name]
        print(f"{name:6s} success {r['success']:.3f}  mean length {r['mean_length']:.0f}  failures {r['failures']} "
              f"(median final depth mm {r['failed_final_depth_mm']})  contact while failing "
              f"{r['contact_fraction_failed']}")
        print("       success by hole-observation error (mm): "
              + ", ".join(f"{k}: {v['success']} ({v['episodes']})" for k, v in r["success_by_error_mm"].items()))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
