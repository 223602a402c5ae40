"""The diffusion policy: DDPM training loss and the DDIM sampler over a denoiser, with normalisation.

:meth:`DiffusionPolicy.sample` is the whole deployment path (normalise the observation history, run the DDIM
steps from caller-given noise, unnormalise the chunk); the ONNX export traces exactly this method, so the
exported sampler and the torch one share one implementation.
"""

from __future__ import annotations

import torch
from torch import nn

from robot_rl.policies.diffusion import schedule
from robot_rl.policies.diffusion.configuration_diffusion import DiffusionConfig
from robot_rl.policies.diffusion.denoisers import MLPDenoiser, UNet1D
from robot_rl.policies.diffusion.processor_diffusion import MinMaxNormalizer
from robot_rl.policies.ema import EMA


class DiffusionPolicy(nn.Module):
    """Diffusion policy on low-dimensional observations; ``obs`` ``[B, n_obs_steps, obs_dim]`` in raw units."""

    def __init__(self, cfg: DiffusionConfig, obs_dim: int, act_dim: int,
                 obs_norm: MinMaxNormalizer | None = None, act_norm: MinMaxNormalizer | None = None) -> None:
        super().__init__()
        self.cfg = cfg.validate()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.n_obs_steps, self.horizon, self.n_action_steps = cfg.n_obs_steps, cfg.horizon, cfg.n_action_steps
        self.obs_norm = obs_norm or MinMaxNormalizer.identity(obs_dim)
        self.act_norm = act_norm or MinMaxNormalizer.identity(act_dim)
        if self.obs_norm.dim != obs_dim or self.act_norm.dim != act_dim:
            raise ValueError(f"normalisers have {self.obs_norm.dim}/{self.act_norm.dim} dims, the policy "
                             f"{obs_dim}/{act_dim}")
        cond = cfg.n_obs_steps * obs_dim
        if cfg.denoiser == "unet":
            self.denoiser: nn.Module = UNet1D(act_dim, cond, cfg.down_dims, cfg.kernel_size, cfg.n_groups,
                                              cfg.step_embed_dim)
        else:
            self.denoiser = MLPDenoiser(act_dim, cfg.horizon, cond, cfg.mlp_hidden, cfg.step_embed_dim)
        ab = schedule.alphas_cumprod(schedule.betas_for(cfg.num_train_timesteps, cfg.beta_schedule,
                                                        cfg.beta_start, cfg.beta_end))
        self.register_buffer("alphas_cumprod", ab, persistent=False)  # float64: derived from the config
        self.ema = EMA(self.denoiser, cfg.ema_inv_gamma, cfg.ema_power, cfg.ema_max_decay) if cfg.use_ema else None

    # ------------------------------------------------------------------ training
    def compute_loss(self, obs: torch.Tensor, actions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """DDPM loss: MSE between the denoiser output and the noise (epsilon) or the clean chunk (sample);
        flow matching: MSE to the velocity (data - noise) at a uniform time on the straight path."""
        x0 = self.act_norm.normalize(actions)
        cond = self.obs_norm.normalize(obs).flatten(1)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        if self.cfg.objective == "flow":
            s = torch.rand((x0.shape[0], 1, 1), generator=generator, device=x0.device)
            x_s = (1 - s) * noise + s * x0
            v = self.denoiser(x_s, s.flatten() * self.cfg.num_train_timesteps, cond)
            return nn.functional.mse_loss(v, x0 - noise)
        t = torch.randint(0, self.cfg.num_train_timesteps, (x0.shape[0],), generator=generator, device=x0.device)
        x_t = schedule.add_noise(x0, noise, t, self.alphas_cumprod)
        target = noise if self.cfg.prediction_type == "epsilon" else x0
        return nn.functional.mse_loss(self.denoiser(x_t, t, cond), target)

    def after_optimizer_step(self) -> None:
        if self.ema is not None:
            self.ema.update(self.denoiser)

    def eval_denoiser(self) -> nn.Module:
        """The weights evaluation and export use: the EMA copy when enabled."""
        return self.ema.averaged if self.ema is not None else self.denoiser

    # ------------------------------------------------------------------ sampling
    def sample(self, obs: torch.Tensor, noise: torch.Tensor, steps: int | None = None,
               denoiser: nn.Module | None = None) -> torch.Tensor:
        """DDIM (eta 0) or flow Euler steps from ``noise`` ``[B, H, A]`` (``steps``: default the config's);
        raw chunk out."""
        cfg = self.cfg
        net = denoiser if denoiser is not None else self.eval_denoiser()
        cond = self.obs_norm.normalize(obs).flatten(1)
        if cfg.objective == "flow":
            return self.act_norm.unnormalize(self._flow_euler(net, noise, cond, steps or cfg.num_inference_steps))
        ab = self.alphas_cumprod.tolist()
        timesteps = schedule.ddim_timesteps(cfg.num_train_timesteps, steps or cfg.num_inference_steps)
        clip = cfg.clip_sample_range if cfg.clip_sample else None
        x = noise
        for i, t in enumerate(timesteps):
            prev = ab[timesteps[i + 1]] if i + 1 < len(timesteps) else 1.0
            t_vec = torch.full((x.shape[0],), float(t), device=x.device)
            x = schedule.ddim_step(net(x, t_vec, cond), x, ab[t], prev, cfg.prediction_type, clip)
        return self.act_norm.unnormalize(x)

    def _flow_euler(self, net: nn.Module, x: torch.Tensor, cond: torch.Tensor, steps: int) -> torch.Tensor:
        for k in range(steps):
            s = torch.full((x.shape[0],), k / steps * self.cfg.num_train_timesteps, device=x.device)
            x = x + net(x, s, cond) / steps
        if self.cfg.clip_sample:
            x = x.clamp(-self.cfg.clip_sample_range, self.cfg.clip_sample_range)
        return x

    @property
    def sampler_name(self) -> str:
        return "flow_euler" if self.cfg.objective == "flow" else "ddim"

    @torch.no_grad()
    def predict_chunk(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn((obs.shape[0], self.horizon, self.act_dim), generator=generator, device=obs.device)
        return self.sample(obs, noise)

    # ------------------------------------------------------------------ state
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything a checkpoint needs (weights, normalisers, EMA weights)."""
        out = {f"policy.{k}": v for k, v in self.state_dict().items()}
        if self.ema is not None:
            out.update({f"ema.{k}": v for k, v in self.ema.averaged.state_dict().items()})
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], ema_step: int = 0) -> None:
        self.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("policy.")})
        if self.ema is not None:
            self.ema.averaged.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
            self.ema.step = ema_step
