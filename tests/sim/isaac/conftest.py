"""Shared set-up of the Isaac Lab tests (``make test-isaac``): assets, the module's env and small PPO configs.

Each test module still begins with ``pytest.importorskip("isaaclab", reason=SKIP_REASON)``: its own imports need
Isaac Lab at collection, so the skip must come before them. Nothing here imports Isaac Lab at import time (this
file is loaded by every pytest run, also in the main venv where the modules skip).

Isaac Lab holds one simulation per process: the ``env`` fixture builds the module's env from the module's
``TASK``, ``NUM_ENVS``, ``ENV_SEED`` (and optional ``OVERRIDES``) and closes it when the module ends, so the
next module (or a test that closes it early and builds its own) can build another.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

SKIP_REASON = "isaaclab is not installed (Python 3.12 venv: make test-isaac)"


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> Path:
    """The project's USD assets (cart-pole, Crazyflie, Panda), written once for the session (no downloads)."""
    from sim.isaac.assets import write_asset_root

    return write_asset_root(tmp_path_factory.mktemp("isaac_assets"))


def task_config(task: str, assets: Path, num_envs: int, overrides: Sequence[str] = ()) -> Any:
    """The registered Isaac task's config: ``num_envs`` envs on the CPU with the written assets."""
    from sim.registry import get_task

    return get_task(task).config_cls(num_envs=num_envs, device="cpu", asset_root=str(assets),
                                     overrides=list(overrides))


def ppo_config(task: str, assets: Path, num_envs: int, preset: str, seed: int, steps_per_env: int = 16,
               overrides: Sequence[str] = ()) -> Any:
    """A small PPO :class:`TrainConfig` for ``task``: 32x32 actor and critic, ``steps_per_env`` per iteration."""
    from robot_rl.config import TrainConfig

    cfg = TrainConfig.for_task(task, preset=preset, algorithm="ppo", seed=seed)
    cfg.task = task_config(task, assets, num_envs, overrides)
    cfg.ppo.actor_hidden = cfg.ppo.critic_hidden = (32, 32)
    cfg.on_policy.steps_per_env = steps_per_env
    return cfg


@pytest.fixture(scope="module")
def env(request, assets):
    """The module's env (``TASK``, ``NUM_ENVS``, ``ENV_SEED``, optional ``OVERRIDES``), closed after the module."""
    from sim.registry import get_task

    mod = request.module
    cfg = task_config(mod.TASK, assets, mod.NUM_ENVS, getattr(mod, "OVERRIDES", ()))
    env = get_task(mod.TASK).make_env(cfg, seed=mod.ENV_SEED)
    yield env
    env.close()
