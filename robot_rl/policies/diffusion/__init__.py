"""Diffusion policy: configuration, model (denoisers + DDPM/DDIM), processor (min-max normalisation)."""

from robot_rl.policies.diffusion.configuration_diffusion import DiffusionConfig
from robot_rl.policies.diffusion.modeling_diffusion import DiffusionPolicy
from robot_rl.policies.diffusion.processor_diffusion import MinMaxNormalizer

__all__ = ["DiffusionConfig", "DiffusionPolicy", "MinMaxNormalizer"]
