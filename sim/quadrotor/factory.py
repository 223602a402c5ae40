"""Pick an implementation of the L2F hover task: the plain-torch reference or the fused numba kernel."""

from __future__ import annotations

from typing import Literal

import torch

from sim.core import BatchedEnv
from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.diff_fused import DiffFusedHoverEnv
from sim.quadrotor.engines import ENGINE_BACKENDS, make_engine_env
from sim.quadrotor.fused import FusedQuadrotorHoverEnv, fused_unsupported_reason
from sim.quadrotor.task import QuadrotorHoverEnv

HoverImpl = Literal["torch", "fused", "mujoco", "pybullet", "auto"]


def make_hover_env(cfg: QuadrotorTaskConfig | None = None, seed: int = 0, impl: HoverImpl = "auto",
                   differentiable: bool = False) -> BatchedEnv:
    """Build the hover env with implementation ``impl``.

    ``"torch"``: :class:`QuadrotorHoverEnv` (CPU or CUDA, every option, differentiable); ``"fused"``:
    :class:`FusedQuadrotorHoverEnv` (CPU only, raises ValueError for unsupported options); ``"auto"``: fused
    when ``cfg.device`` is the CPU and the config is supported, else torch. With ``differentiable`` the fused
    choice is :class:`~sim.quadrotor.diff_fused.DiffFusedHoverEnv` (a step that torch autograd differentiates,
    as the torch env's), for analytic policy gradients. ``"mujoco"`` / ``"pybullet"``: the same task with that
    engine's physics (:mod:`sim.quadrotor.engine_env`; CPU, motor level, not differentiable).
    """
    cfg = cfg if cfg is not None else QuadrotorTaskConfig()
    fused_cls = DiffFusedHoverEnv if differentiable else FusedQuadrotorHoverEnv
    if impl == "torch":
        return QuadrotorHoverEnv(cfg, seed=seed)
    if impl == "fused":
        return fused_cls(cfg, seed=seed)
    if impl in ENGINE_BACKENDS:
        if differentiable:
            raise ValueError(f"the {impl} backend is not differentiable (apg needs impl='torch' or 'fused')")
        return make_engine_env(cfg, seed=seed, impl=impl)
    if impl == "auto":
        cpu = torch.device(cfg.device).type == "cpu"
        if cpu and fused_unsupported_reason(cfg) is None:
            return fused_cls(cfg, seed=seed)
        return QuadrotorHoverEnv(cfg, seed=seed)
    raise ValueError(f"unknown hover env implementation {impl!r}; choose 'torch', 'fused', 'mujoco', 'pybullet' "
                     "or 'auto'")
