"""APG gradients: hand-written BPTT on the fused env == autograd through it == autograd through the torch env."""

import numpy as np
import pytest
import torch

from robot_rl.algorithms.apg import APG, APGConfig
from robot_rl.algorithms.apg_bptt import FusedBPTT, bound_barrier, supports
from robot_rl.models.mlp import MLP
from robot_rl.models.mlp_function import mlp_apply
from robot_rl.runs import make_runner
from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig, RewardWeights
from sim.quadrotor.diff_fused import DiffFusedHoverEnv
from sim.quadrotor.dynamics import quat_to_rotmat
from tests.robot_rl.test_training import tiny
from tests.sim.helpers import autograd_rollout, rel

WEIGHTS = RewardWeights(position=40.0, orientation=5.0, linear_velocity=0.5, angular_velocity=0.05, action=0.05)


def actor(seed=0, scale=30.0) -> MLP:
    """The preset's actor shape with a last layer large enough that the actions vary."""
    torch.manual_seed(seed)
    algo = APG(APGConfig(), 146, 4, 0.33)
    with torch.no_grad():
        algo.actor.linears[-1].weight.mul_(scale)
    return algo.actor


def test_bptt_matches_autograd_through_resets_and_noise():
    cfg = QuadrotorTaskConfig(num_envs=16, episode_length=12, reward=WEIGHTS)
    pol, horizon = actor(), 30
    env_a, env_b = DiffFusedHoverEnv(cfg, seed=3), DiffFusedHoverEnv(cfg, seed=3)
    obs = env_a.reset(seed=4)["policy"]
    assert torch.equal(obs, env_b.reset(seed=4)["policy"])
    total_a, grads_a = autograd_rollout(env_a, pol, obs, horizon)
    engine = FusedBPTT(pol, env_b, horizon)
    total_b, grads_b, last = engine.rollout_gradient(obs)
    assert engine.dones.sum() >= 16  # truncations (and crashes) inside the window
    assert torch.equal(env_a.state, env_b.state)  # the same forward pass, bit for bit
    torch.testing.assert_close(total_b, total_a.detach(), rtol=1e-6, atol=1e-6)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert rel(b, a) < 1e-5
    # a second window continues from where the first one stopped
    _, grads_c, _ = engine.rollout_gradient(last["policy"])
    env_a.detach()
    _, grads_d = autograd_rollout(env_a, pol, last["policy"], horizon, apply=lambda o: mlp_apply(pol, o))
    for a, b in zip(grads_d, grads_c, strict=True):
        assert rel(b, a) < 1e-5


def test_apg_gradient_equals_torch_env_gradient():
    """Full-horizon APG gradient through the plain-torch reference env and through the fused env (autograd and
    hand-written BPTT), from the same states (no noise, gentle states: no resets in the window)."""
    n, horizon = 16, 50
    cfg = QuadrotorTaskConfig(num_envs=n, noise=False, reward=WEIGHTS)
    ref, fa, fb = QuadrotorHoverEnv(cfg, seed=2), DiffFusedHoverEnv(cfg, seed=1), DiffFusedHoverEnv(cfg, seed=1)
    for env in (fa, fb):
        env.state[:, :3] *= 0.3
        env.state[:, 7:13] *= 0.1
        q = env.state[:, 3:7].clone()
        q[:, 1:] *= 0.05
        env.state[:, 3:7] = q / q.norm(dim=1, keepdim=True)
        env.target[:] = torch.tensor([0.05, -0.02, 0.03])
        env.force.mul_(0.1)
        env.state[:, 13:] = env.params.hover_rpm
    for k in ("state", "force", "torque", "target"):
        getattr(ref, k).copy_(getattr(fa, k))
    s = fa.state
    obs = torch.cat((s[:, :3] - fa.target, quat_to_rotmat(s[:, 3:7]).reshape(-1, 9), s[:, 7:13], torch.zeros(n, 128)),
                    -1)
    pol = actor(1, scale=5.0)
    total_r, grads_r = autograd_rollout(ref, pol, obs, horizon)
    total_a, grads_a = autograd_rollout(fa, pol, obs, horizon)
    engine = FusedBPTT(pol, fb, horizon)
    total_b, grads_b, _ = engine.rollout_gradient(obs)
    assert not engine.dones.any()
    torch.testing.assert_close(total_a, total_r, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(total_b, total_r.detach(), rtol=1e-5, atol=1e-5)
    assert max(g.norm().item() for g in grads_r) > 1.0  # a real gradient, through 50 steps of dynamics
    for r, a, b in zip(grads_r, grads_a, grads_b, strict=True):
        assert rel(a, r) < 2e-4 and rel(b, r) < 2e-4


@pytest.mark.parametrize("activation", ["fast_tanh", "tanh", "relu"])
def test_mlp_apply_is_the_module(activation):
    torch.manual_seed(0)
    m = MLP(20, (16, 8), 3, activation, output="tanh")
    x = torch.randn(32, 20, requires_grad=True) * 2
    y = mlp_apply(m, x)
    assert torch.equal(y, m(x))
    g = torch.randn(32, 3)
    for a, b in zip(torch.autograd.grad(y, [x, *m.parameters()], g), torch.autograd.grad(m(x), [x, *m.parameters()], g),
                    strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    md = m.double()
    xd = torch.randn(4, 20, dtype=torch.float64, requires_grad=True)
    params = list(md.parameters())
    assert torch.autograd.gradcheck(lambda x, *p: mlp_apply(md, x), (xd, *params))


def test_runner_picks_the_hand_written_bptt_on_cpu(tmp_path):
    cfg = tiny("apg")
    runner = make_runner(cfg, tmp_path / "a")
    assert isinstance(runner.env, DiffFusedHoverEnv) and runner.bptt is not None
    cfg.apg.backprop = "autograd"
    assert make_runner(cfg, tmp_path / "b").bptt is None
    cfg.apg.backprop, cfg.env_impl = "auto", "torch"
    runner = make_runner(cfg, tmp_path / "c")
    assert isinstance(runner.env, QuadrotorHoverEnv) and not supports(runner.actor, runner.env)


@pytest.mark.parametrize("backprop", ["auto", "autograd"])
def test_bptt_and_autograd_runners_learn_alike(tmp_path, backprop):
    """Both gradient paths give the same first updates (up to float rounding), and resume bit-exactly."""
    cfg = tiny("apg")
    cfg.apg.backprop = backprop
    full = make_runner(cfg, tmp_path / "a")
    full.train()
    part = make_runner(cfg, tmp_path / "b")
    part.train(stop_at=320)
    resumed = make_runner(cfg, tmp_path / "b")
    resumed.load(tmp_path / "b" / "checkpoint")
    resumed.train()
    for (k, a), (_, b) in zip(full.actor.state_dict().items(), resumed.actor.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    one = make_runner(cfg, tmp_path / "c")
    one.train(stop_at=80)  # one update
    cfg.apg.backprop = "autograd" if backprop == "auto" else "auto"
    other = make_runner(cfg, tmp_path / "d")
    other.train(stop_at=80)
    for a, b in zip(one.actor.parameters(), other.actor.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_bound_barrier_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    rel_ = rng.uniform(-0.65, 0.65, (64, 3))
    pen, grad = bound_barrier(rel_, 0.4, 0.6)
    assert pen[np.abs(rel_).max(-1) < 0.4].max() == 0.0 and pen.max() > 0.5
    np.testing.assert_allclose(bound_barrier(np.array([[0.6, -0.6, 0.5]]), 0.4, 0.6)[0], [2.25])
    eps = 1e-6
    for i in range(3):
        d = np.zeros(3)
        d[i] = eps
        fd = (bound_barrier(rel_ + d, 0.4, 0.6)[0] - bound_barrier(rel_ - d, 0.4, 0.6)[0]) / (2 * eps)
        np.testing.assert_allclose(grad[:, i], fd, rtol=1e-5, atol=1e-7)


def test_bptt_with_bound_barrier_matches_autograd():
    """The barrier term of the hand-written BPTT == autograd of ``reward - w * barrier(state after the step)``
    over the steps whose env lives on, through crashes and resets."""
    cfg = QuadrotorTaskConfig(num_envs=16, episode_length=12, reward=WEIGHTS)
    pol, horizon, w, start = actor(), 30, 50.0, 0.1
    env_a, env_b = DiffFusedHoverEnv(cfg, seed=3), DiffFusedHoverEnv(cfg, seed=3)
    obs = env_a.reset(seed=4)["policy"]
    env_b.reset(seed=4)
    total, active = 0.0, 0
    for _ in range(horizon):
        out, r, term, trunc, _ = env_a.step(pol(obs))
        rel_ = env_a._links[0][:, :3] - torch.from_numpy(env_a._target)
        h = (rel_.abs() - start).clamp(min=0) / (cfg.position_limit - start)
        live = ~(term | trunc)
        active += int(((h > 0).any(-1) & live).sum())
        obs, total = out["policy"], total + r.mean() - w * ((h * h).sum(-1) * live).mean()
    total = total / horizon
    grads_a = torch.autograd.grad(total, list(pol.parameters()))
    engine = FusedBPTT(pol, env_b, horizon, barrier=w, barrier_start=start)
    total_b, grads_b, _ = engine.rollout_gradient(env_b.reset(seed=4)["policy"])
    assert active > 50 and engine.dones.sum() >= 16
    torch.testing.assert_close(total_b, total.detach(), rtol=1e-5, atol=1e-5)
    env_c = DiffFusedHoverEnv(cfg, seed=3)
    _, plain, _ = FusedBPTT(pol, env_c, horizon).rollout_gradient(env_c.reset(seed=4)["policy"])
    for a, b, c in zip(grads_a, grads_b, plain, strict=True):
        assert rel(b, a) < 1e-5 and rel(c, a) > 1e-2  # the barrier changes the gradient


def test_bound_barrier_by_autograd_matches_the_hand_written_bptt(tmp_path):
    """The runner's autograd barrier == the hand-written BPTT's (one update's gradient on the fused env by both
    paths); on the torch env too the barrier changes the gradient; a start at the bound is refused."""
    cfg = tiny("apg")
    cfg.apg.bound_barrier_start = 0.02
    grads = {}
    for name, backprop, w, impl in (("bptt", "auto", 50.0, "auto"), ("autograd", "autograd", 50.0, "auto"),
                                    ("plain", "autograd", 0.0, "auto"), ("torch", "auto", 50.0, "torch"),
                                    ("torch_plain", "auto", 0.0, "torch")):
        cfg.apg.backprop, cfg.apg.bound_barrier, cfg.env_impl = backprop, w, impl
        runner = make_runner(cfg, tmp_path / name)
        assert (runner.bptt is not None) == (name == "bptt")
        runner.train(stop_at=80)  # one update: p.grad keeps its clipped gradient
        grads[name] = [p.grad.clone() for p in runner.actor.parameters()]
    for a, b, c, d, e in zip(*(grads[k] for k in ("autograd", "bptt", "plain", "torch", "torch_plain")),
                             strict=True):
        assert rel(b, a) < 1e-4 and rel(c, a) > 1e-2 and rel(e, d) > 1e-2
    cfg.apg.bound_barrier, cfg.apg.bound_barrier_start = 1.0, 0.6
    with pytest.raises(ValueError, match="0 <= start < position_limit"):
        make_runner(cfg, tmp_path / "bad")


@pytest.mark.parametrize("env_cls", [QuadrotorHoverEnv, DiffFusedHoverEnv])
def test_position_error_is_the_clean_relative_position_with_its_graph(env_cls):
    env = env_cls(QuadrotorTaskConfig(num_envs=4, reward=WEIGHTS), seed=0)
    obs = env.reset(seed=1)
    torch.testing.assert_close(env.position_error(), obs["critic"][:, :3])
    action = torch.zeros(4, 4, requires_grad=True)
    obs, *_ = env.step(action)
    rel_ = env.position_error()
    torch.testing.assert_close(rel_.detach(), obs["critic"][:, :3])
    (g,) = torch.autograd.grad(rel_[:, 2].sum(), action)  # more thrust now, higher after the step
    assert (g > 0).all()
