"""Videos of Panda episodes: roll out a policy or the scripted expert in batched worlds, replay the recorded
joint and object positions offscreen (:mod:`sim.render`) and write one MP4/GIF, episode after episode."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch

from sim.arm.base import ArmEnv


def camera() -> mujoco.MjvCamera:
    """A free camera in front of the robot and to its side, looking at the workspace (the MJCF's ``front``
    camera hides the cube or the goal behind the arm)."""
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.lookat[:] = (0.45, 0.0, 0.2)
    cam.distance, cam.azimuth, cam.elevation = 1.4, 140.0, -25.0
    return cam


def episode_model(env: ArmEnv, i: int) -> mujoco.MjModel:
    """A copy of world ``i``'s model with its mocap bodies where they are now (a replay from qpos alone then
    shows this episode's goal marker, hole, randomised geometry)."""
    model = copy.deepcopy(env.worlds.models[i])
    data = env.worlds.datas[i]
    for b in range(model.nbody):
        m = model.body_mocapid[b]
        if m >= 0:
            model.body_pos[b], model.body_quat[b] = data.mocap_pos[m], data.mocap_quat[m]
    return model


@torch.no_grad()
def record_video(spec: Any, task_cfg: Any, episodes: int, seed: int, out: str | Path, *,
                 policy: Callable[[torch.Tensor], torch.Tensor] | None = None, action_noise: float = 0.0,
                 max_steps: int | None = None, every: int = 2, width: int = 320, height: int = 240) -> dict[str, Any]:
    """Run ``episodes`` envs (seed ``seed``) for one episode each (at most ``max_steps`` steps), driven by
    ``policy`` (policy observations in, actions out) or, without one, by the task's scripted expert (its
    executed action, with ``action_noise``), and render every ``every``-th control step of each episode into
    ``out``. Returns the path, frame count and each episode's success and length."""
    from sim.render import render_frames
    from sim.video import write_video

    if episodes < 1 or every < 1:
        raise ValueError("a video needs episodes >= 1 and every >= 1")
    env = spec.make_env(replace(task_cfg, num_envs=episodes, device="cpu"), seed=seed)
    obs = env.reset(seed=seed)
    models = [episode_model(env, i) for i in range(episodes)]
    qpos = [[env.worlds.qpos[i].copy()] for i in range(episodes)]
    expert = spec.expert(env, seed=seed + 1, action_noise=action_noise) if policy is None else None
    done = np.zeros(episodes, dtype=bool)
    success = np.zeros(episodes, dtype=bool)
    length = np.zeros(episodes, dtype=np.int64)
    steps = env.max_episode_steps if max_steps is None else min(max_steps, env.max_episode_steps)
    for _ in range(steps):
        action = policy(obs["policy"]).to(torch.float32) if expert is None else torch.from_numpy(expert.act()[1])
        obs, _, _, _, info = env.step(action)
        mask = info["done_mask"].cpu().numpy()
        if expert is not None:
            expert.reset(mask)
        length += ~done
        for i in np.flatnonzero(~done & ~mask):  # a finished env already shows its next episode's start
            qpos[i].append(env.worlds.qpos[i].copy())
        success |= mask & ~done & info["success"].cpu().numpy()
        done |= mask
        if done.all():
            break
    env.close()
    frames = np.concatenate([render_frames(models[i], np.asarray(qpos[i])[::every], width=width, height=height,
                                           camera=camera()) for i in range(episodes)])
    path = write_video(out, frames, fps=1.0 / (env.dt * every))
    return {"video": str(path), "frames": len(frames), "episode_success": success.tolist(),
            "episode_length": length.tolist(), "fps": 1.0 / (env.dt * every)}

