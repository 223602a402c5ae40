"""Configuration of the diffusion policy (Chi et al. 2023; LeRobot's ``DiffusionConfig``), CPU-sized defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class DiffusionConfig:
    """Diffusion policy hyper-parameters. Defaults follow the reference except the network width (CPU)."""

    n_obs_steps: int = 2
    """Observation history length fed to the denoiser (current step and the ones before it)."""
    horizon: int = 16
    """Actions predicted per chunk (the first one belongs to the current step)."""
    n_action_steps: int = 8
    """Actions executed from each chunk before replanning."""
    denoiser: Literal["unet", "mlp"] = "unet"
    """``unet``: 1-D temporal U-Net with FiLM conditioning; ``mlp``: a plain MLP on the flattened chunk."""
    down_dims: tuple[int, ...] = (32, 64, 128)
    """U-Net channel widths per level (the reference uses 256/512/1024; horizon must divide by
    2 ** (len(down_dims) - 1))."""
    kernel_size: int = 5
    """U-Net temporal convolution kernel size."""
    n_groups: int = 8
    """GroupNorm groups in the U-Net blocks."""
    step_embed_dim: int = 64
    """Size of the sinusoidal diffusion-step embedding."""
    mlp_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the MLP denoiser."""
    objective: Literal["ddpm", "flow"] = "ddpm"
    """``ddpm``: denoising diffusion (noise schedule below, DDIM sampler); ``flow``: flow matching (rectified
    flow, straight paths from noise to data, Euler sampler), the few-step variant."""
    num_train_timesteps: int = 100
    """DDPM training steps T."""
    beta_schedule: Literal["squaredcos_cap_v2", "linear"] = "squaredcos_cap_v2"
    """Noise schedule (diffusers' names); ``linear`` uses ``beta_start``..``beta_end``."""
    beta_start: float = 1e-4
    """First beta of the linear schedule (ignored by squaredcos_cap_v2)."""
    beta_end: float = 0.02
    """Last beta of the linear schedule (ignored by squaredcos_cap_v2)."""
    prediction_type: Literal["epsilon", "sample"] = "epsilon"
    """What the denoiser predicts: the noise, or the clean action chunk."""
    clip_sample: bool = True
    """Clip the predicted clean chunk to [-clip_sample_range, clip_sample_range] in every sampler step."""
    clip_sample_range: float = 1.0
    """Clipping bound (actions are normalised to [-1, 1])."""
    num_inference_steps: int = 10
    """Sampler steps at inference and in the exported sampler (DDIM steps, or Euler steps of the flow)."""
    use_ema: bool = True
    """Keep an exponential moving average of the weights; evaluation and export use it."""
    ema_inv_gamma: float = 1.0
    """EMA warm-up: decay = 1 - (1 + step / inv_gamma) ** -power."""
    ema_power: float = 0.75
    """EMA warm-up power."""
    ema_max_decay: float = 0.9999
    """Upper bound of the EMA decay."""

    def validate(self) -> DiffusionConfig:
        """Raise ``ValueError`` with a one-line reason if the settings cannot work together."""
        if not 1 <= self.n_action_steps <= self.horizon:
            raise ValueError(f"n_action_steps {self.n_action_steps} must be within 1..horizon ({self.horizon})")
        if self.n_obs_steps < 1:
            raise ValueError("n_obs_steps must be at least 1")
        if self.denoiser == "unet":
            div = 2 ** (len(self.down_dims) - 1)
            if self.horizon % div:
                raise ValueError(f"horizon {self.horizon} must be divisible by {div} for down_dims {self.down_dims}")
            if any(d % self.n_groups for d in self.down_dims):
                raise ValueError(f"every down_dims entry must be divisible by n_groups {self.n_groups}")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be within 1..{self.num_train_timesteps}")
        return self
