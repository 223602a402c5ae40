"""``robot-rl export RUN`` for EXPO and V-GPS runs: the base sampler plus the selecting network
(``composition.kind = "candidates"``, :mod:`deploy.export.candidates`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np


def export_candidates_run(run_dir: str | Path, out_dir: Path | None = None) -> dict[str, Any]:
    """Export an EXPO run (``score: "action"``, edits; with ``--wrench`` the selector also reads the wrist
    force/torque sensor, ``composition.wrench``) or a V-GPS run (``score: "chunk"``) to ``RUN/export``."""
    from deploy.export.candidates import ActionSelector, ChunkScorer, export_candidates_policy
    from robot_rl.commands.bc import load_bc_config
    from robot_rl.commands.expo import is_expo_run
    from robot_rl.data import load_dataset
    from sim.registry import get_task

    run_dir = Path(run_dir)
    reads_wrench = False
    if is_expo_run(run_dir):
        from robot_rl.runners.expo import load_expo

        cfg, policy, agent, meta = load_expo(run_dir)
        if cfg.expo.q_level != "step":
            raise ValueError(f"{run_dir}: a chunk-level EXPO run (expo.q_level {cfg.expo.q_level!r}) has no export; "
                             "the candidates runtime selects per control step (q_level 'step')")
        net, score, k, task_name = ActionSelector(agent, policy), "action", cfg.expo.num_candidates, cfg.task
        reads_wrench = cfg.wrench
        training = {"algorithm": "expo", "env_steps": meta["env_steps"], "config": cfg.to_dict()}
    else:
        from robot_rl.commands.vgps import load_vgps

        cfg, policy, value, meta = load_vgps(run_dir)
        net, score, k, task_name = ChunkScorer(value, policy), "chunk", cfg.k, meta["task"]
        data = {"branched": dataclasses.asdict(cfg.branched)} if cfg.value == "branched" else {
            "rollout_episodes": cfg.rollout_episodes}
        training = {"algorithm": "vgps", "value_rollout_env_steps": meta["rollout_env_steps"],
                    "config": {"k": cfg.k, "value": cfg.value, "steps": cfg.steps, **data}}
    if getattr(policy, "sample", None) is None:
        raise ValueError(f"{run_dir}: only a diffusion/flow base exports a chunked sampler")
    bc = load_bc_config(cfg.base)
    task = get_task(task_name)
    spec = task.export_spec()
    metadata = {"robot": spec.pop("robot", task.name), "task": f"{training['algorithm']}-{task.name}",
                "training": {**training, "seed": cfg.seed, "task": task.name, "base": cfg.base}}
    data = load_dataset(bc.demos, keys=[bc.obs_key])
    on_dist = np.concatenate([ep[bc.obs_key] for ep in data.episodes])
    wrench = None
    if reads_wrench:  # the sensor the run trained with, described as for a ResiP residual
        from sim.arm.wrench import wrench_contract

        wrench = wrench_contract(task.config_cls().ft_sensor, spec["control_rate_hz"])
    return export_candidates_policy(out_dir or run_dir / "export", policy, net, score, k, spec, on_dist, metadata,
                                    seed=cfg.seed, wrench=wrench)
