"""``robot-rl sim TASK``: run a task's simulator without a policy so a newcomer sees it work."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from robot_rl.plotting import plot_trajectories, save_figure
from sim.registry import get_task


def run_sim_demo(task: str, steps: int, episodes: int, seed: int, out: Path) -> dict:
    """The task's demo (quadrotor-hover: hover RPM from rest plus random-action episodes, pose plot) or, for a
    task without one, ``episodes`` envs of uniformly random actions for ``steps`` steps (reward plot).
    Returns the demo's summary with the plot's path under ``"plot"``."""
    spec = get_task(task)
    if spec.demo is not None:
        demo = spec.demo(steps, episodes, seed)
        plot_trajectories(list(demo["traces"]), demo["labels"], demo["dt"], demo["title"], out)
        return {"plot": str(out), **demo["summary"]}
    return _random_actions(spec, steps, episodes, seed, out)


@torch.no_grad()
def _random_actions(spec, steps: int, episodes: int, seed: int, out: Path) -> dict:
    if steps < 1 or episodes < 1:
        raise ValueError("--steps and --episodes must be >= 1")
    env = spec.make_env(replace(spec.config_cls(), num_envs=episodes, device="cpu"), seed=seed)
    env.reset(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    span = env.action_high - env.action_low
    rewards, ended, successes = [], 0, 0
    for _ in range(steps):
        action = torch.rand(env.num_envs, env.action_dim, generator=gen) * span + env.action_low
        _, reward, _, _, info = env.step(action)
        rewards.append(reward.cpu().numpy())
        done = info["done_mask"].cpu()
        ended += int(done.sum())
        if "success" in info:
            successes += int((done & info["success"].cpu().bool()).sum())
    env.close()
    r = np.stack(rewards, axis=1)  # [E, T]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    t = np.arange(steps) * env.dt
    for i in range(len(r)):
        ax.plot(t, r[i], lw=0.8, label=f"env {i}" if i < 8 else None)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("reward")
    ax.set_title(f"{spec.name}: {episodes} envs, uniformly random actions")
    ax.legend(fontsize=7)
    save_figure(fig, out)
    return {"plot": str(out), "mean_reward": float(r.mean()), "episodes_ended": ended, "successes": successes}


def expert_video(task: str, steps: int, episodes: int, seed: int, out: Path, action_noise: float = 0.0) -> dict:
    """``episodes`` episodes of the task's scripted expert (at most ``steps`` steps each) rendered to ``out``."""
    spec = get_task(task)
    if spec.expert is None or spec.video is None:
        raise ValueError(f"task {spec.name!r} has no scripted expert to render (--expert)")
    return spec.video(spec, spec.config_cls(), episodes, seed, out, action_noise=action_noise, max_steps=steps)
