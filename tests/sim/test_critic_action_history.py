"""``task.critic_action_history``: the critic reads the actor's most recent actions only (and the latency after
them), the same in the torch env, the fused env and the fused env over vehicles."""

import pytest
import torch

from sim.quadrotor import FusedQuadrotorHoverEnv, QuadrotorHoverEnv, QuadrotorTaskConfig
from sim.quadrotor.vehicles import VEHICLE_KEYS, VehicleDistribution


def _fly(env, steps: int = 12):
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        env.state[:, :3] = 0.0  # stay alive
        obs, *_ = env.step(torch.rand(env.num_envs, 4, generator=g) * 2 - 1)
    return obs


@pytest.mark.parametrize("cls", [QuadrotorHoverEnv, FusedQuadrotorHoverEnv])
def test_the_critic_reads_the_last_actions_of_the_history(cls):
    env = cls(QuadrotorTaskConfig(num_envs=4, noise=False, action_history=8, critic_action_history=3), seed=0)
    assert env.obs_dims == {"policy": 18 + 32, "critic": 28 + 12}
    obs = _fly(env)
    assert obs["critic"].shape == (4, 40)
    assert torch.equal(obs["critic"][:, 28:], obs["policy"][:, -12:])  # the newest 3 actions, oldest first
    assert obs["policy"][:, -12:].abs().sum() > 0


@pytest.mark.parametrize("cls", [QuadrotorHoverEnv, FusedQuadrotorHoverEnv])
def test_over_vehicles_the_latency_follows_the_window(cls):
    cfg = QuadrotorTaskConfig(num_envs=16, noise=False, action_history=8, critic_action_history=2,
                              vehicles=VehicleDistribution().widened(0.1))
    env = cls(cfg, seed=0)
    h0 = 28 + len(VEHICLE_KEYS)
    assert env.obs_dims["critic"] == h0 + 8 + 1
    obs = _fly(env)
    assert torch.equal(obs["critic"][:, h0:h0 + 8], obs["policy"][:, -8:])
    lat = torch.stack(list(env.vehicles().values()), -1)[:, VEHICLE_KEYS.index("latency_steps")]
    torch.testing.assert_close(obs["critic"][:, -1], lat / VehicleDistribution().widened(0.1).latency_steps[1])


def test_a_window_longer_than_the_history_is_refused():
    with pytest.raises(ValueError, match="critic_action_history must be in"):
        QuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=2, action_history=4, critic_action_history=5))
