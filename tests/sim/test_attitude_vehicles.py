"""The attitude_thrust level on per-env vehicles: the firmware's PWM path meets each env's own vehicle."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig, crazyflie_params
from sim.quadrotor.attitude_level import vehicle_hover_thrust, vehicle_pwm_to_rpm
from sim.quadrotor.vehicles import VEHICLE_KEYS, VehicleDistribution, sample_vehicles, vehicle_param_tensors

BASE = crazyflie_params()
G = 9.81
PAPER_TW = 4 * BASE.thrust_coefficient * BASE.rpm_max ** 2 / (BASE.mass * G)


def fixed(seed: int | None = 7, **values: float) -> VehicleDistribution:
    """One vehicle (every range a point): the paper's, with ``values`` changed."""
    paper = {"mass": BASE.mass, "inertia_xy_scale": 1.0, "inertia_z_scale": 1.0, "thrust_scale": 1.0,
             "thrust_linear_fraction": 0.0, "torque_ratio": BASE.torque_coefficient, "motor_tau_up": 0.15,
             "motor_tau_down": 0.15, "idle_rpm": 0.0, "thrust_to_weight": PAPER_TW, "arm_scale": 1.0,
             "latency_steps": 0, "obs_noise_scale": 1.0} | values
    return VehicleDistribution(enabled=True, seed=seed, **{k: (v, v) for k, v in paper.items()})


def quiet(vehicles: VehicleDistribution | None = None, init_rpm: float | None = None, **kw) -> QuadrotorTaskConfig:
    """At the target, level, no noise or disturbance, 10 ms radio latency."""
    cfg = QuadrotorTaskConfig(num_envs=2, action_level="attitude_thrust", noise=False, init_guidance=1.0,
                              init_max_linear_velocity=0.0, init_max_angular_velocity=0.0,
                              init_rpm=init_rpm or BASE.hover_rpm, disturbance_force_std_g=0.0,
                              disturbance_torque_std=0.0, obs_angular_velocity=False, action_history=4,
                              vehicles=vehicles or VehicleDistribution())
    cfg.attitude.latency_ms = (10.0, 10.0)
    return replace(cfg, **kw)


def hover_rpm_and_max(mass: float, tw: float, scale: float, lin: float) -> tuple[float, float]:
    """Independent float64 solution of k_q w^2 + k_l w = f for the hover and the full-command speeds."""
    kq = scale * BASE.thrust_coefficient * (1 - lin)
    kl = scale * BASE.thrust_coefficient * lin * BASE.hover_rpm

    def solve(f: float) -> float:
        return (-kl + math.sqrt(kl * kl + 4 * kq * f)) / (2 * kq)

    return solve(mass * G / 4), solve(tw * mass * G / 4)


@pytest.mark.parametrize(("mass", "tw", "scale", "lin"), [(0.033, 1.3, 0.8, 0.0), (0.031, 1.5, 0.9, 0.3)])
def test_heavy_weak_vehicle_needs_its_own_hover_setpoint(mass, tw, scale, lin):
    w_hover, w_max = hover_rpm_and_max(mass, tw, scale, lin)
    expected = 65535 * w_hover / w_max
    if lin == 0.0:  # pure quadratic curve: the hover PWM ratio is 1 / sqrt(thrust-to-weight)
        assert expected == pytest.approx(65535 / math.sqrt(tw), rel=1e-9)
    nominal_pwm = 65535 * BASE.hover_rpm / BASE.rpm_max  # 43,713 on the paper's vehicle
    assert nominal_pwm == pytest.approx(43713, abs=1)
    dist = fixed(mass=mass, thrust_to_weight=tw, thrust_scale=scale, thrust_linear_fraction=lin)
    env = QuadrotorHoverEnv(quiet(dist, init_rpm=w_hover), seed=0)
    v = env.vehicles()
    torch.testing.assert_close(vehicle_hover_thrust(BASE, v), torch.full((2,), expected), rtol=2e-5, atol=0)
    assert expected > nominal_pwm + 8000  # e.g. 57,478 for the heavy vehicle with 1.3 thrust-to-weight
    # the env's hover reference (reward) is that setpoint, and flying it holds the vehicle exactly
    a = env._hover_ref.clone()
    assert a[:, :3].abs().max() == 0
    torch.testing.assert_close(env._level.setpoint(a)[:, 3], torch.full((2,), expected), rtol=2e-5, atol=0)
    for _ in range(200):
        env.step(a)
    assert env.state[:, :3].abs().max() < 1e-3 and (env.state[:, 3] - 1).abs().max() < 1e-6
    # the nominal vehicle's hover setpoint does not carry it: it sinks
    sink = QuadrotorHoverEnv(quiet(dist, init_rpm=w_hover, position_limit=10.0), seed=0)
    nominal_a = torch.tensor(sink._level.hover_action).repeat(2, 1)
    for _ in range(100):
        sink.step(nominal_a)
    assert (sink.state[:, 2] < -0.5).all()


def test_pwm_maps_to_each_vehicles_rotor_speed():
    v = sample_vehicles(VehicleDistribution(enabled=True), 64, torch.Generator().manual_seed(0))
    pt = vehicle_param_tensors(BASE, v)
    pwm = torch.rand(64, 4, generator=torch.Generator().manual_seed(1)) * 65535
    rpm = vehicle_pwm_to_rpm(pwm, pt)
    torch.testing.assert_close(rpm, torch.maximum(pwm / 65535 * pt.rpm_max, pt.rpm_min))
    full = vehicle_pwm_to_rpm(torch.full((64, 4), 65535.0), pt)
    thrust = 4 * (pt.thrust_coefficient * full ** 2 + pt.thrust_linear * full)[:, 0]
    torch.testing.assert_close(thrust / (pt.mass[:, 0] * G), v["thrust_to_weight"], rtol=1e-4, atol=0)
    assert (vehicle_pwm_to_rpm(torch.zeros(64, 4), pt) == pt.rpm_min).all()  # the idle floor


def test_paper_vehicle_flies_as_the_nominal_model_and_off_is_unchanged():
    """The paper's vehicle through the per-vehicle path reproduces the nominal attitude level (float32 rounding
    of the derived maximum RPM aside); with vehicles off nothing is drawn and the PWM map is the frame's."""
    cfg = QuadrotorTaskConfig(num_envs=8, action_level="attitude_thrust", obs_angular_velocity=False,
                              action_history=4, init_max_angle_deg=30.0)
    nominal = QuadrotorHoverEnv(cfg, seed=3)
    paper = QuadrotorHoverEnv(replace(cfg, vehicles=fixed()), seed=3)  # its own vehicle stream: same episodes
    assert not nominal._level.per_vehicle and paper._level.per_vehicle
    assert nominal.obs_dims["policy"] == paper.obs_dims["policy"]
    torch.testing.assert_close(paper._hover_ref, nominal._hover_ref.expand(8, 4), rtol=0, atol=2e-5)
    gen = torch.Generator().manual_seed(5)
    for _ in range(30):
        a = torch.tensor(nominal.hover_action) + 0.05 * torch.randn(8, 4, generator=gen)
        o1 = nominal.step(a)[0]["policy"]
        o2 = paper.step(a)[0]["policy"]
    torch.testing.assert_close(o2, o1, rtol=0, atol=1e-4)
    torch.testing.assert_close(paper.state, nominal.state, rtol=1e-4, atol=1e-4)


def test_attitude_vehicle_draws_reproducible_per_seed_per_env_and_differentiable():
    wide = VehicleDistribution(enabled=True)
    cfg = QuadrotorTaskConfig(num_envs=6, action_level="attitude_thrust", obs_angular_velocity=False,
                              action_history=4, init_max_angle_deg=30.0, vehicles=wide)
    a, b, c = QuadrotorHoverEnv(cfg, seed=1), QuadrotorHoverEnv(cfg, seed=1), QuadrotorHoverEnv(cfg, seed=2)
    assert torch.equal(a.vehicle_values, b.vehicle_values) and not torch.equal(a.vehicle_values, c.vehicle_values)
    assert len(set(a.vehicle_values[:, VEHICLE_KEYS.index("mass")].tolist())) == 6
    hover = a._hover_ref[:, 3]
    assert len(set(hover.tolist())) == 6  # every env its own hover thrust
    assert torch.equal(a._level._hover_queue[:, -1, 3], a._level.setpoint(a._hover_ref)[:, 3])
    act = a._hover_ref.clone().requires_grad_(True)
    ob_a, r, *_ = a.step(act)
    ob_b = b.step(a._hover_ref.clone())[0]
    torch.testing.assert_close(ob_a["policy"].detach(), ob_b["policy"], rtol=0, atol=0)
    _, r2, *_ = a.step(act * 1.01)  # the radio's 10-30 ms: the first setpoint arrives in the second step
    (r + r2).sum().backward()
    assert act.grad is not None and torch.isfinite(act.grad).all() and act.grad[:, 3].abs().min() > 0
    # a reset redraws every vehicle and its hover setpoint, the same way for the same seed
    a.reset(seed=4)
    b.reset(seed=4)
    assert torch.equal(a.vehicle_values, b.vehicle_values) and torch.equal(a._hover_ref, b._hover_ref)
    assert not torch.isclose(a._hover_ref[:, 3], hover).any()
    # randomization's physical factors are still excluded
    with pytest.raises(ValueError, match="randomization"):
        QuadrotorHoverEnv(replace(cfg, randomization=replace(cfg.randomization, obs_latency_steps=(0, 1))))
