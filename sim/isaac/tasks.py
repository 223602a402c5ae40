"""``isaac:<gym id>`` tasks: Isaac Lab's registered tasks, built offline and wrapped by :class:`IsaacLabEnv`.

:func:`register_isaac_task` is what :mod:`sim.isaac.catalog` declares for the ``isaac:`` names; it imports Isaac
Lab (``isaaclab_tasks`` registers the gymnasium ids) and registers the task with :class:`IsaacTaskConfig`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import isaaclab_tasks  # noqa: F401  (registers Isaac Lab's gymnasium ids)
from isaaclab.utils.assets import NUCLEUS_ASSET_ROOT_DIR
from isaaclab_tasks.utils.parse_cfg import parse_env_cfg

from sim.evaluation import SuccessEvalConfig, success_protocol
from sim.isaac import crazyflie, panda_reach  # noqa: F401  (register RobotRL-*-Direct with gymnasium)
from sim.isaac.adapter import IsaacLabEnv
from sim.isaac.catalog import ISAAC_PREFIX
from sim.registry import register_task

#: The one Isaac Lab simulation this process holds (Isaac Lab keeps a single simulation context per process).
_open: list[IsaacLabEnv] = []


@dataclass
class IsaacTaskConfig:
    """Options of an ``isaac:<gym id>`` task (the rest is the Isaac Lab task's own registered config)."""

    num_envs: int = 64
    device: str = "cpu"
    """``cpu`` or ``cuda`` (``cuda:0``): Isaac Lab's simulation device (Newton runs on both)."""
    asset_root: str = ""
    """A directory in Isaac Sim's asset-root layout (``Isaac/IsaacLab/Robots/...``): every USD file the task
    would fetch from NVIDIA's asset server is read from there instead (``python -m sim.isaac.assets DIR`` writes
    the project's own assets; a local mirror of NVIDIA's works too). Empty: Isaac Lab's asset root (network)."""
    overrides: list[str] = field(default_factory=list)
    """Isaac Lab's Hydra-style ``key=value`` overrides of the task's config, e.g. ``physics=newton_mjwarp``."""


@dataclass
class IsaacEvalConfig(SuccessEvalConfig):
    """Success-rate evaluation of Isaac Lab tasks: success = the episode ran to its time-out (no termination)."""

    episodes: int = 64


def _walk(node: Any, seen: set[int]):
    """Every (owner, attribute) of an Isaac Lab config tree whose attribute is a ``usd_path`` string."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, dict):
        children = list(node.values())
    elif isinstance(node, list | tuple):
        children = list(node)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        if isinstance(getattr(node, "usd_path", None), str):
            yield node
        children = [getattr(node, f.name, None) for f in dataclasses.fields(node)]
    else:
        return
    for child in children:
        yield from _walk(child, seen)


def redirect_assets(env_cfg: Any, asset_root: str) -> list[str]:
    """Point every ``usd_path`` below Isaac Lab's asset root at the same relative path below ``asset_root``;
    returns the redirected paths. A missing file is a one-line error naming all of them."""
    root = Path(asset_root).resolve()
    redirected, missing = [], []
    for spawn in _walk(env_cfg, set()):
        if spawn.usd_path.startswith(NUCLEUS_ASSET_ROOT_DIR + "/"):
            local = root / spawn.usd_path[len(NUCLEUS_ASSET_ROOT_DIR) + 1:]
            spawn.usd_path = str(local)
            redirected.append(spawn.usd_path)
            if not local.is_file():
                missing.append(str(local.relative_to(root)))
    if missing:
        raise ValueError(f"asset_root {root} lacks {', '.join(sorted(set(missing)))} (write the project's assets "
                         f"with `python -m sim.isaac.assets {root}`, or mirror Isaac Sim's assets there)")
    return redirected


def make_isaac_env(gym_id: str, cfg: IsaacTaskConfig, seed: int = 0) -> IsaacLabEnv:
    """Build Isaac Lab task ``gym_id`` with ``cfg`` (``compute_final_obs`` on) and wrap it."""
    _open[:] = [e for e in _open if e.env is not None]
    if _open:
        raise ValueError(f"an Isaac Lab env ({_open[0].task_name or 'unnamed'}) is still open in this process; "
                         "Isaac Lab runs one simulation per process: close it first (in-training evaluations, "
                         "--eval-every, need their own process: evaluate after training)")
    device = "cuda:0" if cfg.device == "cuda" else cfg.device
    env_cfg = parse_env_cfg(gym_id, device=device, num_envs=cfg.num_envs, overrides=list(cfg.overrides))
    env_cfg.seed = seed
    env_cfg.compute_final_obs = True
    if cfg.asset_root:
        redirect_assets(env_cfg, cfg.asset_root)
    env = IsaacLabEnv(gym.make(gym_id, cfg=env_cfg).unwrapped)
    _open.append(env)
    return env


def register_isaac_task(name: str) -> None:
    """Register ``isaac:<gym id>`` (called by the registry on the first lookup of that name)."""
    gym_id = name[len(ISAAC_PREFIX):]
    if gym_id not in gym.registry or "env_cfg_entry_point" not in gym.registry[gym_id].kwargs:
        known = sorted(k for k, v in gym.registry.items() if "env_cfg_entry_point" in v.kwargs
                       and k.startswith(("Isaac-", "RobotRL-")) and "Camera" not in k)
        raise ValueError(f"unknown Isaac Lab task {gym_id!r}; e.g. {', '.join(known[:12])}, ... "
                         f"({len(known)} Isaac-* tasks)")

    def factory(cfg: IsaacTaskConfig, seed: int = 0, impl: str = "default", differentiable: bool = False):
        return make_isaac_env(gym_id, cfg, seed)

    register_task(name, config_cls=IsaacTaskConfig, env_factory=factory, evaluation=success_protocol(IsaacEvalConfig),
                  description=f"Isaac Lab task {gym_id} (its registered config; assets from --task.asset-root)")
