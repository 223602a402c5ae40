"""``robot-rl demos TASK``: roll out the task's scripted expert and write a LeRobot v3.0 dataset."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_rl.data import write_dataset
from sim.registry import get_task

POLICY_KEY = "observation.state"
"""What the deployed policy measures (the ``policy`` group): LeRobot's state feature."""
PRIVILEGED_KEY = "privileged.state"
"""The critic group (exact state, contacts, randomised parameters): not an ``observation.`` key, so LeRobot
policies that read every ``observation.*`` feature never see it."""


@torch.no_grad()
def rollout_expert(task: str, episodes: int, seed: int, action_noise: float = 0.1, num_envs: int = 16,
                   task_cfg: Any = None) -> tuple[list[dict[str, np.ndarray]], Any]:
    """``episodes`` expert episodes of ``task`` (seed ``seed``): per episode ``observation.state``,
    ``privileged.state``, ``action`` (the expert's clean label), ``next.reward``, ``next.done``,
    ``next.success``. Env ``i`` of ``min(num_envs, episodes)`` records episodes ``i``, ``i + n``, ... so that
    short (successful) episodes are not over-represented. Returns the episodes and the env (closed)."""
    spec = get_task(task)
    if spec.expert is None:
        raise ValueError(f"task {spec.name!r} has no scripted expert")
    if episodes < 1 or num_envs < 1:
        raise ValueError("--episodes and --num-envs must be >= 1")
    n = min(num_envs, episodes)
    cfg = spec.config_cls() if task_cfg is None else task_cfg
    env = spec.make_env(replace(cfg, num_envs=n, device="cpu"), seed=seed)
    obs = env.reset(seed=seed)
    expert = spec.expert(env, seed=seed + 1, action_noise=action_noise)
    quota = np.array([len(range(i, episodes, n)) for i in range(n)])
    recorded = [[] for _ in range(n)]
    frames: list[dict[str, list]] = [_empty() for _ in range(n)]
    while any(len(r) < q for r, q in zip(recorded, quota, strict=True)):
        label, executed = expert.act()
        state, privileged = obs["policy"].numpy().copy(), obs["critic"].numpy().copy()
        obs, reward, _, _, info = env.step(torch.from_numpy(np.asarray(executed, dtype=np.float32)))
        done = info["done_mask"].cpu().numpy()
        success = info["success"].cpu().numpy() & done
        for i in range(n):
            if len(recorded[i]) >= quota[i]:
                continue
            f = frames[i]
            for key, value in ((POLICY_KEY, state[i]), (PRIVILEGED_KEY, privileged[i]), ("action", label[i]),
                               ("next.reward", float(reward[i])), ("next.done", bool(done[i])),
                               ("next.success", bool(success[i]))):
                f[key].append(value)
            if done[i]:
                recorded[i].append({k: np.asarray(v, dtype=_DTYPES.get(k, np.float32)) for k, v in f.items()})
                frames[i] = _empty()
        expert.reset(done)
    env.close()
    ordered = [recorded[i][k] for k in range(int(quota.max())) for i in range(n) if k < len(recorded[i])]
    return ordered, env


_DTYPES = {"next.done": np.bool_, "next.success": np.bool_}


def _empty() -> dict[str, list]:
    return {k: [] for k in (POLICY_KEY, PRIVILEGED_KEY, "action", "next.reward", "next.done", "next.success")}


def record_demos(task: str, episodes: int, seed: int, out: Path, action_noise: float = 0.1,
                 num_envs: int = 16) -> dict[str, Any]:
    """Roll out the expert (:func:`rollout_expert`) and write the dataset to ``out`` (never over an existing
    path). Returns the success rate, frame count and where it went."""
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} already exists; choose another --out (demonstrations are never overwritten)")
    spec = get_task(task)
    eps, env = rollout_expert(spec.name, episodes, seed, action_noise, num_envs)
    obs_names = env.observation_names()
    export = env.export_spec()
    act = export["action"]
    action_names = [f"ee_delta.{c}" for c in act["channels"]] if act["type"] == "ee_delta" else list(act["joints"])
    names = {POLICY_KEY: obs_names["policy"], PRIVILEGED_KEY: obs_names["critic"], "action": action_names}
    write_dataset(out, eps, fps=round(1.0 / env.dt), task=spec.description or spec.name, names=names,
                  robot_type=export.get("robot", spec.name))
    success = float(np.mean([bool(e["next.success"][-1]) for e in eps]))
    return {"dataset": str(out), "episodes": len(eps), "frames": int(sum(len(e["action"]) for e in eps)),
            "success_rate": success, "seed": seed, "action_noise": action_noise, "task": spec.name}
