"""A tiny bimodal 2-D task: from a position x, demonstrations go up or down (each half the time).

The diffusion policy must keep both modes (samples near +0.8 and near -0.8, in about equal numbers); the MSE
baseline regresses to their mean (about 0, a path no demonstration took).
"""

import numpy as np
import torch

from robot_rl.policies.diffusion import DiffusionConfig, DiffusionPolicy, MinMaxNormalizer
from robot_rl.policies.mse_bc import MSEBCConfig, MSEBCPolicy

H = 4


def _data(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = rng.uniform(-1, 1, (n, 1, 2)).astype(np.float32)
    side = rng.choice([-0.8, 0.8], size=(n, 1, 1)).astype(np.float32)
    ramp = np.linspace(0.25, 1.0, H, dtype=np.float32)[None, :, None]
    act = np.concatenate([np.repeat(x[:, :, :1], H, axis=1), side * ramp], axis=2)  # [n, H, 2]
    return torch.as_tensor(x), torch.as_tensor(act)


def _train(policy, obs, act, steps: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(steps):
        idx = torch.randint(0, len(obs), (128,), generator=gen)
        loss = policy.compute_loss(obs[idx], act[idx], gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        policy.after_optimizer_step()
    return policy


def test_diffusion_keeps_both_modes_and_mse_averages_them():
    torch.manual_seed(0)
    obs, act = _data(2048, np.random.default_rng(0))
    obs_norm = MinMaxNormalizer(np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    act_norm = MinMaxNormalizer(np.array([-1.0, -0.8]), np.array([1.0, 0.8]))
    cfg = DiffusionConfig(n_obs_steps=1, horizon=H, n_action_steps=2, denoiser="mlp", mlp_hidden=(96, 96),
                          step_embed_dim=32, use_ema=False, num_inference_steps=10)
    dp = _train(DiffusionPolicy(cfg, 2, 2, obs_norm, act_norm), obs, act, 1200)
    mse = _train(MSEBCPolicy(MSEBCConfig(n_obs_steps=1, horizon=H, n_action_steps=2, hidden=(128, 128)), 2, 2,
                             obs_norm, act_norm), obs, act, 300)
    test_obs = torch.as_tensor(np.random.default_rng(1).uniform(-1, 1, (400, 1, 2)).astype(np.float32))
    final = dp.predict_chunk(test_obs, torch.Generator().manual_seed(2))[:, -1, 1]  # last step's y
    up, down = (final > 0.5).float().mean().item(), (final < -0.5).float().mean().item()
    assert up > 0.3 and down > 0.3 and up + down > 0.9, (up, down)
    # the x coordinate is followed too
    x_err = (dp.predict_chunk(test_obs, torch.Generator().manual_seed(3))[:, :, 0] - test_obs[:, :, 0]).abs()
    assert x_err.median().item() < 0.1
    mse_final = mse.predict_chunk(test_obs)[:, -1, 1]
    assert mse_final.abs().mean().item() < 0.2, mse_final.abs().mean().item()  # the mean of +-0.8


def test_flow_matching_few_step_keeps_both_modes():
    """5 Euler steps: fewer blur the modes (2 steps: 67 % of samples beyond +-0.5 here)."""
    torch.manual_seed(0)
    obs, act = _data(2048, np.random.default_rng(0))
    obs_norm = MinMaxNormalizer(np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    act_norm = MinMaxNormalizer(np.array([-1.0, -0.8]), np.array([1.0, 0.8]))
    cfg = DiffusionConfig(n_obs_steps=1, horizon=H, n_action_steps=2, denoiser="mlp", mlp_hidden=(96, 96),
                          step_embed_dim=32, use_ema=False, objective="flow", num_inference_steps=5)
    fm = _train(DiffusionPolicy(cfg, 2, 2, obs_norm, act_norm), obs, act, 1200)
    test_obs = torch.as_tensor(np.random.default_rng(1).uniform(-1, 1, (400, 1, 2)).astype(np.float32))
    final = fm.predict_chunk(test_obs, torch.Generator().manual_seed(2))[:, -1, 1]
    up, down = (final > 0.5).float().mean().item(), (final < -0.5).float().mean().item()
    assert up > 0.3 and down > 0.3 and up + down > 0.85, (up, down)
