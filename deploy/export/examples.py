"""Small example exports (random weights) for tests, benchmarks and trying the runtime / ROS 2 node.

``export_hover_example`` writes a quadrotor hover-shaped policy (146 -> hidden -> 4, the L2F observation
from :meth:`sim.quadrotor.QuadrotorHoverEnv.export_spec`); ``export_arm_example`` writes an arm-shaped policy
with the arm observation vocabulary (``joint_position``, ``joint_velocity``, ``previous_action``, ``goal``) and
a ``joint_position`` action. Both go through :func:`deploy.export.policy.export_policy`, so they are verified
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
