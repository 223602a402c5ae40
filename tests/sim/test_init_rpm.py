"""Where an episode's rotors start: the paper's 10,851 RPM, or the speed action 0 commands on each env's own
vehicle (``init_rpm_relative``, the paper code's ``relative_rpm``), alike in the torch and the fused env."""

from __future__ import annotations

import torch

from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig
from sim.quadrotor.dynamics import RPM
from sim.quadrotor.fused import FusedQuadrotorHoverEnv
from sim.quadrotor.vehicles import VehicleDistribution, vehicle_command_rpm, vehicle_param_tensors, vehicle_rpm

SPAN = VehicleDistribution().widened(0.1)


def cfg(n: int, relative: bool, vehicles: VehicleDistribution = SPAN) -> QuadrotorTaskConfig:
    return QuadrotorTaskConfig(num_envs=n, action_history=4, init_rpm_relative=relative, vehicles=vehicles,
                               init_guidance=0.0)


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
