"""Shared set-ups for the tests of both hover-env implementations."""

import math

import torch


def hold_at_target(env) -> None:
    """Put every env at rest at the target: level, zero velocities, rotors at hover speed, no disturbance."""
    env.state[:, :13] = torch.tensor([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=torch.float32)
    env.state[:, 13:] = env.params.hover_rpm
    env.force.zero_()
    env.torque.zero_()


def assert_paper_initial_states(env) -> None:
    """The paper's initial-state and disturbance distribution, checked on a large batch of fresh episodes."""
    s = env.state
    guided = (s[:, :3] == 0).all(-1) & (s[:, 3] == 1)
    assert 0.085 < guided.float().mean() < 0.115
    assert s[:, :3].abs().max() <= 0.2 and s[:, 7:13].abs().max() <= 1.0
    angle = 2 * torch.acos(s[:, 3].clamp(max=1.0))
    assert angle.max() <= math.pi / 2 + 1e-5 and angle[~guided].mean() > 0.9
    assert (s[:, 13:] == 10851.0).all()
    torch.testing.assert_close(env.force.std(0) / (0.027 * 9.81 / 20), torch.ones(3), rtol=0.03, atol=0)
    torch.testing.assert_close(env.torque.std(0), torch.full((3,), 2.65e-5), rtol=0.03, atol=0)


def assert_paper_actor_noise(obs: dict) -> None:
    """Actor observation = critic's noise-free state + Gaussian noise with the paper's sigmas."""
    noise = obs["policy"][:, :18] - obs["critic"][:, :18]
    expected = torch.tensor([0.001] * 12 + [0.002] * 6)
    torch.testing.assert_close(noise.std(dim=0), expected, rtol=0.03, atol=0)
    assert noise.mean(0).abs().max() < 4e-5


def autograd_rollout(env, policy, obs, horizon, apply=None):
    """Mean reward of ``horizon`` steps of ``policy`` (or of ``apply``, another way to run it) from ``obs``, and its
    gradient with respect to ``policy``'s parameters by torch autograd through ``env``."""
    total = 0.0
    for _ in range(horizon):
        out, r, *_ = env.step((apply or policy)(obs))
        obs, total = out["policy"], total + r.mean()
    total = total / horizon
    return total, torch.autograd.grad(total, list(policy.parameters()))


def rel(a, b) -> float:
    """Relative error of ``a`` against ``b`` (Frobenius norms)."""
    return ((a - b).norm() / b.norm()).item()
