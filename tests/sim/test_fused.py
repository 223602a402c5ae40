import math

import numba
import numpy as np
import pytest
import torch

from sim.core import GymVectorEnv
from sim.quadrotor import (
    DomainRandomization,
    FusedQuadrotorHoverEnv,
    QuadrotorHoverEnv,
    QuadrotorTaskConfig,
    RewardWeights,
    make_hover_env,
    quat_to_rotmat,
    reward_from_terms,
)
from sim.quadrotor._fused_kernels import CHUNK, RESET_CHUNK
from sim.quadrotor._fused_rng import sample_normals
from tests.sim.helpers import assert_paper_actor_noise, assert_paper_initial_states, hold_at_target


def make(n=8, seed=0, **kw) -> FusedQuadrotorHoverEnv:
    return FusedQuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=n, **kw), seed=seed)


def hover(env) -> torch.Tensor:
    return torch.full((env.num_envs, 4), env.hover_action)


def near_hover_pair(n: int, **kw) -> tuple[FusedQuadrotorHoverEnv, QuadrotorHoverEnv]:
    """A fused and a torch env in the same state: gentle initial states that stay inside the position limit."""
    cfg = QuadrotorTaskConfig(num_envs=n, noise=False, **kw)
    fused, ref = FusedQuadrotorHoverEnv(cfg, seed=1), QuadrotorHoverEnv(cfg, seed=2)
    fused.state[:, :3] *= 0.2
    fused.state[:, 7:13] *= 0.1
    q = fused.state[:, 3:7].clone()
    q[:, 1:] *= 0.05
    fused.state[:, 3:7] = q / q.norm(dim=1, keepdim=True)
    fused.force.mul_(0.1)
    fused.torque.mul_(0.1)
    fused.target[:] = torch.tensor([0.05, -0.02, 0.03])  # a non-zero target enters observation and reward
    ref.target.copy_(fused.target)
    ref.state.copy_(fused.state)
    ref.force.copy_(fused.force)
    ref.torque.copy_(fused.torque)
    if ref._dr.enabled:  # the same randomised parameters in both
        ref.factors.copy_(fused.factors)
        ref.pt = ref.pt._replace(**{k: getattr(fused.pt, k).clone() for k in
                                    ("mass", "inertia", "thrust_coefficient", "motor_time_constant")})
    return fused, ref


def assert_step_matches(out_f, out_r, rtol, atol):
    (of, rf, tf, uf, inf), (or_, rr, tr, ur, inr) = out_f, out_r
    for group in ("policy", "critic"):
        torch.testing.assert_close(of[group], or_[group], rtol=rtol, atol=atol)
    torch.testing.assert_close(rf, rr, rtol=rtol, atol=atol)
    torch.testing.assert_close(inf["reward_terms"], inr["reward_terms"], rtol=rtol, atol=atol)
    assert torch.equal(tf, tr) and torch.equal(uf, ur) and torch.equal(inf["time_outs"], inr["time_outs"])
    assert not inf["done_mask"].any()


def stabilising_action(env, g: torch.Generator) -> torch.Tensor:
    """Hover plus an attitude/vertical PD and a little noise, so that episodes last without resets."""
    s = env.state
    err = 2 * s[:, 4:7] * torch.where(s[:, 3:4] < 0, -1.0, 1.0)  # small-angle attitude error
    mix = torch.tensor([[-1.0, -1.0, 1.0, 1.0], [-1.0, 1.0, 1.0, -1.0], [-1.0, 1.0, -1.0, 1.0]])
    a = env.hover_action - (0.02 * err + 0.004 * s[:, 10:13]) @ mix - 0.05 * s[:, 9:10] - 0.02 * s[:, 2:3]
    return a + (torch.rand(a.shape, generator=g) - 0.5) * 0.02


@pytest.mark.parametrize(("randomise", "critic_actor_inputs"), [(False, True), (True, True), (True, False)])
def test_matches_torch_reference(randomise, critic_actor_inputs):
    dr = DomainRandomization(mass=(0.8, 1.2), inertia=(0.9, 1.1), thrust_coefficient=(0.95, 1.05),
                             motor_time_constant=(0.8, 1.2)) if randomise else DomainRandomization()
    fused, ref = near_hover_pair(64, randomization=dr, critic_actor_inputs=critic_actor_inputs)
    critic_dim = 28 + 4 * randomise + 128 * critic_actor_inputs
    assert fused.obs_dims["critic"] == ref.obs_dims["critic"] == critic_dim
    g = torch.Generator().manual_seed(0)
    for t in range(200):  # > action_history steps, so the ring wraps around
        a = stabilising_action(fused, g)
        if t % 4 == 0:  # re-synchronise: one step from identical states agrees to float32 rounding
            ref.state.copy_(fused.state)
            out_f, out_r = fused.step(a), ref.step(a)
            torch.testing.assert_close(fused.state, ref.state, rtol=2e-6, atol=1e-6)
            assert_step_matches(out_f, out_r, rtol=1e-5, atol=1e-5)
        else:  # free run: rounding differences grow slowly
            out_f, out_r = fused.step(a), ref.step(a)
            torch.testing.assert_close(fused.state, ref.state, rtol=1e-4, atol=1e-4)
            assert_step_matches(out_f, out_r, rtol=1e-4, atol=1e-4)
        for env in (fused, ref):  # position does not feed back into the dynamics: keep it inside the limit
            env.state[:, :3] *= 0.5
    assert torch.equal(fused.steps, ref.steps) and torch.equal(fused.history, ref.history)


def test_observation_layout_and_history():
    env = make(4, noise=False)
    obs = env.reset(seed=3)
    assert obs["policy"].shape == (4, 146) and obs["critic"].shape == (4, 28 + 128)
    assert (obs["policy"][:, 18:] == 0).all() and (obs["critic"][:, 28:] == 0).all()
    actions = [torch.rand(4, 4) * 2 - 1 for _ in range(40)]
    for a in actions:
        env.state[:, :3] = 0.0  # stay alive
        obs, *_ = env.step(a)
    s = env.state
    torch.testing.assert_close(obs["critic"][:, 3:12], quat_to_rotmat(s[:, 3:7]).reshape(4, 9))
    torch.testing.assert_close(obs["policy"][:, 18:], torch.cat(actions[-32:], dim=1).clamp(-1, 1))
    assert torch.equal(obs["critic"][:, 28:], obs["policy"][:, 18:])  # the critic sees the actor's history
    torch.testing.assert_close(obs["critic"][:, 24:28], s[:, 13:17] / 21702 * 2 - 1)
    short = make(2, noise=False, action_history=0)
    assert [v.shape for v in short.step(hover(short))[0].values()] == [(2, 18), (2, 28)]


def test_termination_truncation_and_auto_reset():
    env = make(3, noise=False)
    env.reset(seed=0)
    hold_at_target(env)
    env.state[0, 0] = 0.62
    env.state[2, 1] = -0.605
    obs, _, terminated, truncated, info = env.step(hover(env))
    assert terminated.tolist() == [True, False, True] and not truncated.any()
    assert info["done_mask"].tolist() == [True, False, True]
    final = info["final_obs"]
    assert final["critic"][0, 0] > 0.6 and final["critic"][2, 1] < -0.6  # pre-reset observations kept
    assert (final["policy"][:, -4:] - env.hover_action).abs().max() < 1e-6
    assert torch.equal(final["policy"][1], obs["policy"][1]) and torch.equal(final["critic"][1], obs["critic"][1])
    assert env.state[[0, 2], :3].abs().max() <= 0.2 and (obs["policy"][[0, 2], 18:] == 0).all()
    assert env.steps.tolist() == [0, 1, 0]
    env.state[1, 10] = float("nan")  # a non-finite state terminates too, and the reset repairs it
    _, _, terminated, _, info = env.step(hover(env))
    assert terminated.tolist() == [False, True, False] and torch.isfinite(env.state).all()
    assert torch.isnan(info["final_obs"]["critic"][1, 15])
    env = make(2, noise=False)
    for t in range(500):
        env.state[:, :13] = torch.tensor([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=torch.float32)
        obs, _, terminated, truncated, info = env.step(hover(env))
        assert not terminated.any() and truncated.all() == (t == 499)
    assert info["time_outs"].all() and (env.steps == 0).all() and (obs["policy"][:, 18:] == 0).all()


def test_initial_state_distribution_and_actor_noise():
    env = make(20000)
    assert_paper_initial_states(env)
    assert_paper_actor_noise(env.reset(seed=0))


def test_gaussian_generator_statistics():
    x = np.sort(sample_normals(3, 400_000).astype(np.float64))
    cdf = 0.5 * (1 + torch.erf(torch.from_numpy(x) / math.sqrt(2))).numpy()
    n = x.size
    ks = max((np.arange(1, n + 1) / n - cdf).max(), (cdf - np.arange(n) / n).max())
    assert ks < 1.63 / math.sqrt(n)  # Kolmogorov-Smirnov at the 1 % level
    assert abs(((x**4).mean()) - 3.0) < 0.05 and 0.0022 < (np.abs(x) > 3).mean() < 0.0032


def rollout(seed: int, n: int = 16, steps: int = 120) -> torch.Tensor:
    env = make(n, seed=seed)
    env.reset(seed=seed)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(torch.rand(n, 4, generator=g) * 2 - 1)
        out.append(torch.cat((obs["policy"], obs["critic"], info["final_obs"]["policy"], r[:, None],
                              term[:, None], env.state), dim=1))
    return torch.stack(out)


def test_same_seed_same_trajectory():
    assert torch.equal(rollout(5), rollout(5))
    assert not torch.equal(rollout(5), rollout(6))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has fewer than 2 threads here")
def test_results_do_not_depend_on_thread_count():
    n = 4 * CHUNK  # several chunks, so the parallel path runs
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = rollout(7, n, 60)
        numba.set_num_threads(2)
        two = rollout(7, n, 60)
    finally:
        numba.set_num_threads(before)
    resets = one[:, :, 146 + 156 + 146 + 1].sum(1)  # terminations per step
    assert resets.max() >= 2 * RESET_CHUNK  # the parallel reset path ran too
    assert torch.equal(one, two)


def test_reward_weights_change_at_runtime():
    env = make(4, noise=False)
    a = torch.rand(4, 4) * 2 - 1
    _, r, *_rest, info = env.step(a)
    torch.testing.assert_close(r, reward_from_terms(info["reward_terms"], RewardWeights()))
    weights = RewardWeights(position=40.0, action=1.0, angular_velocity=0.5)
    env.set_reward_weights(weights)
    _, r2, *_rest, info2 = env.step(a)
    torch.testing.assert_close(r2, reward_from_terms(info2["reward_terms"], weights))
    assert env.reward_weights == weights


def test_domain_randomisation_is_per_env():
    dr = DomainRandomization(mass=(0.8, 1.2), thrust_coefficient=(0.9, 1.1))
    env = make(256, randomization=dr)
    assert env.obs_dims["critic"] == 32 + 128
    m = env.pt.mass[:, 0] / 0.027
    assert 0.8 <= m.min() < 0.85 and 1.15 < m.max() <= 1.2
    torch.testing.assert_close(env.pt.thrust_coefficient[:, 0] / 3.16e-10, env.factors[:, 2])
    obs = env.reset(seed=0)
    torch.testing.assert_close(obs["critic"][:, 28:32], env.factors - 1)
    env.step(torch.rand(256, 4) * 2 - 1)
    obs, *_ = env.step(torch.rand(256, 4) * 2 - 1)
    assert torch.equal(obs["critic"][:, 32:], obs["policy"][:, 18:])  # history after the factors


def test_unsupported_options_and_factory():
    with pytest.raises(ValueError, match="CPU only"):
        make(2, device="cuda")
    latency = DomainRandomization(obs_latency_steps=(0, 2))
    with pytest.raises(ValueError, match="obs_latency_steps"):
        make(2, randomization=latency)
    cfg = QuadrotorTaskConfig(num_envs=2)
    assert isinstance(make_hover_env(cfg), FusedQuadrotorHoverEnv)
    assert isinstance(make_hover_env(cfg, impl="torch"), QuadrotorHoverEnv)
    assert isinstance(make_hover_env(QuadrotorTaskConfig(num_envs=2, randomization=latency)), QuadrotorHoverEnv)
    with pytest.raises(ValueError, match="unknown hover env implementation"):
        make_hover_env(cfg, impl="jax")


def test_gymnasium_adapter():
    env = GymVectorEnv(make(3, noise=False))
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 146) and info["obs_critic"].shape == (3, 156)
    for _ in range(200):
        obs, rew, term, trunc, info = env.step(np.full((3, 4), 1.0, dtype=np.float32))
        if term.any():
            break
    i = int(np.argmax(term))
    assert info["_final_obs"].tolist() == term.tolist()
    assert np.abs(info["final_obs"][i, :3]).max() > 0.6 and np.abs(obs[i, :3]).max() <= 0.2


def test_buffers_are_views_and_actions_of_any_layout():
    env = make(4, noise=False)
    env.state = torch.zeros(4, 17).index_fill_(1, torch.tensor([3]), 1.0)  # assignment copies into the buffer
    assert env._state[:, 3].tolist() == [1.0] * 4 and env.state.data_ptr() == env._state.ctypes.data
    a64 = np.full((4, 4), env.hover_action, dtype=np.float64)
    out64 = env.step(torch.from_numpy(a64))
    env.state = torch.zeros(4, 17).index_fill_(1, torch.tensor([3]), 1.0)
    env.steps.zero_()
    strided = torch.full((4, 8), env.hover_action)[:, ::2]
    out_strided = env.step(strided)
    torch.testing.assert_close(out64[0]["critic"][:, :28], out_strided[0]["critic"][:, :28])
    with pytest.raises(ValueError, match="action must be"):
        env.step(torch.zeros(3, 4))


@pytest.mark.parametrize("env_cls", [FusedQuadrotorHoverEnv, QuadrotorHoverEnv])
def test_initial_tilt_of_zero_starts_level_and_out_of_range_is_an_error(env_cls):
    """``init_max_angle_deg=0`` starts every episode level (rejection sampling alone would never accept);
    an angle outside [0, 180] is a one-line error."""
    env = env_cls(QuadrotorTaskConfig(num_envs=16, init_max_angle_deg=0.0), seed=3)
    np.testing.assert_array_equal(env.state[:, 3:7].numpy(), np.tile([1.0, 0.0, 0.0, 0.0], (16, 1)))
    assert env.state[:, 7:10].abs().max() > 0  # the rest of the start is still drawn
    with pytest.raises(ValueError, match=r"init_max_angle_deg must be in \[0, 180\], got 200"):
        env_cls(QuadrotorTaskConfig(num_envs=2, init_max_angle_deg=200.0), seed=0)
