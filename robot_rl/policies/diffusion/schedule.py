"""DDPM noise schedule (training) and the deterministic DDIM sampler step, as diffusers computes them.

``squaredcos_cap_v2`` is Nichol & Dhariwal's cosine schedule: alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2,
beta_i = min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), 0.999). DDIM (eta = 0) with ``leading`` spacing:
timesteps (S - 1 - k) * (T // S), the step before t = 0 uses alpha_bar = 1 (diffusers' ``set_alpha_to_one``).
As in diffusers, clipping changes the predicted clean sample but not the predicted noise.
"""

from __future__ import annotations

import math

import torch


def betas_for(num_steps: int, schedule: str, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Betas (float64) of a ``squaredcos_cap_v2`` or ``linear`` schedule with ``num_steps`` steps."""
    if schedule == "squaredcos_cap_v2":
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        return torch.tensor([min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), 0.999)
                             for i in range(num_steps)], dtype=torch.float64)
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    raise ValueError(f"unknown beta schedule {schedule!r} (squaredcos_cap_v2 or linear)")


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{i <= t} (1 - beta_i)."""
    return torch.cumprod(1.0 - betas, dim=0)


def ddim_timesteps(num_train: int, num_inference: int) -> list[int]:
    """DDIM timesteps, first to last (``leading`` spacing: 90, 80, ..., 0 for 100 / 10)."""
    ratio = num_train // num_inference
    return [k * ratio for k in range(num_inference)][::-1]


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Forward process q(x_t | x_0): sqrt(ab_t) x0 + sqrt(1 - ab_t) noise (``t`` per batch element)."""
    a = ab[t].to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def ddim_step(model_out: torch.Tensor, x_t: torch.Tensor, alpha_t: float, alpha_prev: float, prediction: str,
              clip: float | None) -> torch.Tensor:
    """One deterministic DDIM step x_t -> x_prev given alpha_bar at t and at the previous timestep."""
    sa, sb = math.sqrt(alpha_t), math.sqrt(1 - alpha_t)
    if prediction == "epsilon":
        eps = model_out
        x0 = (x_t - sb * eps) / sa
    elif prediction == "sample":
        x0 = model_out
        eps = (x_t - sa * x0) / sb
    else:
        raise ValueError(f"unknown prediction type {prediction!r}")
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    return math.sqrt(alpha_prev) * x0 + math.sqrt(1 - alpha_prev) * eps
