"""The differentiable fused hover env: its hand-written VJP against finite differences and torch autograd."""

import numpy as np
import pytest
import torch

from sim.quadrotor import FusedQuadrotorHoverEnv, QuadrotorTaskConfig, RewardWeights, make_hover_env
from sim.quadrotor.diff_fused import DiffFusedHoverEnv, hover_step
from sim.quadrotor.dynamics import QUAT, action_to_rpm, quat_to_rotmat, rk4_step
from sim.quadrotor.params import ParamTensors
from sim.quadrotor.task import reward_from_terms, reward_terms

WEIGHTS = RewardWeights(position=40.0, orientation=5.0, linear_velocity=0.5, angular_velocity=0.05, action=0.05)


def make(n=6, seed=0, **kw) -> DiffFusedHoverEnv:
    env = DiffFusedHoverEnv(QuadrotorTaskConfig(num_envs=n, reward=WEIGHTS, **kw), seed=seed)
    env.target[:] = torch.tensor([0.05, -0.02, 0.03])  # a non-zero target enters observation and reward
    return env


def env_params(env: DiffFusedHoverEnv, dtype=torch.float64) -> tuple[ParamTensors, float]:
    """The env's (float32-rounded) parameters as reference ``ParamTensors``, and its time step."""
    pt, geo = env.pt, torch.from_numpy(env._geo).to(dtype)
    n = env.num_envs
    return ParamTensors(
        mass=pt.mass.to(dtype).expand(n, 1), inertia=pt.inertia.to(dtype), thrust_coefficient=pt.thrust_coefficient
        .to(dtype).expand(n, 1), motor_time_constant=pt.motor_time_constant.to(dtype).expand(n, 1),
        gravity=geo[12:15], rotor_positions=torch.stack((geo[0:4], geo[4:8], torch.zeros(4, dtype=dtype)), -1),
        yaw_torque=geo[8:12], rpm_min=float(geo[15]), rpm_max=float(geo[16])), float(geo[17])


def reference_step(env, state, action, dtype=torch.float64):
    """Torch-autograd reference of :func:`hover_step`: ``dynamics.rk4_step`` + ``task`` observation and reward."""
    pt, dt = env_params(env, dtype)
    a = action.clamp(-1.0, 1.0)
    y = rk4_step(state, action_to_rpm(a, pt.rpm_min, pt.rpm_max), pt, dt, env.force.to(dtype), env.torque.to(dtype))
    target = env.target.to(dtype)
    obs = torch.cat((y[:, :3] - target, quat_to_rotmat(y[:, QUAT]).reshape(-1, 9), y[:, 7:13]), -1)
    w = [float(x) for x in env._weights]  # the env's float32 weights
    weights = RewardWeights(*w[:5], scale=w[5], constant=w[6])
    reward = reward_from_terms(reward_terms(y, a, target, float(np.float32(env.hover_action))), weights)
    return y, obs, reward


def random_inputs(env, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = env.state.double().clone()
    s[:, 7:13] += torch.randn(env.num_envs, 6, generator=g, dtype=torch.float64)
    s[:, 13:] = torch.rand(env.num_envs, 4, generator=g, dtype=torch.float64) * 18000 + 2000
    a = torch.rand(env.num_envs, 4, generator=g, dtype=torch.float64) * 1.8 - 0.9
    a[0, 1], a[1, 2] = 1.3, -1.2  # outside the clamp: no gradient
    return s.requires_grad_(), a.requires_grad_()


def test_hover_step_gradcheck_float64():
    env = make()
    s, a = random_inputs(env)
    assert torch.autograd.gradcheck(lambda s, a: hover_step(s, a, env), (s, a), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_hover_step_matches_torch_autograd_of_the_reference():
    env = make(n=16)
    s, a = random_inputs(env, seed=1)
    ours, ref = hover_step(s, a, env), reference_step(env, s, a)
    for x, y in zip(ours, ref, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-9)
    g = torch.Generator().manual_seed(2)
    cot = [torch.randn(y.shape, generator=g, dtype=torch.float64) for y in ref]
    cot[0][:, 13:] *= 1e-3  # rotor speeds are in RPM
    g_ours = torch.autograd.grad(ours, (s, a), cot)
    g_ref = torch.autograd.grad(ref, (s, a), cot)
    for x, y in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)
    assert (g_ours[1][0, 1] == 0) and (g_ours[1][1, 2] == 0)
    # float32 (what training runs) agrees with the float64 gradient to float32 precision
    s32, a32 = s.detach().float().requires_grad_(), a.detach().float().requires_grad_()
    g32 = torch.autograd.grad(hover_step(s32, a32, env), (s32, a32), [c.float() for c in cot])
    for x, y in zip(g32, g_ref, strict=True):
        torch.testing.assert_close(x.double(), y, rtol=1e-4, atol=1e-4 * y.abs().max().item())


def test_same_numbers_as_the_fused_env():
    cfg = QuadrotorTaskConfig(num_envs=32, episode_length=20)
    diff, fused = DiffFusedHoverEnv(cfg, seed=3), FusedQuadrotorHoverEnv(cfg, seed=3)
    w = torch.randn(146, 4) * 0.05
    o1, o2 = diff.reset(seed=4), fused.reset(seed=4)
    for _ in range(30):
        a = torch.tanh(o2["policy"] @ w)
        o1, r1, t1, u1, _ = diff.step(a.clone().requires_grad_())
        o2, r2, t2, u2, _ = fused.step(a)
        assert o1["policy"].requires_grad
        for x, y in ((o1["policy"], o2["policy"]), (o1["critic"], o2["critic"]), (r1, r2), (t1, t2), (u1, u2)):
            assert torch.equal(x.detach(), y)
    assert torch.equal(diff.state, fused.state)


def replay_reference(env_kw, policy, steps, seed):
    """Roll a :class:`DiffFusedHoverEnv` with autograd, then replay the same episodes in torch autograd with the
    reference math (``rk4_step``, ``reward_terms``, observation, action history; resets to the recorded
    post-reset states, the recorded actor noise); return both policy gradients and the number of resets."""
    env = make(**env_kw, seed=seed)
    obs0 = env.reset(seed=seed)
    tape = []
    o, total = obs0["policy"], 0.0
    for _ in range(steps):
        before = (env.state.clone(), env.force.clone(), env.torque.clone())
        o_next, r, *_, info = env.step(policy(o))
        total = total + r.mean()
        noise = (o_next["policy"][:, :18] - o_next["critic"][:, :18]).detach()
        tape.append((*before, info["done_mask"].clone(), env.state.clone(), noise))
        o = o_next["policy"]
    params = list(policy.parameters())
    ours = torch.autograd.grad(total / steps, params)

    pt, dt = env_params(env, torch.float32)
    s, hist, o, total = tape[0][0], obs0["policy"][:, 18:], obs0["policy"], 0.0
    for state, force, torque, done, after, noise in tape:
        assert torch.equal(state, s.detach())  # the replay follows the env's states exactly
        a = policy(o).clamp(-1.0, 1.0)
        y = rk4_step(s, action_to_rpm(a, pt.rpm_min, pt.rpm_max), pt, dt, force, torque)
        total = total + reward_from_terms(reward_terms(y, a, env.target, env.hover_action), env.reward_weights).mean()
        # continue from the env's values (they differ from the reference's float32 rounding by ulps) with the
        # reference's graph; reset envs continue from their new state, without a graph
        s = torch.where(done[:, None], after, y + (after - y).detach())
        hist = torch.where(done[:, None], 0.0, torch.cat((hist[:, 4:], a), -1))
        clean = torch.cat((s[:, :3] - env.target, quat_to_rotmat(s[:, QUAT]).reshape(-1, 9), s[:, 7:13]), -1)
        o = torch.cat((clean + noise, hist), -1)
    ref = torch.autograd.grad(total / len(tape), params)
    return ours, ref, int(torch.stack([t[3] for t in tape]).sum())


@pytest.mark.parametrize("noise", [True, False])
def test_env_gradient_through_resets_and_history_matches_reference(noise):
    torch.manual_seed(0)
    policy = torch.nn.Sequential(torch.nn.Linear(146, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4), torch.nn.Tanh())
    with torch.no_grad():
        policy[2].bias.fill_(0.33)
    ours, ref, resets = replay_reference({"n": 24, "episode_length": 9, "noise": noise}, policy, 25, seed=5)
    assert resets > 24  # truncations (and crashes) inside the window
    for x, y in zip(ours, ref, strict=True):
        torch.testing.assert_close(x, y, rtol=2e-4, atol=2e-4 * y.abs().max().item())


def test_detach_state_dict_and_factory():
    env = make(n=4)
    a = torch.zeros(4, 4, requires_grad=True)
    obs, r, *_ = env.step(a)
    assert obs["policy"].requires_grad and r.requires_grad
    env.detach()
    obs, r, *_ = env.step(torch.zeros(4, 4))
    assert not obs["policy"].requires_grad
    sd = env.state_dict()
    env2 = make(n=4, seed=9)
    env2.load_state_dict(sd)
    x1, x2 = env.step(torch.zeros(4, 4)), env2.step(torch.zeros(4, 4))
    assert torch.equal(x1[0]["policy"], x2[0]["policy"])
    cfg = QuadrotorTaskConfig(num_envs=2)
    assert type(make_hover_env(cfg, differentiable=True)) is DiffFusedHoverEnv
    assert type(make_hover_env(cfg)) is FusedQuadrotorHoverEnv
    assert type(make_hover_env(cfg, impl="torch", differentiable=True)).__name__ == "QuadrotorHoverEnv"
