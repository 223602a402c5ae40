"""``robot-rl train vgps --base RUN`` (value for re-ranking, trained offline) and ``robot-rl eval RUN`` on it.

A V-GPS run directory holds ``config.json`` (:class:`VGPSConfig`, ``"algorithm": "vgps"``), ``value.safetensors``
+ ``.json`` (the chunk-level IQL value, or with ``--value branched`` the value fitted to branched base rollouts,
:mod:`robot_rl.residual.branched`, whose data is kept in ``branched_data.safetensors`` + ``.json`` and reused by a
later run into the same directory with the same data options) and, after evaluation, ``eval.json`` +
``report.md``: the base alone and the base re-ranked over ``k`` chunks on the same held-out episodes with the
same base noise.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tyro

from robot_rl.commands.run_flags import split_run_flags
from robot_rl.io import atomic_write_json, atomic_write_text
from robot_rl.residual.branched import BranchedConfig
from robot_rl.residual.value import IQLConfig


@dataclass
class VGPSConfig:
    """Value-guided re-ranking of a behaviour-cloning run's chunks."""

    base: str = ""
    """Behaviour-cloning run directory whose policy is re-ranked (unchanged)."""
    k: int = 8
    """Chunks sampled and scored where one is due (with ``--value branched`` also per state of the data)."""
    value: Literal["iql", "branched"] = "iql"
    """``iql``: offline IQL on demonstrations + plain base rollouts (one chunk per state); ``branched``: regress
    the simulated outcomes of K chunks from one state (``--branched.*``; many more simulated steps)."""
    rollout_episodes: int = 200
    """Episodes of the plain base (training env seeds) added to the demonstrations as IQL value data."""
    steps: int = 5000
    """Value gradient steps."""
    batch_size: int = 256
    """Transitions per gradient step."""
    iql: IQLConfig = field(default_factory=IQLConfig)
    """IQL value settings."""
    branched: BranchedConfig = field(default_factory=BranchedConfig)
    """Branched value settings."""
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
        branched = {k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("branched", {}).items()}
        return cls(**d, iql=IQLConfig(**iql), branched=BranchedConfig(**branched))


VALUE_WORDS = {"iql": "the chunk-level IQL value",
               "branched": "the value fitted to branched base rollouts"}


def is_vgps_run(run_dir: str | Path) -> bool:
    path = Path(run_dir) / "config.json"
    return path.is_file() and json.loads(path.read_text()).get("algorithm") == "vgps"


def vgps_train_main(argv: list[str]) -> None:
    """``robot-rl train vgps --base RUN [--out DIR] [--eval-episodes N] [overrides]``."""
    rest, flags = split_run_flags(argv, {"--out": str, "--eval-episodes": int})
    out, episodes = flags.get("out"), flags.get("eval_episodes")
    cfg = tyro.cli(VGPSConfig, args=rest, prog="robot-rl train vgps")
    run_dir = Path(out or Path("runs") / f"vgps-{Path(cfg.base).name}" / f"seed{cfg.seed}")
    _, _, meta = train_vgps(cfg, run_dir)
    result = dict(meta)
    if episodes != 0:
        result["eval"] = run_vgps_eval(run_dir, episodes)["headline"]
    print(f"run directory : {run_dir}")
    print(json.dumps(result))


def train_vgps(cfg: VGPSConfig, run_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """Fit the run's value and write the run directory: ``(base policy, value in eval mode, value metadata)``."""
    import torch

    from robot_rl.checkpoint import save_checkpoint
    from robot_rl.residual.rerank import base_rollouts, demo_episodes, train_value
    from robot_rl.runners.bc import load_policy

    if not cfg.base or not (Path(cfg.base) / "checkpoint.json").is_file():
        raise ValueError(f"robot-rl train vgps needs --base RUN with a behaviour-cloning checkpoint (got {cfg.base!r})")
    b = cfg.branched
    if cfg.value == "branched" and (cfg.k < 2 or b.episodes < 1 or b.lookahead < 0):
        raise ValueError(f"--value branched needs --k >= 2, --branched.episodes >= 1 and --branched.lookahead >= 0 "
                         f"(got {cfg.k}, {b.episodes}, {b.lookahead})")
    cfg = dataclasses.replace(cfg, base=str(Path(cfg.base).resolve()))
    torch.set_num_threads(cfg.threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", dataclasses.asdict(cfg))
    policy, _ = load_policy(cfg.base)
    base_cfg = json.loads((Path(cfg.base) / "config.json").read_text())
    t0 = time.perf_counter()
    if cfg.value == "branched":
        value, meta = _branched_value(cfg, policy, base_cfg["task"], run_dir)
    else:
        roll = base_rollouts(base_cfg["task"], policy, cfg.rollout_episodes, seed=cfg.seed + 10_000)
        demos = demo_episodes(base_cfg["demos"], policy) if base_cfg.get("demos") else []
        value = train_value(policy, roll + demos, cfg.iql, cfg.steps, cfg.seed, cfg.batch_size)
        meta = {"task": base_cfg["task"], "value": "iql", "rollout_env_steps": int(sum(len(e["obs"]) for e in roll)),
                "rollout_success": sum(bool(e["rew"].any()) for e in roll) / max(len(roll), 1),
                "demo_episodes": len(demos)}
    meta["train_wall_s"] = time.perf_counter() - t0
    save_checkpoint(run_dir / "value", value.state_dict(), meta)
    return policy, value, meta


def lift(task: str, base_run: Path, episodes: int, seed: int, work: Path, **overrides: Any) -> dict[str, Any]:
    """``benchmarks/residual_lift.py``'s re-ranking figures: a V-GPS run in ``work`` (``overrides``: VGPSConfig
    fields), then the held-out episodes. ``env_steps``: 0 policy-training steps (``value_env_steps``: the steps
    simulated for the value's data); ``make_policy``: a fresh re-ranking policy (robustness rows)."""
    from robot_rl.residual.rerank import RerankPolicy, evaluate_rerank

    base_task = json.loads((Path(base_run) / "config.json").read_text()).get("task")
    if base_task != task:
        raise ValueError(f"{base_run} is a base for {base_task}, not {task}")
    cfg = VGPSConfig.from_dict({**overrides, "base": str(base_run), "seed": seed})
    policy, value, meta = train_vgps(cfg, work)
    res = evaluate_rerank(task, policy, value, cfg.k, episodes, seed=seed)
    return {"success": res["success"], "env_steps": 0, "value_env_steps": meta["rollout_env_steps"],
            "value": cfg.value, "train_wall_s": round(meta["train_wall_s"], 1), "k": cfg.k,
            "make_policy": lambda: RerankPolicy(policy, value, cfg.k, seed)}


def _branched_value(cfg: VGPSConfig, policy: Any, task: str, run_dir: Path) -> tuple[Any, dict[str, Any]]:
    """Collect (or reuse, same options) the branched data in ``run_dir`` and fit the value to it."""
    from robot_rl.checkpoint import load_checkpoint, save_checkpoint
    from robot_rl.residual.branched import best_of_k_rollouts, fit_branch_value, relative_scores, stack_record

    b = cfg.branched
    options = {"base": cfg.base, "k": cfg.k, "episodes": b.episodes, "lookahead": b.lookahead, "seed": cfg.seed}
    path = run_dir / "branched_data"
    kept = load_checkpoint(path) if path.with_suffix(".json").is_file() else None
    if kept is not None and kept[1]["options"] == options:
        data, stats = kept[0], kept[1]["stats"]
        print(f"branched data from {path}.safetensors ({stats['states']} states)", flush=True)
    else:
        record: list = []
        col = best_of_k_rollouts(policy, task, b.episodes, cfg.k, b.lookahead, cfg.seed, cfg.seed + 10_000, record)
        data = stack_record(record)
        stats = {"states": len(data["scores"]), "env_steps_simulated": col["env_steps_simulated"],
                 "best_of_k_success": col["success"], "collect_wall_s": col["wall_s"]}
        save_checkpoint(path, data, {"options": options, "stats": stats})
    rel = relative_scores(data)
    value = fit_branch_value(policy, rel, b, cfg.steps, cfg.seed, cfg.batch_size)
    return value, {"task": task, "value": "branched", "rollout_env_steps": stats["env_steps_simulated"],
                   "branched_states": stats["states"], "mixed_fraction": round(rel["mixed"].mean().item(), 4),
                   "best_of_k_success_train": stats["best_of_k_success"], "collect_wall_s": stats["collect_wall_s"]}


def load_vgps(run_dir: str | Path) -> tuple[VGPSConfig, Any, Any, dict[str, Any]]:
    """``(config, base policy, value in eval mode, value metadata)`` of a V-GPS run."""
    from robot_rl.checkpoint import load_checkpoint
    from robot_rl.residual.branched import BranchValue
    from robot_rl.residual.value import ChunkValue
    from robot_rl.runners.bc import load_policy

    cfg = VGPSConfig.from_dict(json.loads((Path(run_dir) / "config.json").read_text()))
    policy, _ = load_policy(cfg.base)
    tensors, meta = load_checkpoint(Path(run_dir) / "value")
    to, n = policy.n_obs_steps, policy.n_action_steps
    if cfg.value == "branched":
        value = BranchValue(cfg.branched, to * policy.obs_dim, n * policy.act_dim)
    else:
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
    pairs = list(zip(base["episode_success"], rer["episode_success"], strict=True))
    summary = {"task": meta["task"], "episodes": n, "seed": rer["seed"], "k": k, "value": cfg.value,
               "base_success": base["success"], "rerank_success": rer["success"],
               "gained": sum(r and not b for b, r in pairs), "lost": sum(b and not r for b, r in pairs),
               "base_mean_length": base["mean_episode_length"],
               "rerank_mean_length": rer["mean_episode_length"], "value_rollout_env_steps": meta["rollout_env_steps"]}
    atomic_write_json(run_dir / "eval.json", summary)
    atomic_write_text(run_dir / "report.md", "\n".join([
        f"# Evaluation of `{run_dir}`", "",
        f"Value-guided re-ranking of `{cfg.base}` (task `{meta['task']}`): {k} chunks sampled where one is due, "
        f"{VALUE_WORDS[cfg.value]} picks one; {n} held-out episodes from seed {rer['seed']}, same base noise "
        f"(re-ranking succeeds where the base fails in {summary['gained']}, fails where it succeeds in "
        f"{summary['lost']}).", "",
        "| policy | success | mean length |", "|---|---:|---:|",
        f"| base | {base['success']:.1%} | {base['mean_episode_length']:.1f} |",
        f"| base + re-ranking (K={k}) | {rer['success']:.1%} | {rer['mean_episode_length']:.1f} |", ""]))
    summary["report"] = str(run_dir / "report.md")
    summary["headline"] = {key: summary[key] for key in ("base_success", "rerank_success", "gained", "lost", "k")}
    return summary
