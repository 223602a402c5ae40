"""Our Crazyflie hover task as an Isaac Lab ``DirectRLEnv`` (sim/isaac/crazyflie.py) through the adapter, on the CPU.

Real Isaac Lab (Newton / MuJoCo-Warp) with the USD body the project writes; skips where ``isaaclab`` is not
importable (``make test-isaac``). One env for the module (Isaac Lab: one simulation per process).
"""

from __future__ import annotations

import pytest
import torch

from .conftest import SKIP_REASON, ppo_config

pytest.importorskip("isaaclab", reason=SKIP_REASON)

from robot_rl.runners.on_policy import OnPolicyRunner  # noqa: E402
from sim.quadrotor.dynamics import POS, QUAT, VEL  # noqa: E402
from sim.quadrotor.task import QuadrotorHoverEnv  # noqa: E402

TASK = "isaac:RobotRL-Crazyflie-Hover-Direct"
NUM_ENVS = 8
ENV_SEED = 11


def test_groups_match_our_task(env):
    ours = QuadrotorHoverEnv()
    assert env.obs_dims == ours.obs_dims == {"policy": 146, "critic": 156}
    assert env.groups == {"policy": "policy", "critic": "critic"}  # Isaac Lab's state space is our critic
    assert env.action_dim == 4 and env.dt == pytest.approx(0.01) and env.max_episode_steps == ours.max_episode_steps
    obs = env.reset(seed=2)
    assert obs["policy"].shape == (NUM_ENVS, 146) and obs["critic"].shape == (NUM_ENVS, 156)
    task = env.env.task
    torch.testing.assert_close(obs["critic"][:, :3], task.state[:, POS] - task.target)  # noise-free position
    torch.testing.assert_close(env.reset(seed=2)["critic"], obs["critic"])  # seeded: the same initial states


def test_isaac_physics_follows_our_model(env):
    """From the same random states with the same disturbances, 20 steps (0.2 s) of Isaac Lab's rigid body under
    our motor model stay within a few mm / mrad of our RK4 simulator (the integrators differ)."""
    env.reset(seed=5)
    task = env.env.task
    ref = QuadrotorHoverEnv(task.cfg, seed=0)
    ref.state, ref.force, ref.torque = task.state.clone(), task.force.clone(), task.torque.clone()
    start = task.state[:, POS].clone()
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        a = (ref.hover_action + 0.2 * torch.randn(NUM_ENVS, 4, generator=gen)).clamp(-1, 1)
        _, _, terminated, _, _ = env.step(a)
        ref.step(a)
        assert not bool(terminated.any())
    assert bool(((ref.state[:, POS] - start).norm(dim=-1) > 0.01).all())  # every drone moved
    torch.testing.assert_close(task.state[:, POS], ref.state[:, POS], atol=5e-3, rtol=0)
    torch.testing.assert_close(task.state[:, QUAT], ref.state[:, QUAT], atol=5e-3, rtol=0)
    torch.testing.assert_close(task.state[:, VEL], ref.state[:, VEL], atol=2e-2, rtol=0)


def test_motors_off_terminates_with_final_observation(env):
    """Motors off: every drone falls out of the 0.6 m box (a termination); the final observation is outside the
    box, the returned one a fresh initial state inside it."""
    env.reset(seed=1)
    off = -torch.ones(NUM_ENVS, 4)
    ended = torch.zeros(NUM_ENVS, dtype=torch.bool)
    for _ in range(100):
        obs, _, terminated, truncated, info = env.step(off)
        done = info["done_mask"]
        if bool(done.any()):
            assert bool(terminated[done].all()) and not bool(truncated.any())
            assert bool((info["final_obs"]["critic"][done, :3].abs() > 0.6).any(-1).all())  # outside the box
            assert bool((obs["critic"][done, :3].abs() <= 0.6).all())
        ended |= done
        if bool(ended.all()):
            break
    assert bool(ended.all()), "free fall should leave the box within 1 s"


def test_ppo_iterations_on_isaac_crazyflie(env, assets, tmp_path):
    cfg = ppo_config(TASK, assets, NUM_ENVS, "test-isaac-cf", seed=2)
    runner = OnPolicyRunner(cfg, tmp_path, env=env)
    stats = [runner._iteration() for _ in range(3)]
    losses = [s["value_loss"] for s in stats]
    assert all(torch.isfinite(torch.tensor(list(s.values()))).all() for s in stats)
    assert max(losses) > min(losses) * 1.05, f"value loss did not move: {losses}"
    assert runner.env_steps == 3 * 16 * NUM_ENVS
