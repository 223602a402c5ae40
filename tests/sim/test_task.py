
import numpy as np
import pytest
import torch

from sim.core import GymVectorEnv
from sim.quadrotor import (
    DomainRandomization,
    QuadrotorHoverEnv,
    QuadrotorTaskConfig,
    RewardWeights,
    quat_to_rotmat,
    reward_from_terms,
)
from tests.sim.helpers import assert_paper_actor_noise, assert_paper_initial_states, hold_at_target


def make(n=8, **kw) -> QuadrotorHoverEnv:
    return QuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=n, **kw), seed=0)


def hover(env) -> torch.Tensor:
    return torch.full((env.num_envs, 4), env.hover_action)


def test_observation_layout_matches_state():
    env = make(4, noise=False)
    obs = env.reset(seed=3)
    assert obs["policy"].shape == (4, 146) and obs["critic"].shape == (4, 156)
    a = torch.rand(4, 4) * 2 - 1
    obs, *_ = env.step(a)
    s = env.state
    for group in ("policy", "critic"):
        o = obs[group]
        torch.testing.assert_close(o[:, :3], s[:, :3])
        torch.testing.assert_close(o[:, 3:12], quat_to_rotmat(s[:, 3:7]).reshape(4, 9))
        torch.testing.assert_close(o[:, 12:15], s[:, 7:10])
        torch.testing.assert_close(o[:, 15:18], s[:, 10:13])
    # history: oldest first, newest last; zeros after reset
    torch.testing.assert_close(obs["policy"][:, -4:], a)
    assert obs["policy"][:, 18:-4].abs().max() == 0
    torch.testing.assert_close(obs["critic"][:, 18:21], env.force)
    torch.testing.assert_close(obs["critic"][:, 21:24], env.torque)
    torch.testing.assert_close(obs["critic"][:, 24:28], s[:, 13:17] / 21702 * 2 - 1)
    b = torch.rand(4, 4) * 2 - 1
    obs, *_ = env.step(b)
    torch.testing.assert_close(obs["policy"][:, -8:], torch.cat((a, b), dim=1))
    # the critic sees the actor's action history (what, with the state, determines the actor's action)
    assert obs["critic"].shape == (4, 28 + 128) and torch.equal(obs["critic"][:, 28:], obs["policy"][:, 18:])


def test_actor_noise_has_paper_sigma():
    env = make(20000, noise=True)
    obs = env.reset(seed=0)
    assert_paper_actor_noise(obs)
    assert (obs["critic"][:, :18] == env._state_obs()).all()


def test_initial_state_distribution():
    assert_paper_initial_states(make(20000))


def test_termination_beyond_position_limit():
    env = make(3, noise=False)
    env.reset(seed=0)
    hold_at_target(env)
    env.state[0, 0] = 0.62
    env.state[1, 2] = -0.59
    env.state[2, 1] = -0.605
    _, _, terminated, truncated, info = env.step(hover(env))
    assert terminated.tolist() == [True, False, True]
    assert not truncated.any()
    assert info["final_obs"]["critic"][0, 0] > 0.6  # final observation kept
    assert env.state[0, :3].abs().max() <= 0.2  # auto-reset happened
    assert env.steps.tolist() == [0, 1, 0]


def test_truncation_at_500_steps_and_auto_reset_keeps_final_obs():
    env = make(2, noise=False)
    env.reset(seed=0)
    for t in range(500):
        hold_at_target(env)
        obs, _, terminated, truncated, info = env.step(hover(env))
        assert not terminated.any()
        if t < 499:
            assert not truncated.any()
    assert truncated.all() and info["done_mask"].all()
    final = info["final_obs"]["policy"]
    assert final[:, :3].abs().max() < 1e-3 and (final[:, -4:] - env.hover_action).abs().max() < 1e-6
    assert (obs["policy"][:, 18:] == 0).all()  # fresh episode: empty action history
    assert (env.steps == 0).all()


def test_reward_matches_paper_formula_and_weights_change_at_runtime():
    env = make(4, noise=False)
    env.reset(seed=1)
    a = torch.rand(4, 4) * 2 - 1
    _, r, *_rest, info = env.step(a)
    s = env.state
    cost = (5 * (s[:, :3] ** 2).sum(-1) + 5 * (1 - s[:, 3] ** 2) + 0.01 * (s[:, 7:10] ** 2).sum(-1)
            + 0.01 * ((a - 0.3340) ** 2).sum(-1))
    torch.testing.assert_close(r, -0.5 * cost + 2, atol=2e-3, rtol=0)
    torch.testing.assert_close(reward_from_terms(info["reward_terms"], RewardWeights()), r)
    env.set_reward_weights(RewardWeights(position=40.0, action=1.0))
    _, r2, *_rest, info2 = env.step(a)
    torch.testing.assert_close(r2, reward_from_terms(info2["reward_terms"], RewardWeights(position=40.0, action=1.0)))


def test_same_seed_same_trajectory():
    def rollout(seed):
        env = make(16)
        env.reset(seed=seed)
        g = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(120):
            obs, r, *_ = env.step(torch.rand(16, 4, generator=g) * 2 - 1)
            out.append(torch.cat((obs["policy"], r[:, None]), dim=1))
        return torch.stack(out)

    assert torch.equal(rollout(5), rollout(5))
    assert not torch.equal(rollout(5), rollout(6))


def test_domain_randomisation_is_per_env_and_off_by_default():
    assert make(4).obs_dims["critic"] == 28 + 128
    dr = DomainRandomization(mass=(0.8, 1.2), thrust_coefficient=(0.9, 1.1), obs_latency_steps=(0, 3))
    env = make(256, randomization=dr)
    assert env.obs_dims["critic"] == 32 + 128 + 1
    m = env.pt.mass[:, 0] / 0.027
    assert 0.8 <= m.min() < 0.85 and 1.15 < m.max() <= 1.2
    assert set(env.latency.tolist()) == {0, 1, 2, 3}
    obs = env.reset(seed=0)
    torch.testing.assert_close(obs["critic"][:, 28:32], env.factors - 1)
    assert obs["critic"].shape == (256, env.obs_dims["critic"])
    assert torch.equal(obs["critic"][:, 32:-1], obs["policy"][:, 18:])
    torch.testing.assert_close(obs["critic"][:, -1], env.latency.float() / 3)  # the actor's latency, 0..1
    assert len(set(obs["critic"][:, -1].tolist())) == 4


def test_observation_latency_delays_actor_state():
    dr = DomainRandomization(obs_latency_steps=(2, 2))
    env = make(2, noise=False, randomization=dr)
    env.reset(seed=0)
    critics = []
    for _ in range(4):
        obs, *_ = env.step(hover(env))
        critics.append(obs["critic"][:, :18])
    torch.testing.assert_close(obs["policy"][:, :18], critics[1])


def test_gymnasium_adapter_behaves_like_vector_env():
    env = GymVectorEnv(make(3, noise=False))
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 146) and obs.dtype == np.float32 and info["obs_critic"].shape == (3, 156)
    assert env.observation_space.shape == (3, 146) and env.single_action_space.shape == (4,)
    assert env.action_space.contains(env.action_space.sample())
    steps = 0
    while True:
        obs, rew, term, trunc, info = env.step(np.full((3, 4), 1.0, dtype=np.float32))
        steps += 1
        assert rew.shape == (3,) and term.dtype == bool
        if term.any():
            break
    assert info["_final_obs"].tolist() == term.tolist()
    i = int(np.argmax(term))
    assert np.abs(info["final_obs"][i, :3]).max() > 0.6 and np.abs(obs[i, :3]).max() <= 0.2
    with pytest.raises(ValueError, match="unknown observation group"):
        GymVectorEnv(make(1), obs_group="camera")


@pytest.mark.cuda
def test_cuda_matches_cpu():
    cpu = make(64, noise=False)
    gpu = QuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=64, noise=False, device="cuda"), seed=0)
    gpu.state.copy_(cpu.state)
    gpu.force.copy_(cpu.force)
    gpu.torque.copy_(cpu.torque)
    a = torch.full((64, 4), cpu.hover_action) + torch.rand(64, 4) * 0.02
    for _ in range(20):
        o1, r1, _, _, i1 = cpu.step(a)
        o2, r2, _, _, i2 = gpu.step(a.cuda())
        assert not i1["done_mask"].any() and not i2["done_mask"].any().item()
    torch.testing.assert_close(o2["critic"].cpu(), o1["critic"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(r2.cpu(), r1, atol=1e-4, rtol=1e-4)
