"""Randomly initialised exported policies and recorded closed-loop observations, for checking the export
pipeline (C export, firmware builds, benchmarks) without a training run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from deploy.export.policy import export_policy
from deploy.onnx_io import onnx_session
from robot_rl.models import MLP
from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig


def _task_spec(env: QuadrotorHoverEnv) -> dict:
    s = env.export_spec()
    return {k: s[k] for k in ("observation", "action", "control_rate_hz")}


def quadrotor_export(out_dir: str | Path, hidden: Sequence[int] = (64, 64), activation: str = "fast_tanh",
                     output: str = "tanh", seed: int = 0, num_envs: int = 64, action_history: int = 32) -> np.ndarray:
    """Export a random ``MLP(18 + 4 * action_history, hidden, 4)`` for the Crazyflie hover task (the paper's
    actor shape, 146-64-64-4, by default); returns the on-distribution observations (``[num_envs, obs_dim]``,
    simulator resets) it was verified on."""
    env = QuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=num_envs, action_history=action_history), seed=seed)
    obs = env.reset(seed=seed)["policy"].numpy()
    torch.manual_seed(seed)
    net = MLP(obs.shape[1], list(hidden), 4, activation, output)
    export_policy(out_dir, net.graph(), net, _task_spec(env), obs,
                  {"robot": "crazyflie", "task": "hover", "training": {"algorithm": "random-init", "seed": seed}})
    return obs


def generic_export(out_dir: str | Path, in_dim: int, hidden: Sequence[int], out_dim: int, activation: str,
                   output: str, seed: int = 0, normalize: bool = True) -> np.ndarray:
    """Export a random MLP of any shape under an arm-style contract; returns the observations it was checked
    on (standard normal, ``[64, in_dim]``)."""
    torch.manual_seed(seed)
    net = MLP(in_dim, list(hidden), out_dim, activation, output)
    obs = np.random.default_rng(seed).normal(0.0, 1.0, (64, in_dim)).astype(np.float32)
    mean = torch.randn(in_dim) * 0.1 if normalize else None
    std = torch.rand(in_dim) + 0.5 if normalize else None

    def policy(x: torch.Tensor) -> torch.Tensor:
        return net((x - mean) / std) if normalize else net(x)

    spec = {"observation": [{"name": "goal", "size": in_dim, "frame": "task"}],
            "action": {"type": "joint_position", "size": out_dim, "low": -1.0, "high": 1.0,
                       "joints": [f"joint{i + 1}" for i in range(out_dim)]},
            "control_rate_hz": 50.0}
    export_policy(out_dir, net.graph(mean, std), policy, spec, obs, {"robot": "test-arm", "task": "random"})
    return obs


def closed_loop_observations(export_dir: str | Path, steps: int = 200, seed: int = 1) -> np.ndarray:
    """Fly the exported quadrotor policy (onnxruntime) in the simulator from one random start and record the
    ``[steps, 146]`` observations it saw (noise on, as in training)."""
    session = onnx_session(Path(export_dir) / "policy.onnx")
    env = QuadrotorHoverEnv(QuadrotorTaskConfig(num_envs=1), seed=seed)
    obs = env.reset(seed=seed)["policy"].numpy()
    seen = []
    for _ in range(steps):
        seen.append(obs[0].copy())
        act = session.run(["action"], {"obs": obs.astype(np.float32)})[0]
        obs = env.step(torch.from_numpy(act))[0]["policy"].numpy()
    return np.asarray(seen, dtype=np.float32)
