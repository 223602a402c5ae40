"""The fused hover env over vehicles: draws, forward against the torch env, adjoint against torch autograd."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from robot_rl.algorithms.apg import APG, APGConfig
from robot_rl.algorithms.apg_bptt import FusedBPTT
from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig, RewardWeights, make_hover_env
from sim.quadrotor import _vehicle_kernels as V
from sim.quadrotor.diff_fused import DiffFusedHoverEnv
from sim.quadrotor.fused import FusedQuadrotorHoverEnv
from sim.quadrotor.vehicles import (
    VEHICLE_KEYS,
    VehicleDistribution,
    vehicle_command_rpm,
    vehicle_hover_action,
    vehicle_param_tensors,
)
from tests.sim.helpers import autograd_rollout, rel
from tests.sim.test_fused import stabilising_action

WEIGHTS = RewardWeights(position=40.0, orientation=5.0, linear_velocity=0.5, angular_velocity=0.05, action=0.05)
SPAN = VehicleDistribution().widened(0.1)  # the robust preset's: latency 0-3 steps


def cfg(n: int, **kw) -> QuadrotorTaskConfig:
    kw.setdefault("vehicles", SPAN)
    return QuadrotorTaskConfig(num_envs=n, reward=WEIGHTS, action_history=4, **kw)


def pair(n: int, cls=FusedQuadrotorHoverEnv, **kw) -> tuple[FusedQuadrotorHoverEnv, QuadrotorHoverEnv]:
    """A fused env and the torch env flying the same vehicles from the same gentle states (no noise)."""
    c = cfg(n, noise=False, position_limit=50.0, **kw)
    ref, fused = QuadrotorHoverEnv(c, seed=2), cls(c, seed=1)
    ref.state[:, :3] *= 0.3
    ref.state[:, 7:13] *= 0.1
    q = ref.state[:, 3:7].clone()
    q[:, 1:] *= 0.05
    ref.state[:, 3:7] = q / q.norm(dim=1, keepdim=True)
    ref.state[:, 13:] = 14000.0
    ref.target[:] = torch.tensor([0.05, -0.02, 0.03])
    ref.force.mul_(0.1)
    for k in ("state", "force", "torque", "target"):
        getattr(fused, k).copy_(getattr(ref, k))
    fused.set_vehicles(ref.vehicle_values)
    ref._delay[:] = ref._state_obs()[None]  # both delay lines restart at the current observation
    return fused, ref


def test_vehicle_draws_ranges_reproducibility_and_resets():
    a, b = FusedQuadrotorHoverEnv(cfg(64), seed=3), FusedQuadrotorHoverEnv(cfg(64), seed=3)
    va = torch.stack(list(a.vehicles().values()), -1)
    assert torch.equal(va, torch.stack(list(b.vehicles().values()), -1))
    for i, (name, (lo, hi)) in enumerate(SPAN.ranges().items()):
        assert VEHICLE_KEYS[i] == name
        assert (va[:, i] >= lo).all() and (va[:, i] <= hi).all(), name
        assert va[:, i].unique().numel() > (3 if name == "latency_steps" else 60), name
    assert torch.equal(va[:, 11], va[:, 11].round())
    # the derived parameters are those of the torch code (vehicles.py)
    v = a.vehicles()
    pt = vehicle_param_tensors(a.params, v)
    vp = torch.from_numpy(a._vprm)
    for col, ref in ((V.VP_KQ, pt.thrust_coefficient), (V.VP_KL, pt.thrust_linear), (V.VP_MIN, pt.rpm_min),
                     (V.VP_MAX, pt.rpm_max), (V.VP_HOVER, vehicle_hover_action(a.params, v)[:, None]),
                     (V.VP_TAU_DN, pt.motor_time_constant_down)):
        torch.testing.assert_close(vp[:, col:col + 1], ref.reshape(-1, 1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(vp[:, V.VP_J:V.VP_J + 3], pt.inertia, rtol=1e-6, atol=0)
    torch.testing.assert_close(vp[:, V.VP_RX:V.VP_RX + 4], pt.rotor_positions[..., 0], rtol=1e-6, atol=0)
    torch.testing.assert_close(vp[:, V.VP_YAW:V.VP_YAW + 4], pt.yaw_torque, rtol=1e-6, atol=0)
    # an env that terminates gets a new vehicle; the others keep theirs; reset(seed) restarts the draws
    a.state[5, 0] += 5.0
    _, _, term, _, _ = a.step(torch.zeros(64, 4))
    changed = (torch.stack(list(a.vehicles().values()), -1) != va).any(-1)
    assert term[5] and changed.tolist() == term.tolist()
    assert torch.equal(a.reset(seed=7)["policy"], b.reset(seed=7)["policy"])
    assert a.obs_dims == QuadrotorHoverEnv(cfg(2)).obs_dims


def test_forward_matches_the_torch_env_over_vehicles():
    """Same vehicles, states and actions: observations (with latency), critic, reward and state agree over 60
    steps (the action clamp, idle floors, both motor time constants), to float32 rounding one step from equal
    states and to 1e-4 in free runs between (as the nominal ``test_fused.test_matches_torch_reference``)."""
    fused, ref = pair(24)
    g = torch.Generator().manual_seed(0)
    assert set(ref.latency.tolist()) == {0, 1, 2, 3}
    assert ref._hover_ref.std() > 0.05 and (ref.pt.rpm_min > 3000).any()
    went_down = went_up = 0
    for t in range(60):
        a = stabilising_action(ref, g) - ref.hover_action + ref._hover_ref
        a[t % 24, t % 4] = 1.2 if t % 2 else -1.3  # outside the clamp; below every idle floor
        went_up += int((vehicle_command_rpm(a, ref.pt) > ref.state[:, 13:]).sum())
        went_down += int((vehicle_command_rpm(a, ref.pt) < ref.state[:, 13:]).sum())
        tol = 1e-5 if t % 4 == 0 else 1e-4
        if t % 4 == 0:
            ref.state.copy_(fused.state)
        out_f, out_r = fused.step(a), ref.step(a)
        torch.testing.assert_close(fused.state, ref.state, rtol=tol / 5, atol=tol / 10)
        for x, y in ((out_f[0]["policy"], out_r[0]["policy"]), (out_f[0]["critic"], out_r[0]["critic"]),
                     (out_f[1], out_r[1]), (out_f[4]["reward_terms"], out_r[4]["reward_terms"])):
            torch.testing.assert_close(x, y, rtol=tol, atol=tol)
        assert not out_f[4]["done_mask"].any() and not out_r[4]["done_mask"].any()
        for env in (fused, ref):  # position does not feed back into the dynamics: keep it inside the limit
            env.state[:, :3] *= 0.5
    assert went_up > 100 and went_down > 100


def actor(obs_dim: int, seed: int = 1, scale: float = 5.0):
    torch.manual_seed(seed)
    algo = APG(APGConfig(), obs_dim, 4, 0.33)
    with torch.no_grad():
        algo.actor.linears[-1].weight.mul_(scale)
    return algo.actor


def test_adjoint_gradient_matches_torch_autograd_over_vehicles():
    """The APG gradient through 40 steps of the torch env (autograd) and of the fused env (its hand-written
    adjoint, both by autograd over the per-step VJP and by the hand-written BPTT), 16 vehicles with latency."""
    n, horizon = 16, 40
    fa, ref = pair(n, cls=DiffFusedHoverEnv)
    fb, _ = pair(n, cls=DiffFusedHoverEnv)
    obs = ref._observe(fresh=torch.ones(n, dtype=torch.bool))["policy"]
    assert fa.carry_dim == 17 + 3 * 18
    pol = actor(obs.shape[1])
    total_r, grads_r = autograd_rollout(ref, pol, obs, horizon)
    total_a, grads_a = autograd_rollout(fa, pol, obs, horizon)
    engine = FusedBPTT(pol, fb, horizon)
    total_b, grads_b, _ = engine.rollout_gradient(obs)
    assert not engine.dones.any()
    torch.testing.assert_close(total_a, total_r, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(total_b, total_r.detach(), rtol=1e-5, atol=1e-5)
    assert max(g.norm().item() for g in grads_r) > 1.0
    for r, a, b in zip(grads_r, grads_a, grads_b, strict=True):
        assert rel(a, r) < 1e-4 and rel(b, r) < 1e-4


@pytest.mark.parametrize("noise", [True, False])
def test_bptt_matches_autograd_through_resets_over_vehicles(noise):
    c = cfg(16, episode_length=12, noise=noise)
    env_a, env_b = DiffFusedHoverEnv(c, seed=3), DiffFusedHoverEnv(c, seed=3)
    obs = env_a.reset(seed=4)["policy"]
    assert torch.equal(obs, env_b.reset(seed=4)["policy"])
    pol = actor(obs.shape[1], seed=0, scale=30.0)
    total_a, grads_a = autograd_rollout(env_a, pol, obs, 30)
    engine = FusedBPTT(pol, env_b, 30)
    total_b, grads_b, _ = engine.rollout_gradient(obs)
    assert engine.dones.sum() >= 16
    assert torch.equal(env_a.state, env_b.state)
    torch.testing.assert_close(total_b, total_a.detach(), rtol=1e-6, atol=1e-6)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert rel(b, a) < 1e-5


def test_factory_state_dict_and_unsupported():
    c = cfg(4)
    assert type(make_hover_env(c, differentiable=True)) is DiffFusedHoverEnv
    held_out = replace(c, vehicles=replace(SPAN, seed=5))
    assert type(make_hover_env(held_out)) is QuadrotorHoverEnv  # held-out vehicles: torch's generator
    env = FusedQuadrotorHoverEnv(c, seed=0)
    for _ in range(3):
        env.step(torch.zeros(4, 4))
    sd = env.state_dict()
    other = FusedQuadrotorHoverEnv(c, seed=9)
    other.load_state_dict(sd)
    x, y = env.step(torch.full((4, 4), 0.1)), other.step(torch.full((4, 4), 0.1))
    assert torch.equal(x[0]["policy"], y[0]["policy"]) and torch.equal(x[0]["critic"], y[0]["critic"])
