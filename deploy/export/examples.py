"""Small example exports (random weights) for tests, benchmarks and trying the runtime / ROS 2 node.

``export_hover_example`` writes a quadrotor hover-shaped policy (146 -> hidden -> 4, the L2F observation
from :meth:`sim.quadrotor.QuadrotorHoverEnv.export_spec`); ``export_arm_example`` writes an arm-shaped policy
with the arm observation vocabulary (``joint_position``, ``joint_velocity``, ``previous_action``, ``goal``) and
a ``joint_position`` action; ``export_ee_reach_example`` writes a hand-set proportional Panda reacher
(``ee_position``, ``goal_position`` -> ``ee_delta`` + gripper) until a trained arm policy exists. All go
through :func:`deploy.export.policy.export_policy`, so they are verified
against torch and carry a test vector like any trained export.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deploy.export.policy import export_policy
from robot_rl.models import MLP

ARM_JOINTS = ("joint1", "joint2", "joint3")


def arm_spec(joints: Sequence[str] = ARM_JOINTS, delta: bool = True, scale: float = 0.1,
             control_rate_hz: float = 50.0, joint_limit: float = 3.0) -> dict[str, Any]:
    """Observation/action contract of a joint-space reaching arm (``policy.json`` fields)."""
    n = len(joints)
    return {
        "observation": [
            {"name": "joint_position", "size": n, "unit": "rad", "low": -joint_limit, "high": joint_limit},
            {"name": "joint_velocity", "size": n, "unit": "rad/s", "low": -10.0, "high": 10.0},
            {"name": "goal", "size": n, "frame": "joint", "unit": "rad", "low": -joint_limit, "high": joint_limit},
            {"name": "previous_action", "size": n, "low": -1.0, "high": 1.0},
        ],
        "action": {"type": "joint_position", "size": n, "low": -1.0, "high": 1.0, "joints": list(joints),
                   "delta": delta, "scale": scale, "offset": 0.0},
        "control_rate_hz": control_rate_hz,
        "robot": "example_arm",
    }


def _export(out_dir: str | Path, spec: dict[str, Any], hidden: Sequence[int], seed: int,
            on_dist: np.ndarray, activation: str) -> dict[str, Any]:
    dim = sum(c["size"] for c in spec["observation"])
    torch.manual_seed(seed)
    net = MLP(dim, list(hidden), spec["action"]["size"], activation, "tanh")
    meta = {"robot": spec.get("robot", "example"), "task": "example (random weights)",
            "training": {"algorithm": "none", "seed": seed}}
    return export_policy(out_dir, net.graph(), net, spec, on_dist, meta, seed=seed)


def export_arm_example(out_dir: str | Path, joints: Sequence[str] = ARM_JOINTS, hidden: Sequence[int] = (32, 32),
                       seed: int = 0, **spec_kwargs: Any) -> dict[str, Any]:
    """Export a random arm-shaped MLP with :func:`arm_spec`; returns the written ``policy.json`` content."""
    spec = arm_spec(joints, **spec_kwargs)
    n = len(joints)
    rng = np.random.default_rng(seed)
    on_dist = np.concatenate([rng.uniform(-1, 1, (64, n)), rng.normal(0, 0.3, (64, n)), rng.uniform(-1, 1, (64, n)),
                              rng.uniform(-1, 1, (64, n))], axis=1).astype(np.float32)
    return _export(out_dir, spec, hidden, seed, on_dist, "tanh")


def hover_spec(control_rate_hz: float | None = None, attitude: bool = False) -> dict[str, Any]:
    """The L2F hover task's export spec (146-dim observation, 4 motor actions), or with ``attitude`` the
    ``crazyflie-hover-attitude`` preset's (attitude/thrust setpoints)."""
    from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig

    if attitude:
        from robot_rl.config import get_preset

        task = get_preset("crazyflie-hover-attitude").task
        task.num_envs = 16
    else:
        task = QuadrotorTaskConfig(num_envs=16)
    env = QuadrotorHoverEnv(task, seed=0)
    spec = env.export_spec()
    spec["_on_dist"] = env.reset(seed=0)["policy"].numpy()
    if control_rate_hz is not None:
        spec["control_rate_hz"] = float(control_rate_hz)
    return spec


def export_hover_example(out_dir: str | Path, hidden: Sequence[int] = (64, 64), seed: int = 0,
                         control_rate_hz: float | None = None, activation: str = "fast_tanh",
                         attitude: bool = False) -> dict[str, Any]:
    """Export a random 146-hidden-4 hover-shaped MLP (the benchmark's 146-64-64-4 by default); ``attitude``:
    the attitude/thrust task's shape instead."""
    spec = hover_spec(control_rate_hz, attitude)
    on_dist = spec.pop("_on_dist")
    return _export(out_dir, spec, hidden, seed, on_dist, activation)


PANDA_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))


def ee_reach_spec(control_rate_hz: float = 50.0, position_scale: float = 0.02) -> dict[str, Any]:
    """Contract of a Panda TCP reacher: ``ee_position`` + ``goal_position`` in, ``ee_delta`` (x, y, z, gripper)
    out, with the simulator's controller settings (:class:`sim.arm.ee_control.EeDeltaLimits`)."""
    from sim.arm.ee_control import EeDeltaLimits
    from sim.arm.kinematics import FINGER_MAX

    lim = EeDeltaLimits(pos_scale=position_scale)
    ws_lo, ws_hi = list(lim.workspace_low), list(lim.workspace_high)
    valid_lo, valid_hi = [-1.0, -1.0, -0.2], [1.0, 1.0, 1.3]  # anything a Panda's TCP can reach, with a margin
    return {
        "observation": [
            {"name": "ee_position", "size": 3, "frame": "base", "unit": "m", "valid_low": valid_lo,
             "valid_high": valid_hi},
            {"name": "goal_position", "size": 3, "frame": "base", "unit": "m", "valid_low": valid_lo,
             "valid_high": valid_hi, "low": ws_lo, "high": ws_hi},
        ],
        "action": {"type": "ee_delta", "size": 4, "low": -1.0, "high": 1.0, "channels": ["x", "y", "z", "gripper"],
                   "position_scale": lim.pos_scale, "gripper": {"closed_width": 0.0, "open_width": 2 * FINGER_MAX},
                   "frame": "base", "joints": list(PANDA_JOINTS), "max_lead": lim.max_lead,
                   "workspace_low": ws_lo, "workspace_high": ws_hi, "ik_iterations": lim.ik_iterations},
        "control_rate_hz": control_rate_hz,
        "robot": "franka_panda",
    }


def export_ee_reach_example(out_dir: str | Path, gain: float = 10.0, gripper: float = 1.0,
                            control_rate_hz: float = 50.0) -> dict[str, Any]:
    """Export the hand-set proportional reacher ``a = clip(gain (goal - ee), -1, 1)`` (gripper channel constant
    ``gripper``: -1 closed, +1 open) as a one-layer MLP through :func:`export_policy`. Not trained: it stands in
    for an arm policy in closed-loop tests of the runtime, the node and ``robot-rl arm-sim``."""
    spec = ee_reach_spec(control_rate_hz)
    net = MLP(6, [], 4, "tanh", "clip")
    with torch.no_grad():
        w = torch.zeros(4, 6)
        w[:3, :3] = -gain * torch.eye(3)
        w[:3, 3:] = gain * torch.eye(3)
        net.linears[0].weight.copy_(w)
        net.linears[0].bias.copy_(torch.tensor([0.0, 0.0, 0.0, gripper]))
    rng = np.random.default_rng(0)
    lo, hi = spec["action"]["workspace_low"], spec["action"]["workspace_high"]
    on_dist = rng.uniform(lo * 2, hi * 2, (256, 6)).astype(np.float32)
    meta = {"robot": spec["robot"], "task": "hand-set proportional TCP reacher (not trained)",
            "training": {"algorithm": "none (hand-set weights)", "seed": 0}}
    return export_policy(out_dir, net.graph(), net, spec, on_dist, meta, seed=0)
