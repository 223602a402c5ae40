"""``robot-rl export DIR``: write ``DIR/export/policy.onnx`` + ``policy.json`` from the run's checkpoint."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from deploy.export.policy import export_policy
from deploy.export.recurrent_policy import export_recurrent_policy
from robot_rl.models.recurrent import GRUActor
from robot_rl.runs import load_actor
from sim.registry import TaskSpec, get_task


@torch.no_grad()
def on_distribution_observations(actor: torch.nn.Module, task: TaskSpec, task_cfg, n: int = 1000,
                                 seed: int = 7) -> np.ndarray:
    """Observations the policy meets when it acts: 100 envs of the task's reference backend, every 25th step
    of a 250-step rollout."""
    env = task.make_env(replace(task_cfg, num_envs=100, device="cpu"), seed=seed)
    try:
        obs = env.reset(seed=seed)
        out = []
        for t in range(250):
            if t % 25 == 0:
                out.append(obs["policy"].clone())
            obs, *_ = env.step(actor(obs["policy"]))
    finally:
        env.close()  # simulators with one instance per process (Isaac Lab) can build the next env
    return torch.cat(out)[:n].numpy()


@torch.no_grad()
def recurrent_observations(actor: GRUActor, task: TaskSpec, task_cfg, seed: int = 7,
                           sequence: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A recurrent actor's on-distribution (observation, state) pairs (as :func:`on_distribution_observations`,
    each with the state it was met with; the state zeroed at every episode start) and the first ``sequence``
    observations of env 0's first episode (the export's test vector)."""
    env = task.make_env(replace(task_cfg, num_envs=100, device="cpu"), seed=seed)
    try:
        obs = env.reset(seed=seed)
        state = actor.initial_state(100)
        out, states, first, alive = [], [], [], True
        for t in range(250):
            if t % 25 == 0:
                out.append(obs["policy"].clone())
                states.append(state.clone())
            if alive and t < sequence:
                first.append(obs["policy"][0].clone())
            action, state = actor(obs["policy"], state)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated | truncated
            alive = alive and not bool(done[0])
            state = state * ~done[:, None]
    finally:
        env.close()
    if len(first) < sequence:
        raise RuntimeError(f"env 0's first episode ended within {len(first)} steps: no test-vector sequence")
    return torch.cat(out)[:1000].numpy(), torch.cat(states)[:1000].numpy(), torch.stack(first).numpy()


def export_run(run_dir: Path, out_dir: Path | None = None) -> dict:
    """Export the run's actor with the task's observation/action contract; returns ``policy.json``'s content."""
    cfg, actor, meta = load_actor(run_dir)
    task = get_task(cfg.task_name)
    spec = task.export_spec(cfg.task)
    metadata = {"robot": spec.pop("robot", task.name), "task": cfg.preset}
    if "model" in spec:
        metadata["model"] = spec.pop("model")
    metadata["training"] = {"algorithm": cfg.algorithm, "seed": cfg.seed, "task": task.name,
                            "env_steps": meta["env_steps"], "train_time_s": meta["train_time_s"],
                            "config": cfg.to_dict()}
    if isinstance(actor, GRUActor):
        obs, states, sequence = recurrent_observations(actor, task, cfg.task)
        return export_recurrent_policy(out_dir or Path(run_dir) / "export", actor, spec, obs, states, sequence,
                                       metadata, seed=cfg.seed)
    obs = on_distribution_observations(actor, task, cfg.task)
    return export_policy(out_dir or Path(run_dir) / "export", actor.graph(), actor, spec, obs, metadata, seed=cfg.seed)
