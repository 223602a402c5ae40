"""Third-party physics engines for the hover task, imported only when asked for (MuJoCo and PyBullet are extras)."""

from __future__ import annotations

import importlib

from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.engine_env import EngineHoverEnv

ENGINE_BACKENDS: dict[str, tuple[str, str, str]] = {
    "mujoco": ("sim.quadrotor.mujoco_backend", "MujocoHoverEnv", "mujoco"),
    "pybullet": ("sim.quadrotor.pybullet_backend", "PybulletHoverEnv", "pybullet"),
}
"""Backend name -> (module, class, pip package)."""


def make_engine_env(cfg: QuadrotorTaskConfig, seed: int = 0, impl: str = "mujoco", **kwargs) -> EngineHoverEnv:
    """The hover env on engine ``impl`` (``kwargs``: ``substeps``, ``target_height``); a one-line error names the
    extra to install when the engine is missing."""
    if impl not in ENGINE_BACKENDS:
        raise ValueError(f"unknown engine backend {impl!r}; choose from {', '.join(ENGINE_BACKENDS)}")
    module, cls, package = ENGINE_BACKENDS[impl]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != package:
            raise
        raise ModuleNotFoundError(f"the {impl} backend needs the {package} package: pip install -e '.[backends]'",
                                  name=package) from None
    return getattr(mod, cls)(cfg, seed=seed, **kwargs)
