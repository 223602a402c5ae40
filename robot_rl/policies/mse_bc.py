"""MSE behaviour-cloning baseline: an MLP from the observation history to the whole action chunk.

Same inputs, normalisation and chunking as the diffusion policy, so the two differ only in the action model:
a regression to the conditional mean (which averages distinct modes) versus a sampler of the distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from robot_rl.policies.diffusion.processor_diffusion import MinMaxNormalizer


@dataclass
class MSEBCConfig:
    """MSE-BC baseline settings (horizons as in :class:`~robot_rl.policies.diffusion.DiffusionConfig`)."""

    n_obs_steps: int = 2
    """Observation history length."""
    horizon: int = 16
    """Actions predicted per chunk."""
    n_action_steps: int = 8
    """Actions executed from each chunk before replanning."""
    hidden: tuple[int, ...] = (256, 256, 256)
    """MLP hidden widths (Mish activations)."""


class MSEBCPolicy(nn.Module):
    """``obs`` ``[B, n_obs_steps, obs_dim]`` -> chunk ``[B, horizon, act_dim]`` (raw units), trained with MSE in
    normalised action space; the output is squashed into [-1, 1] there (the range of the demonstrations)."""

    def __init__(self, cfg: MSEBCConfig, obs_dim: int, act_dim: int, obs_norm: MinMaxNormalizer | None = None,
                 act_norm: MinMaxNormalizer | None = None) -> None:
        super().__init__()
        if not 1 <= cfg.n_action_steps <= cfg.horizon:
            raise ValueError(f"n_action_steps {cfg.n_action_steps} must be within 1..horizon ({cfg.horizon})")
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.n_obs_steps, self.horizon, self.n_action_steps = cfg.n_obs_steps, cfg.horizon, cfg.n_action_steps
        self.obs_norm = obs_norm or MinMaxNormalizer.identity(obs_dim)
        self.act_norm = act_norm or MinMaxNormalizer.identity(act_dim)
        self.net = _mlp(cfg.n_obs_steps * obs_dim, cfg.hidden, cfg.horizon * act_dim)

    def _normalised_chunk(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.net(self.obs_norm.normalize(obs).flatten(1))
        return torch.tanh(out).view(obs.shape[0], self.horizon, self.act_dim)

    def compute_loss(self, obs: torch.Tensor, actions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # atanh-free target: the normalised demonstrations lie in [-1, 1] and tanh reaches them closely enough
        return nn.functional.mse_loss(self._normalised_chunk(obs), self.act_norm.normalize(actions))

    def after_optimizer_step(self) -> None:
        pass

    @torch.no_grad()
    def predict_chunk(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.act_norm.unnormalize(self._normalised_chunk(obs))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {f"policy.{k}": v for k, v in self.state_dict().items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], ema_step: int = 0) -> None:
        self.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("policy.")})


def _mlp(inp: int, hidden: Sequence[int], out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(inp, h), nn.Mish()]
        inp = h
    layers.append(nn.Linear(inp, out))
    return nn.Sequential(*layers)
