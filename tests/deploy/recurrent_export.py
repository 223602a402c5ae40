"""A small recurrent (GRU) export in the robust preset's layout, shared by the export, runtime and C tests."""

from pathlib import Path

import numpy as np
import torch

from deploy.export.recurrent_policy import export_recurrent_policy
from robot_rl.models.recurrent import GRUActor
from sim.quadrotor import QuadrotorHoverEnv, QuadrotorTaskConfig

STATE = 16


def level_env(seed=5):
    """The robust preset's layout (48-step history), starting level and at rest in a 5 m box: a near-hover
    policy flies 100 steps without an episode end."""
    cfg = QuadrotorTaskConfig(num_envs=1, noise=False, action_history=48, init_max_angle_deg=0.0,
                              init_max_linear_velocity=0.0, init_max_angular_velocity=0.0, position_limit=5.0)
    return QuadrotorHoverEnv(cfg, seed=seed)


def make_recurrent_export(d: Path, hidden: int = 32) -> tuple[GRUActor, dict]:
    """Export a random GRU actor (hidden layer ``hidden``, state ``STATE``) scaled to fly near hover, reading
    every input and its state; the test vector is 8 calls of a level start."""
    env = level_env()
    torch.manual_seed(1)
    actor = GRUActor(210, hidden, STATE, 4)
    with torch.no_grad():
        actor.out.weight.mul_(0.05)
        actor.out.bias.fill_(float(np.arctanh(env.hover_action)))
    obs = env.reset(seed=5)["policy"]
    seq, state = [], actor.initial_state(1)
    for _ in range(8):
        seq.append(obs[0].clone())
        with torch.no_grad():
            a, state = actor(obs, state)
        obs = env.step(a)[0]["policy"]
    seq = torch.stack(seq).numpy()
    rng = np.random.default_rng(0)
    doc = export_recurrent_policy(d, actor, env.export_spec(), seq, rng.uniform(-1, 1, (8, STATE)), seq, {})
    return actor, doc
