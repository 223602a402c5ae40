"""Open-loop flights of the hover simulator (``robot-rl sim crazyflie``), so a newcomer sees it work."""

from __future__ import annotations

import torch

from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.task import QuadrotorHoverEnv


def open_loop_demo(steps: int, episodes: int, seed: int) -> dict:
    """Hover-RPM from rest at the target, then ``episodes`` random-action episodes from the paper's
    initial-state distribution. Returns pose traces ``[1 + episodes, steps + 1, 7]`` (NaN after a crash),
    their labels, ``dt``, a title and a summary (max hover drift, steps each random episode lasted)."""
    if steps < 1 or episodes < 0:
        raise ValueError("--steps must be >= 1 and --episodes >= 0")
    cfg = QuadrotorTaskConfig(num_envs=1 + episodes, episode_length=max(steps, 1) + 1, noise=False)
    env = QuadrotorHoverEnv(cfg, seed=seed)
    env.reset(seed=seed)
    # env 0: start at rest at the target with rotors already at hover speed and no disturbance
    env.state[0] = 0.0
    env.state[0, 3] = 1.0
    env.state[0, 13:] = env.params.hover_rpm
    env.force[0] = 0.0
    env.torque[0] = 0.0
    gen = torch.Generator().manual_seed(seed)
    trace, alive = [env.state.clone()], torch.ones(env.num_envs, dtype=torch.bool)
    for _ in range(steps):
        action = torch.rand(env.num_envs, 4, generator=gen) * 2 - 1
        action[0] = env.hover_action
        _, _, terminated, _, _ = env.step(action)
        alive &= ~terminated
        trace.append(torch.where(alive[:, None], env.state, torch.nan))
    states = torch.stack(trace, dim=1)  # [E, T, 17]
    labels = ["hover RPM (open loop)"] + [f"random actions #{i + 1}" for i in range(episodes)]
    drift = float(states[0, :, :3].abs().max())
    survived = [int(torch.isfinite(states[i, :, 0]).sum()) - 1 for i in range(1, env.num_envs)]
    return {"traces": states[:, :, :7], "labels": labels, "dt": cfg.dt, "title": f"Crazyflie simulator, {steps} steps",
            "summary": {"hover_max_drift_m": drift, "random_episode_steps": survived}}
