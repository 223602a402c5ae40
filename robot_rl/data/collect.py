"""Demonstrations from a scripted expert in a batched env, as episodes for :func:`robot_rl.data.write_dataset`.

The expert returns ``(label, executed)``: the clean action is recorded, the noisy one is executed (so the
demonstrations visit and recover from off-nominal states). Works with any env of the :mod:`sim.core` contract
whose ``step`` reports ``info["done_mask"]`` and ``info["success"]``, and any expert with ``act()`` and
``reset(mask)``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch


class Expert(Protocol):
    def act(self) -> tuple[np.ndarray, np.ndarray]: ...

    def reset(self, mask: np.ndarray) -> None: ...


def collect_demos(env: Any, expert: Expert, episodes: int, seed: int = 0, only_success: bool = True,
                  group: str = "policy", max_attempts: int | None = None) -> tuple[list[dict[str, np.ndarray]], dict]:
    """Run ``expert`` until ``episodes`` episodes are kept; returns them and ``{"attempts", "successes"}``.

    Each episode holds ``observation.state`` (the ``group`` observation, as the policy will see it),
    ``action`` (the clean label), ``next.reward``, ``next.done`` and ``next.success``. With ``only_success``
    failed episodes are dropped (counted in the summary); ``max_attempts`` (default 3 x episodes) bounds the work.
    """
    max_attempts = max_attempts or 3 * episodes
    obs = env.reset(seed)[group].numpy()
    expert.reset(np.ones(env.num_envs, dtype=bool))
    n = env.num_envs
    buf: list[dict[str, list]] = [{"obs": [], "act": [], "rew": [], "succ": []} for _ in range(n)]
    kept: list[dict[str, np.ndarray]] = []
    attempts = successes = 0
    while len(kept) < episodes and attempts < max_attempts:
        label, executed = expert.act()
        next_obs, reward, _, _, info = env.step(torch.from_numpy(executed))
        done, success = info["done_mask"].numpy(), info["success"].numpy()
        for i in range(n):
            b = buf[i]
            b["obs"].append(obs[i].copy())
            b["act"].append(label[i].copy())
            b["rew"].append(float(reward[i]))
            b["succ"].append(bool(success[i]))
        for i in np.flatnonzero(done):
            b = buf[i]
            attempts += 1
            ok = bool(success[i])
            successes += ok
            if (ok or not only_success) and len(kept) < episodes:
                t = len(b["obs"])
                kept.append({"observation.state": np.asarray(b["obs"], np.float32),
                             "action": np.asarray(b["act"], np.float32),
                             "next.reward": np.asarray(b["rew"], np.float32),
                             "next.done": np.arange(t) == t - 1, "next.success": np.asarray(b["succ"])})
            buf[i] = {"obs": [], "act": [], "rew": [], "succ": []}
        expert.reset(done)
        obs = next_obs[group].numpy()
    if len(kept) < episodes:
        raise RuntimeError(f"the expert succeeded in {successes} of {attempts} episodes: {len(kept)} of the "
                           f"{episodes} requested demonstrations")
    return kept, {"attempts": attempts, "successes": successes}
