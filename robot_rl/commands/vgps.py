"""``robot-rl train vgps --base RUN`` (value for re-ranking, trained offline) and ``robot-rl eval RUN`` on it.

A V-GPS run directory holds ``config.json`` (:class:`VGPSConfig`, ``"algorithm": "vgps"``), ``value.safetensors``
+ ``.json`` (the chunk-level IQL value) and, after evaluation, ``eval.json`` + ``report.md``: the base alone
and the base re-ranked over ``k`` chunks on the same held-out episodes with the same base noise.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tyro

from robot_rl.commands.run_flags import split_run_flags
from robot_rl.io import atomic_write_json, atomic_write_text
from robot_rl.residual.value import IQLConfig


@dataclass
class VGPSConfig:
    """Value-guided re-ranking of a behaviour-cloning run's chunks."""

    base: str = ""
    """Behaviour-cloning run directory whose policy is re-ranked (unchanged)."""
    k: int = 8
    """Chunks sampled and scored where one is due."""
    rollout_episodes: int = 200
    """Episodes of the plain base (training env seeds) added to the demonstrations as value data."""
    steps: int = 5000
    """IQL gradient steps."""
    batch_size: int = 256
    """Transitions per gradient step."""
    iql: IQLConfig = field(default_factory=IQLConfig)
    """Value settings."""
    seed: int = 0
    """Seed of the rollouts, the value and the evaluation noise."""
    threads: int = 1
    """torch CPU threads."""
    algorithm: str = "vgps"
    """Run kind marker (do not change)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VGPSConfig:
        d = dict(d)
        iql = {k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("iql", {}).items()}
        return cls(**d, iql=IQLConfig(**iql))


def is_vgps_run(run_dir: str | Path) -> bool:
    path = Path(run_dir) / "config.json"
    return path.is_file() and json.loads(path.read_text()).get("algorithm") == "vgps"


def vgps_train_main(argv: list[str]) -> None:
    """``robot-rl train vgps --base RUN [--out DIR] [--eval-episodes N] [overrides]``."""
    import torch

    from robot_rl.checkpoint import save_checkpoint
    from robot_rl.residual.rerank import base_rollouts, demo_episodes, train_value
    from robot_rl.runners.bc import load_policy

    rest, flags = split_run_flags(argv, {"--out": str, "--eval-episodes": int})
    out, episodes = flags.get("out"), flags.get("eval_episodes")
    cfg = tyro.cli(VGPSConfig, args=rest, prog="robot-rl train vgps")
    if not cfg.base or not (Path(cfg.base) / "checkpoint.json").is_file():
        raise ValueError(f"robot-rl train vgps needs --base RUN with a behaviour-cloning checkpoint (got {cfg.base!r})")
    cfg.base = str(Path(cfg.base).resolve())
    torch.set_num_threads(cfg.threads)
    run_dir = Path(out or Path("runs") / f"vgps-{Path(cfg.base).name}" / f"seed{cfg.seed}")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", dataclasses.asdict(cfg))
    policy, _ = load_policy(cfg.base)
    base_cfg = json.loads((Path(cfg.base) / "config.json").read_text())
    t0 = time.perf_counter()
    roll = base_rollouts(base_cfg["task"], policy, cfg.rollout_episodes, seed=cfg.seed + 10_000)
    demos = demo_episodes(base_cfg["demos"], policy) if base_cfg.get("demos") else []
    value = train_value(policy, roll + demos, cfg.iql, cfg.steps, cfg.seed, cfg.batch_size)
    meta = {"task": base_cfg["task"], "rollout_env_steps": int(sum(len(e["obs"]) for e in roll)),
            "rollout_success": sum(bool(e["rew"].any()) for e in roll) / max(len(roll), 1),
            "demo_episodes": len(demos), "train_wall_s": time.perf_counter() - t0}
    save_checkpoint(run_dir / "value", value.state_dict(), meta)
    result = dict(meta)
    if episodes != 0:
        result["eval"] = run_vgps_eval(run_dir, episodes)["headline"]
    print(f"run directory : {run_dir}")
    print(json.dumps(result))


def load_vgps(run_dir: str | Path) -> tuple[VGPSConfig, Any, Any, dict[str, Any]]:
    """``(config, base policy, value in eval mode, value metadata)`` of a V-GPS run."""
    from robot_rl.checkpoint import load_checkpoint
    from robot_rl.residual.value import ChunkValue
    from robot_rl.runners.bc import load_policy

    cfg = VGPSConfig.from_dict(json.loads((Path(run_dir) / "config.json").read_text()))
    policy, _ = load_policy(cfg.base)
    tensors, meta = load_checkpoint(Path(run_dir) / "value")
    to, n = policy.n_obs_steps, policy.n_action_steps
    value = ChunkValue(cfg.iql, to * policy.obs_dim, n * policy.act_dim, n)
    value.load_state_dict(tensors)
    return cfg, policy, value.eval(), meta


def run_vgps_eval(run_dir: str | Path, episodes: int | None = None, k: int | None = None) -> dict[str, Any]:
    """Base alone and base re-ranked over ``k`` (default the run's) chunks on the same held-out episodes."""
    from robot_rl.residual.rerank import evaluate_rerank

    run_dir = Path(run_dir)
    cfg, policy, value, meta = load_vgps(run_dir)
    k = cfg.k if k is None else k
    from sim.registry import get_task

    n = get_task(meta["task"]).evaluation.config_cls().episodes if episodes is None else episodes
    base = evaluate_rerank(meta["task"], policy, None, 1, n, seed=cfg.seed)
    rer = evaluate_rerank(meta["task"], policy, value, k, n, seed=cfg.seed)
    summary = {"task": meta["task"], "episodes": n, "seed": rer["seed"], "k": k, "base_success": base["success"],
               "rerank_success": rer["success"], "base_mean_length": base["mean_episode_length"],
               "rerank_mean_length": rer["mean_episode_length"], "value_rollout_env_steps": meta["rollout_env_steps"]}
    atomic_write_json(run_dir / "eval.json", summary)
    atomic_write_text(run_dir / "report.md", "\n".join([
        f"# Evaluation of `{run_dir}`", "",
        f"Value-guided re-ranking of `{cfg.base}` (task `{meta['task']}`): {k} chunks sampled where one is due, "
        f"the chunk-level IQL value picks one; {n} held-out episodes from seed {rer['seed']}, same base noise.", "",
        "| policy | success | mean length |", "|---|---:|---:|",
        f"| base | {base['success']:.1%} | {base['mean_episode_length']:.1f} |",
        f"| base + re-ranking (K={k}) | {rer['success']:.1%} | {rer['mean_episode_length']:.1f} |", ""]))
    summary["report"] = str(run_dir / "report.md")
    summary["headline"] = {"base_success": base["success"], "rerank_success": rer["success"], "k": k}
    return summary
