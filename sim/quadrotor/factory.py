"""Pick an implementation of the L2F hover task: the plain-torch reference or the fused numba kernel."""

from __future__ import annotations

from typing import Literal

import torch

from sim.core import BatchedEnv
from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.fused import FusedQuadrotorHoverEnv, fused_unsupported_reason
from sim.quadrotor.task import QuadrotorHoverEnv

HoverImpl = Literal["torch", "fused", "auto"]


def make_hover_env(cfg: QuadrotorTaskConfig | None = None, seed: int = 0, impl: HoverImpl = "auto") -> BatchedEnv:
    """Build the hover env with implementation ``impl``.

    ``"torch"``: :class:`QuadrotorHoverEnv` (CPU or CUDA, every option); ``"fused"``:
    :class:`FusedQuadrotorHoverEnv` (CPU only, raises ValueError for unsupported options); ``"auto"``: fused
    when ``cfg.device`` is the CPU and the config is supported, else torch.
    """
    cfg = cfg if cfg is not None else QuadrotorTaskConfig()
    if impl == "torch":
        return QuadrotorHoverEnv(cfg, seed=seed)
    if impl == "fused":
        return FusedQuadrotorHoverEnv(cfg, seed=seed)
    if impl == "auto":
        cpu = torch.device(cfg.device).type == "cpu"
        if cpu and fused_unsupported_reason(cfg) is None:
            return FusedQuadrotorHoverEnv(cfg, seed=seed)
        return QuadrotorHoverEnv(cfg, seed=seed)
    raise ValueError(f"unknown hover env implementation {impl!r}; choose 'torch', 'fused' or 'auto'")
