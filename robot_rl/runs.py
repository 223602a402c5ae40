"""Run directories: build the trainer for a config, and load a trained actor back from a run."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from robot_rl.checkpoint import load_checkpoint
from robot_rl.config import TrainConfig, train_config_from_dict
from robot_rl.runners.base import Runner
from sim.registry import get_task


def default_run_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.out) if cfg.out else Path("runs") / cfg.preset / f"seed{cfg.seed}"


def make_runner(cfg: TrainConfig, run_dir: Path) -> Runner:
    if cfg.algorithm == "ppo":
        from robot_rl.runners.on_policy import OnPolicyRunner

        return OnPolicyRunner(cfg, run_dir)
    if cfg.algorithm == "apg":
        from robot_rl.runners.apg import APGRunner

        return APGRunner(cfg, run_dir)
    from robot_rl.runners.off_policy import OffPolicyRunner

    return OffPolicyRunner(cfg, run_dir)


def load_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json)")
    try:
        return train_config_from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: cannot load this run's config: {exc}") from None


def load_actor(run_dir: Path) -> tuple[TrainConfig, torch.nn.Module, dict]:
    """The trained actor (deterministic ``obs -> action`` module, on CPU; a ``keep_best`` run's best one, else an
    ``actor_average_halflife`` run's weight average) and the checkpoint metadata."""
    cfg = load_config(run_dir)
    tensors, meta = load_checkpoint(Path(run_dir) / "checkpoint")
    actor = build_actor(cfg)
    # a keep_best run's policy is the actor of its best in-training evaluation (the average's, if it averages)
    prefix = next(p for p in ("best_actor.", "actor_average.", "actor.") if any(k.startswith(p) for k in tensors))
    actor.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    return cfg, actor.eval(), meta


def build_actor(cfg: TrainConfig) -> torch.nn.Module:
    """A freshly initialised actor of ``cfg``'s algorithm and task (load a state dict into it)."""
    probe = get_task(cfg.task_name).probe(cfg.task)
    dims = probe.obs_dims
    probe.close()  # simulators that allow one instance per process (Isaac Lab) can build the next env
    if cfg.algorithm == "td3":
        from robot_rl.algorithms.td3 import TD3

        algo = TD3(cfg.td3, dims["policy"], dims["critic"], probe.action_dim)
    elif cfg.algorithm == "sac":
        from robot_rl.algorithms.sac import SAC

        algo = SAC(cfg.sac, dims["policy"], dims["critic"], probe.action_dim)
    elif cfg.algorithm == "apg":
        from robot_rl.algorithms.apg import APG

        algo = APG(cfg.apg, dims["policy"], probe.action_dim)
    else:
        from robot_rl.algorithms.ppo import PPO

        algo = PPO(cfg.ppo, dims["policy"], dims["critic"], probe.action_dim)
    return algo.actor
