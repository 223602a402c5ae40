"""Vehicle distribution: reproducible per-env / per-reset draws, ranges, derived quantities, nominal unchanged."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.diff_fused import DiffFusedHoverEnv
from sim.quadrotor.dynamics import rk4_step, step_dynamics
from sim.quadrotor.factory import make_hover_env
from sim.quadrotor.params import crazyflie_params
from sim.quadrotor.task import QuadrotorHoverEnv
from sim.quadrotor.vehicles import (
    VEHICLE_KEYS,
    VehicleDistribution,
    sample_vehicles,
    vehicle_command_rpm,
    vehicle_hover_action,
    vehicle_param_tensors,
)

ON = VehicleDistribution(enabled=True)


def _env(seed: int, n: int = 16, **kw) -> QuadrotorHoverEnv:
    return QuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=n, vehicles=ON, **kw), seed=seed)


def test_draws_reproducible_per_seed_per_env_and_per_reset() -> None:
    a, b, c = _env(3), _env(3), _env(4)
    assert torch.equal(a.vehicle_values, b.vehicle_values)
    assert not torch.equal(a.vehicle_values, c.vehicle_values)
    # every env has its own vehicle
    assert len(set(a.vehicle_values[:, VEHICLE_KEYS.index("mass")].tolist())) == 16
    first = a.vehicle_values.clone()
    a.reset()
    b.reset()
    assert torch.equal(a.vehicle_values, b.vehicle_values)
    assert not torch.isclose(a.vehicle_values, first).all(-1).any()  # all redrawn at reset
    # an env that terminates gets a new vehicle at its auto-reset; the others keep theirs
    before = a.vehicle_values.clone()
    a.state[2, 0] += 5.0
    _, _, terminated, _, _ = a.step(torch.zeros(16, 4))
    assert terminated[2]
    changed = ~torch.isclose(a.vehicle_values, before).all(-1)
    assert changed.tolist() == terminated.tolist()
    # reset(seed) restarts the stream
    a.reset(seed=11)
    b.reset(seed=11)
    assert torch.equal(a.vehicle_values, b.vehicle_values)


def test_sampled_parameters_within_ranges_and_derived_quantities() -> None:
    gen = torch.Generator().manual_seed(0)
    base = crazyflie_params()
    v = sample_vehicles(ON, 4000, gen)
    for name, (lo, hi) in ON.ranges().items():
        assert lo - 1e-6 <= v[name].min() and v[name].max() <= hi + 1e-6, name
        assert v[name].max() - v[name].min() > 0.8 * (hi - lo), name  # the span is covered
    pt = vehicle_param_tensors(base, v)
    g = 9.81
    full = pt.rpm_max
    thrust = 4 * (pt.thrust_coefficient * full ** 2 + pt.thrust_linear * full)
    torch.testing.assert_close(thrust[:, 0] / (pt.mass[:, 0] * g), v["thrust_to_weight"], rtol=1e-4, atol=0)
    # at the vehicle's hover action its rotors carry exactly its weight (where the idle floor is below hover)
    a = vehicle_hover_action(base, v)[:, None].expand(-1, 4)
    w = vehicle_command_rpm(a, pt)
    hover = 4 * (pt.thrust_coefficient * w ** 2 + pt.thrust_linear * w)[:, 0]
    above_idle = w[:, 0] > pt.rpm_min[:, 0] + 1
    torch.testing.assert_close(hover[above_idle], (pt.mass[:, 0] * g)[above_idle], rtol=1e-4, atol=0)
    # the thrust at the paper's hover speed is thrust_scale times the paper's, whatever the linear share
    wh = base.hover_rpm
    f = pt.thrust_coefficient[:, 0] * wh ** 2 + pt.thrust_linear[:, 0] * wh
    torch.testing.assert_close(f / (base.thrust_coefficient * wh ** 2), v["thrust_scale"], rtol=1e-4, atol=0)
    # yaw torque per thrust and rotor arms
    torch.testing.assert_close(pt.yaw_torque.abs()[:, 0], v["torque_ratio"])
    torch.testing.assert_close(pt.rotor_positions[:, 0, 0], 0.028 * v["arm_scale"])


def test_paper_vehicle_reproduces_the_nominal_model() -> None:
    base = crazyflie_params()
    wmax = base.rpm_max
    tw = 4 * base.thrust_coefficient * wmax ** 2 / (base.mass * 9.81)
    one = torch.ones(5)
    v = {"mass": one * base.mass, "inertia_xy_scale": one, "inertia_z_scale": one, "thrust_scale": one,
         "thrust_linear_fraction": one * 0, "torque_ratio": one * base.torque_coefficient, "motor_tau_up": one * 0.15,
         "motor_tau_down": one * 0.15, "idle_rpm": one * 0, "thrust_to_weight": one * tw, "arm_scale": one,
         "latency_steps": one * 0, "obs_noise_scale": one}
    pt = vehicle_param_tensors(base, v)
    torch.testing.assert_close(pt.rpm_max[:, 0], one * wmax, rtol=1e-5, atol=0)
    gen = torch.Generator().manual_seed(1)
    state = torch.cat((torch.randn(5, 3, generator=gen) * 0.1, torch.tensor([[0.9, 0.1, -0.2, 0.3]]).repeat(5, 1),
                       torch.randn(5, 6, generator=gen), torch.full((5, 4), 12000.0)), -1)
    state[:, 3:7] /= state[:, 3:7].norm(dim=-1, keepdim=True)
    action = torch.rand(5, 4, generator=gen) * 2 - 1
    ref = step_dynamics(state, action, base)
    got = rk4_step(state, vehicle_command_rpm(action, pt), pt, 0.01)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-3)  # RPM entries ~1e4: atol 1e-3 is 1e-7 relative
    assert math.isclose(vehicle_hover_action(base, v)[0].item(), base.hover_action, rel_tol=1e-4)


def test_asymmetric_motor_time_constants_and_idle_floor() -> None:
    base = crazyflie_params()
    pt = base.tensors(2)
    fast_down = pt._replace(motor_time_constant_down=torch.full((2, 1), 0.05), rpm_min=torch.full((2, 1), 4000.0),
                            rpm_max=torch.full((2, 1), base.rpm_max))
    state = torch.zeros(2, 17)
    state[:, 3] = 1.0
    state[:, 13:] = 10000.0
    cmd = torch.tensor([[20000.0] * 4, [0.0] * 4])
    cmd = torch.maximum(cmd, fast_down.rpm_min)  # the vehicle's command floor
    nxt = rk4_step(state, cmd, fast_down, 0.01)
    up, down = nxt[0, 13].item() - 10000.0, 10000.0 - nxt[1, 13].item()
    assert up == pytest.approx(10000.0 * (1 - math.exp(-0.01 / 0.15)), rel=1e-3)
    assert down == pytest.approx(6000.0 * (1 - math.exp(-0.01 / 0.05)), rel=1e-3)
    # a linear thrust term of zero changes nothing
    zero = pt._replace(thrust_linear=torch.zeros(2, 1))
    torch.testing.assert_close(rk4_step(state, cmd, zero, 0.01), rk4_step(state, cmd, pt, 0.01), rtol=0, atol=0)


def test_nominal_unchanged_when_off_and_unsupported_backends_say_so() -> None:
    off = QuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=4), seed=0)
    assert off.obs_dims == {"policy": 146, "critic": 156}
    nominal = crazyflie_params().tensors(4)
    for k in ("mass", "inertia", "thrust_coefficient", "motor_time_constant"):
        assert torch.equal(getattr(off.pt, k), getattr(nominal, k))
    assert off.pt.thrust_linear is None and off.pt.motor_time_constant_down is None
    assert off.pt.rpm_max == 21702.0 and off.hover_action == pytest.approx(0.334, abs=1e-3)
    on = _env(0, n=4)
    assert on.obs_dims["critic"] == 156 + len(VEHICLE_KEYS) + 1  # + the latency fraction
    assert on.reset()["critic"].shape == (4, on.obs_dims["critic"])
    cfg = QuadrotorTaskConfig(num_envs=4, vehicles=ON)
    assert isinstance(make_hover_env(cfg, impl="auto", differentiable=True), DiffFusedHoverEnv)  # fused kernels
    held_out = replace(cfg, vehicles=replace(ON, seed=3))  # held-out vehicles come from torch's generator
    assert isinstance(make_hover_env(held_out, impl="auto"), QuadrotorHoverEnv)
    with pytest.raises(ValueError, match="vehicles"):
        make_hover_env(held_out, impl="fused")
    with pytest.raises(ValueError, match="vehicles"):  # (the attitude level flies vehicles: test_attitude_vehicles)
        QuadrotorHoverEnv(replace(cfg, randomization=replace(cfg.randomization, mass=(0.9, 1.1))))


def test_widened_distribution_contains_training_and_state_dict_round_trip() -> None:
    wide = ON.widened(0.1)
    for name, (lo, hi) in ON.ranges().items():
        wlo, whi = getattr(wide, name)
        assert wlo <= lo and whi >= hi and (whi - wlo) > (hi - lo), name
    env = _env(5, n=4)
    env.step(torch.zeros(4, 4))
    snap = env.state_dict()
    obs1 = env.step(torch.full((4, 4), 0.3))[0]["policy"]
    other = _env(9, n=4)
    other.load_state_dict(snap)
    torch.testing.assert_close(other.step(torch.full((4, 4), 0.3))[0]["policy"], obs1, rtol=0, atol=0)


def test_default_span_ends_at_the_published_crazyflie_values() -> None:
    """Issue 14's span: roll/pitch inertia up to 1.7e-5 kg m^2 and yaw up to 3.0e-5 (not 5x on both axes), and
    rotor arms from the paper's 0.028 m per axis up to the Crazyflie 2.x frame's (92 mm between diagonal motors)."""
    frame = crazyflie_params()
    span = VehicleDistribution()
    assert frame.inertia[0] * span.inertia_xy_scale[1] == pytest.approx(1.7e-5, rel=0.01)
    assert frame.inertia[2] * span.inertia_z_scale[1] == pytest.approx(3.0e-5, rel=0.01)
    assert span.inertia_xy_scale[0] == span.inertia_z_scale[0] == span.arm_scale[0] == 1.0
    assert abs(frame.rotor_positions[0][0]) * span.arm_scale[1] == pytest.approx(0.046 / math.sqrt(2), rel=0.01)
    assert span.mass == (0.027, 0.033) and span.thrust_to_weight == (1.3, 2.3)


def test_far_vehicle_sits_toward_the_hard_end_of_every_range() -> None:
    from sim.quadrotor.vehicles import far_vehicle

    far = far_vehicle(hardness=0.7)
    assert far.enabled
    for name, (lo, hi) in ON.ranges().items():
        a, b = getattr(far, name)
        assert a == b and lo <= a <= hi, name
    assert far.mass[0] == pytest.approx(0.027 + 0.7 * 0.006) and far.thrust_to_weight[0] == pytest.approx(1.6)
    assert far.motor_tau_down[0] == pytest.approx(0.15 - 0.7 * 0.08) and far.latency_steps == (1, 1)
    env = QuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=3, vehicles=far), seed=0)
    assert torch.allclose(env.vehicle_values, env.vehicle_values[:1].expand(3, -1))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("latency_steps", (0, 1.5), "whole numbers"), ("mass", (0.027, math.inf), "finite"),
    ("idle_rpm", (math.nan, 0.0), "finite")])
def test_env_refuses_a_range_it_cannot_draw(field: str, value: tuple, message: str) -> None:
    dist = replace(VehicleDistribution(), enabled=True, **{field: value})
    with pytest.raises(ValueError, match=message):
        QuadrotorHoverEnv(replace(QuadrotorTaskConfig(), num_envs=2, vehicles=dist))
