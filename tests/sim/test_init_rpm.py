"""Where an episode's rotors start: the paper's 10,851 RPM, the speed action 0 commands on each env's own vehicle
(``init_rpm_relative``, the paper code's ``relative_rpm``), or its hover speed (``init_rpm_hover``, a take-over in
flight), alike in the torch and the fused env."""

from __future__ import annotations

import pytest
import torch

from sim.quadrotor import DomainRandomization, QuadrotorHoverEnv, QuadrotorTaskConfig
from sim.quadrotor.dynamics import RPM, hover_rpm
from sim.quadrotor.fused import FusedQuadrotorHoverEnv
from sim.quadrotor.vehicles import VehicleDistribution, vehicle_command_rpm, vehicle_param_tensors, vehicle_rpm

SPAN = VehicleDistribution().widened(0.1)
NO_DR = DomainRandomization()


def cfg(n: int, relative: bool, vehicles: VehicleDistribution = SPAN, hover: bool = False,
        randomization: DomainRandomization = NO_DR) -> QuadrotorTaskConfig:
    return QuadrotorTaskConfig(num_envs=n, action_history=4, init_rpm_relative=relative, vehicles=vehicles,
                               init_guidance=0.0, init_rpm_hover=hover, randomization=randomization)


def action_zero_rpm(env) -> torch.Tensor:
    """``[n]``: the speed action 0 commands on each env's vehicle, from the vehicle's own parameters."""
    _, _, rpm_max, _ = vehicle_rpm(env.params, env.vehicles())
    return torch.maximum(0.5 * rpm_max, env.vehicles()["idle_rpm"])


def test_relative_start_is_each_vehicles_action_zero_speed_in_both_envs():
    for cls in (QuadrotorHoverEnv, FusedQuadrotorHoverEnv):
        env = cls(cfg(64, True), seed=3)
        rpm = env.state[:, RPM]
        want = action_zero_rpm(env)
        torch.testing.assert_close(rpm, want[:, None].expand(-1, 4), rtol=1e-5, atol=0.0)
        pt = vehicle_param_tensors(env.params, env.vehicles())
        torch.testing.assert_close(rpm, vehicle_command_rpm(torch.zeros(64, 4), pt), rtol=1e-5, atol=0.0)
        assert want.std() > 500.0  # the vehicles differ, and so do their starts
        # an env that ends restarts at its new vehicle's speed; action 0 holds the others' rotors where they are
        env.state[5, 0] += 5.0
        before = env.state[:, RPM].clone()
        _, _, term, _, _ = env.step(torch.zeros(64, 4))
        assert term[5] and int(term.sum()) == 1
        torch.testing.assert_close(env.state[5, RPM], action_zero_rpm(env)[5].expand(4), rtol=1e-5, atol=0.0)
        live = ~term
        torch.testing.assert_close(env.state[live][:, RPM], before[live], rtol=1e-6, atol=0.0)


def test_fixed_start_and_the_paper_model_keep_10851():
    for cls in (QuadrotorHoverEnv, FusedQuadrotorHoverEnv):
        fixed = cls(cfg(32, False), seed=3)
        assert torch.equal(fixed.state[:, RPM], torch.full((32, 4), 10851.0))
        for relative in (False, True):  # on the paper's model action 0 commands 10,851 RPM
            paper = cls(cfg(8, relative, VehicleDistribution(enabled=False)), seed=3)
            assert torch.equal(paper.state[:, RPM], torch.full((8, 4), 10851.0))


def test_hover_start_carries_each_vehicles_weight_in_both_envs():
    for cls in (QuadrotorHoverEnv, FusedQuadrotorHoverEnv):
        env = cls(cfg(64, False, hover=True), seed=3)
        v = env.vehicles()
        kq, kl, _, hover = vehicle_rpm(env.params, v)
        want = torch.maximum(hover, v["idle_rpm"])
        rpm = env.state[:, RPM]
        torch.testing.assert_close(rpm, want[:, None].expand(-1, 4), rtol=1e-5, atol=0.0)
        lift = (4.0 * (kq * want * want + kl * want)) / (v["mass"] * 9.81)  # thrust over weight
        above_idle = hover >= v["idle_rpm"]
        assert int(above_idle.sum()) > 48
        torch.testing.assert_close(lift[above_idle], torch.ones(int(above_idle.sum())), rtol=1e-4, atol=0.0)
        assert want.std() > 500.0
        env.state[5, 0] += 5.0  # an env that ends restarts at its new vehicle's hover speed
        _, _, term, _, _ = env.step(torch.zeros(64, 4))
        assert term[5]
        _, _, _, hover = vehicle_rpm(env.params, env.vehicles())
        want5 = torch.maximum(hover, env.vehicles()["idle_rpm"])[5]
        torch.testing.assert_close(env.state[5, RPM], want5.expand(4), rtol=1e-5, atol=0.0)


def test_hover_start_on_the_frame_with_randomised_mass_and_thrust():
    dr = DomainRandomization(mass=(0.8, 1.2), thrust_coefficient=(0.8, 1.2))
    off = VehicleDistribution(enabled=False)
    for cls in (QuadrotorHoverEnv, FusedQuadrotorHoverEnv):
        paper = cls(cfg(8, False, off, hover=True), seed=3)
        torch.testing.assert_close(paper.state[:, RPM], torch.full((8, 4), paper.params.hover_rpm), rtol=1e-6,
                                   atol=0.0)
        env = cls(cfg(32, False, off, hover=True, randomization=dr), seed=3)
        rpm = env.state[:, RPM]
        torch.testing.assert_close(rpm, hover_rpm(env.pt).expand(-1, 4), rtol=1e-5, atol=0.0)
        lift = 4.0 * env.pt.thrust_coefficient[:, 0] * rpm[:, 0] ** 2 / (env.pt.mass[:, 0] * 9.81)
        torch.testing.assert_close(lift, torch.ones(32), rtol=1e-4, atol=0.0)
        assert rpm[:, 0].std() > 300.0  # the factors differ, and so do the starts


def test_two_rotor_starts_at_once_are_refused():
    for cls in (QuadrotorHoverEnv, FusedQuadrotorHoverEnv):
        with pytest.raises(ValueError, match="exclude each other"):
            cls(cfg(4, True, hover=True), seed=0)
