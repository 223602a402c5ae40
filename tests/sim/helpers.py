"""Shared set-ups for the tests of both hover-env implementations."""

import torch


def hold_at_target(env) -> None:
    """Put every env at rest at the target: level, zero velocities, rotors at hover speed, no disturbance."""
    env.state[:, :13] = torch.tensor([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=torch.float32)
    env.state[:, 13:] = env.params.hover_rpm
    env.force.zero_()
    env.torque.zero_()
