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
from sim.arm.peg import RING_THICKNESS
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


def rollout(task: str, policy: Any, actor: Any, episodes: int, noise_seed: int,
            trace: bool = False) -> dict[str, Any]:
    """One held-out episode per env; the final tip state of each (true hole frame) and its outcome (``trace``:
    also the per-step tip state, wrench and actions, for :func:`beside_ring_report`)."""
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
    steps: dict[str, list[np.ndarray]] = {k: [] for k in ("radial", "depth", "active", "wrench", "base", "action")}
    for _ in range(env.max_episode_steps):
        active = ~done
        tip = env.peg_tip()
        radial[active] = np.linalg.norm(tip[active, :2] - hole[active, :2], axis=1)
        depth[active] = hole[active, 2] - tip[active, 2]
        contact += active * np.asarray(env.in_contact("peg"), dtype=float).reshape(-1)
        action = execute(policy_input(execute, obs)).to(torch.float32)
        if trace:
            ft = obs["wrench"] if "wrench" in obs else torch.full((episodes, 6), np.nan)
            for k, v in zip(steps, (radial.copy(), depth.copy(), active, ft.cpu().numpy(),
                                    execute.base.act().numpy(), action.numpy()), strict=True):
                steps[k].append(np.array(v, dtype=float))
        obs, _, _, _, info = env.step(action)
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
    out = {"success": float(success.mean()), "mean_length": float(length.mean()),
            "failures": {k: int(v.sum()) for k, v in kinds.items()},
            "failed_final_depth_mm": {k: float(np.median(depth[v]) * 1e3) if v.any() else None
                                      for k, v in kinds.items()},
            "contact_fraction_failed": float((contact[failed] / length[failed]).mean()) if failed.any() else None,
            "success_by_error_mm": by_error}
    if trace:
        out["trace"] = {k: np.stack(v) for k, v in steps.items()} | {"success": success, "kinds": kinds,
                                                                    "error_mm": error}
    return out


def beside_ring_report(tr: dict[str, Any], r_in: float, r_out: float, below: float = 0.005) -> dict[str, Any]:
    """Episodes whose tip went ``below`` (m) under the rim beside the ring (radial offset > ``r_out``, the ring's
    outer radius): when it happened, what the wrench and the actions were then, whether the tip came back above the
    rim and whether the episode still succeeded. ``tr``: :func:`rollout`'s ``trace`` (arrays ``[T, N, ...]``)."""
    beside = tr["active"].astype(bool) & (tr["depth"] > below) & (tr["radial"] > r_out)
    went = beside.any(0)
    rows, lifted = [], np.zeros(beside.shape[1], bool)
    for i in np.flatnonzero(went):
        t0 = int(np.argmax(beside[:, i]))
        alive = np.flatnonzero(tr["active"][:, i])
        end = int(alive[-1]) + 1
        lifted[i] = bool((tr["depth"][t0:end, i] < 0).any())
        pre = slice(max(t0 - 10, 0), t0)
        post = slice(t0, min(t0 + 20, end))
        tail = slice(max(end - 50, t0), end)
        f = tr["wrench"][:, i, :3]
        dz = (tr["action"][:, i, 2] - tr["base"][:, i, 2])
        rows.append({
            "episode": int(i), "success": bool(tr["success"][i]), "step": t0, "length": end,
            "error_mm": float(tr["error_mm"][i]),
            "radial_mm_before": float(tr["radial"][max(t0 - 10, 0), i] * 1e3),
            "max_depth_mm_before": float(tr["depth"][:t0 + 1, i].max() * 1e3) if t0 else None,
            "final_depth_mm": float(tr["depth"][end - 1, i] * 1e3), "lifted_above_rim": bool(lifted[i]),
            "fz_before": float(np.nanmean(f[pre, 2])) if t0 else None, "fz_after": float(np.nanmean(f[post, 2])),
            "fz_tail": float(np.nanmean(f[tail, 2])), "fxy_after": float(np.nanmean(np.hypot(f[post, 0], f[post, 1]))),
            "base_z_after": float(tr["base"][post, i, 2].mean()), "base_z_tail": float(tr["base"][tail, i, 2].mean()),
            "residual_z_after": float(dz[post].mean()), "residual_z_tail": float(dz[tail].mean()),
            "residual_xy_tail": float(np.hypot(tr["action"][tail, i, 0] - tr["base"][tail, i, 0],
                                              tr["action"][tail, i, 1] - tr["base"][tail, i, 1]).mean())})
    succ = tr["success"].astype(bool)
    return {"went_beside": int(went.sum()), "went_beside_then_succeeded": int((went & succ).sum()),
            "went_beside_then_lifted_above_rim": int(lifted.sum()), "episodes": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="ResiP run directory (robot-rl train resip)")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--trace", action="store_true",
                   help="also report the episodes whose peg went down beside the ring (when, wrench, actions)")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg, policy, actor, meta = load_resip(args.run)
    out: dict[str, Any] = {"run": args.run, "episodes": args.episodes, "env_steps": meta["env_steps"]}
    for name, a in (("base", None), ("resip", actor)):
        out[name] = rollout(cfg.task, policy, a, args.episodes, cfg.seed, trace=args.trace)
        r = out[name]
        if args.trace:
            c = task_config(cfg.task, False)
            r_in = c.peg_radius + c.clearance / 2
            r["beside_ring"] = rep = beside_ring_report(r.pop("trace"), r_in, r_in + RING_THICKNESS)
            print(f"{name:6s} beside the ring: {rep['went_beside']} episodes went down there, "
                  f"{rep['went_beside_then_lifted_above_rim']} lifted back above the rim, "
                  f"{rep['went_beside_then_succeeded']} still succeeded")
            for e in rep["episodes"]:
                print("       " + " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in e.items()))
        print(f"{name:6s} success {r['success']:.3f}  mean length {r['mean_length']:.0f}  failures {r['failures']} "
              f"(median final depth mm {r['failed_final_depth_mm']})  contact while failing "
              f"{r['contact_fraction_failed']}")
        print("       success by hole-observation error (mm): "
              + ", ".join(f"{k}: {v['success']} ({v['episodes']})" for k, v in r["success_by_error_mm"].items()))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
