"""Pick an implementation of the L2F hover task: the plain-torch reference or the fused numba kernel."""

from __future__ import annotations

from typing import Literal

import torch

from sim.core import BatchedEnv
from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.diff_fused import DiffFusedHoverEnv
from sim.quadrotor.fused import FusedQuadrotorHoverEnv, fused_unsupported_reason
from sim.quadrotor.task import QuadrotorHoverEnv

HoverImpl = Literal["torch", "fused", "auto"]


def make_hover_env(cfg: QuadrotorTaskConfig | None = None, seed: int = 0, impl: HoverImpl = "auto",
                   differentiable: bool = False) -> BatchedEnv:
    """Build the hover env with implementation ``impl``.

    ``"torch"``: :class:`QuadrotorHoverEnv` (CPU or CUDA, every option, differentiable); ``"fused"``:
    :class:`FusedQuadrotorHoverEnv` (CPU only, raises ValueError for unsupported options); ``"auto"``: fused
    when ``cfg.device`` is the CPU and the config is supported, else torch. With ``differentiable`` the fused
    choice is :class:`~sim.quadrotor.diff_fused.DiffFusedHoverEnv` (a step that torch autograd differentiates,
    as the torch env's), for analytic policy gradients.
    """
    cfg = cfg if cfg is not None else QuadrotorTaskConfig()
    fused_cls = DiffFusedHoverEnv if differentiable else FusedQuadrotorHoverEnv
    if impl == "torch":
        return QuadrotorHoverEnv(cfg, seed=seed)
    if impl == "fused":
        return fused_cls(cfg, seed=seed)
    if impl == "auto":
        cpu = torch.device(cfg.device).type == "cpu"
        if cpu and fused_unsupported_reason(cfg) is None:
            return fused_cls(cfg, seed=seed)
        return QuadrotorHoverEnv(cfg, seed=seed)
    raise ValueError(f"unknown hover env implementation {impl!r}; choose 'torch', 'fused' or 'auto'")
