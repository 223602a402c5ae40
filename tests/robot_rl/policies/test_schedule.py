"""Noise schedule and DDIM maths against values computed by hand; normaliser round trip; EMA decay."""

import math

import numpy as np
import pytest
import torch

from robot_rl.policies.diffusion import DiffusionConfig, DiffusionPolicy, MinMaxNormalizer, schedule
from robot_rl.policies.ema import ema_decay


def _f(t: float) -> float:
    return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2


def test_squaredcos_alphas_telescope_to_the_cosine():
    ab = schedule.alphas_cumprod(schedule.betas_for(100, "squaredcos_cap_v2"))
    # prod (1 - beta_i) = f((t + 1) / T) / f(0) while no beta is capped
    for t in (0, 1, 10, 50, 98):
        assert ab[t].item() == pytest.approx(_f((t + 1) / 100) / _f(0), rel=1e-12)
    assert ab[0].item() == pytest.approx(0.999369, abs=1e-6)  # ~(1 - 0.028050^2) / (1 - 0.012467^2)
    betas = schedule.betas_for(100, "squaredcos_cap_v2")
    assert betas[-1].item() == 0.999  # f(1) = 0: the cap


def test_linear_schedule_endpoints():
    b = schedule.betas_for(100, "linear")
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)
    with pytest.raises(ValueError, match="unknown beta schedule"):
        schedule.betas_for(10, "cosine")


def test_ddim_timesteps_leading():
    assert schedule.ddim_timesteps(100, 10) == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert schedule.ddim_timesteps(100, 4) == [75, 50, 25, 0]


def test_one_ddim_step_by_hand():
    x, eps = torch.tensor([1.0]), torch.tensor([0.5])
    # alpha_t 0.64 (sqrt 0.8, sqrt(1-a) 0.6), alpha_prev 0.81 (sqrt 0.9)
    x0 = (1.0 - 0.6 * 0.5) / 0.8
    want = 0.9 * x0 + math.sqrt(0.19) * 0.5
    assert schedule.ddim_step(eps, x, 0.64, 0.81, "epsilon", None).item() == pytest.approx(want, abs=1e-6)
    # sample prediction: eps = (x - 0.8 x0) / 0.6 = 1
    want = 0.9 * 0.5 + math.sqrt(0.19) * 1.0
    assert schedule.ddim_step(torch.tensor([0.5]), x, 0.64, 0.81, "sample", None).item() == pytest.approx(want)


def test_x0_clipping():
    # x0 = 2 / 0.8 = 2.5, clipped to 1; eps stays 0 (diffusers): x_prev = 0.9 * 1
    out = schedule.ddim_step(torch.tensor([0.0]), torch.tensor([2.0]), 0.64, 0.81, "epsilon", 1.0)
    assert out.item() == pytest.approx(0.9)
    out = schedule.ddim_step(torch.tensor([0.0]), torch.tensor([2.0]), 0.64, 0.81, "epsilon", None)
    assert out.item() == pytest.approx(0.9 * 2.5)


class _Oracle(torch.nn.Module):
    """Predicts the clean sample c whatever the input: DDIM must land exactly on c."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x, t, cond):
        return torch.full_like(x, self.c)


def test_sampler_lands_on_the_predicted_sample_and_unnormalises():
    cfg = DiffusionConfig(prediction_type="sample", denoiser="mlp", mlp_hidden=(8,), use_ema=False, horizon=4,
                          n_action_steps=2, num_inference_steps=5)
    act_norm = MinMaxNormalizer(np.array([0.0, -2.0]), np.array([2.0, 2.0]))
    pol = DiffusionPolicy(cfg, obs_dim=3, act_dim=2, act_norm=act_norm)
    noise = torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(0))
    out = pol.sample(torch.zeros(2, 2, 3), noise, denoiser=_Oracle(0.5))
    # normalised 0.5 -> raw mid + 0.5 * half = (1.5, 1.0)
    assert torch.allclose(out, torch.tensor([1.5, 1.0]).expand(2, 4, 2), atol=1e-6)
    out = pol.sample(torch.zeros(2, 2, 3), noise, denoiser=_Oracle(3.0))  # clipped to 1 -> (2, 2)
    assert torch.allclose(out, torch.tensor([2.0, 2.0]).expand(2, 4, 2), atol=1e-6)


def test_normalizer_round_trip_and_range():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (100, 4)).astype(np.float32)
    x[:, 3] = 7.0  # a constant dimension is only centred
    norm = MinMaxNormalizer(x.min(0), x.max(0))
    t = torch.as_tensor(x)
    y = norm.normalize(t)
    assert y[:, :3].min().item() == pytest.approx(-1, abs=1e-6) and y[:, :3].max().item() == pytest.approx(1, abs=1e-6)
    assert torch.all(y[:, 3] == 0)
    assert torch.allclose(norm.unnormalize(y), t, atol=1e-5)
    with pytest.raises(ValueError, match="max >= min"):
        MinMaxNormalizer(np.ones(2), np.zeros(2))


def test_ema_decay_schedule():
    assert ema_decay(0) == 0.0
    assert ema_decay(1) == pytest.approx(1 - 2 ** -0.75)
    assert ema_decay(10) == pytest.approx(1 - 11 ** -0.75)
    assert ema_decay(10**9) == 0.9999


def test_unet_shapes_and_config_checks():
    cfg = DiffusionConfig()
    pol = DiffusionPolicy(cfg, obs_dim=5, act_dim=3)
    obs = torch.randn(4, 2, 5)
    assert pol.predict_chunk(obs, torch.Generator().manual_seed(0)).shape == (4, 16, 3)
    loss = pol.compute_loss(obs, torch.randn(4, 16, 3), torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    with pytest.raises(ValueError, match="divisible"):
        DiffusionPolicy(DiffusionConfig(horizon=10), 5, 3)
    with pytest.raises(ValueError, match="n_action_steps"):
        DiffusionPolicy(DiffusionConfig(n_action_steps=20), 5, 3)
