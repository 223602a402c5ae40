"""Closed-loop evaluation of a chunked policy in a batched env, executing chunks as deployment does.

Per env: the observation history starts filled with the first observation of the episode; a chunk is
sampled from it and its first ``n_action_steps`` actions run before the next query (the synchronous
schedule of :class:`deploy.chunked_runtime.ChunkedPolicyRunner`). Episodes run in waves: every env starts
from ``env.reset(seed + wave)`` and contributes its first episode, so short (successful) episodes are not
over-counted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


@torch.no_grad()
def evaluate_chunked(env: Any, policy: Any, episodes: int, seed: int = 0, noise_seed: int = 0,
                     group: str = "policy") -> dict[str, Any]:
    """Success rate, mean episode length and per-episode results of ``policy`` over ``episodes`` episodes."""
    n, to, ex = env.num_envs, policy.n_obs_steps, policy.n_action_steps
    gen = torch.Generator().manual_seed(noise_seed)
    successes: list[bool] = []
    lengths: list[int] = []
    for wave in range(math.ceil(episodes / n)):
        obs = env.reset(seed + wave)[group].float()
        hist = obs[:, None, :].repeat(1, to, 1)
        running = torch.ones(n, dtype=torch.bool)
        wave_success, wave_length = [False] * n, [0] * n
        chunk = None
        steps = 0
        while bool(running.any()):
            if steps % ex == 0:
                chunk = policy.predict_chunk(hist, gen)
            action = chunk[:, steps % ex]
            obs_next, _, _, _, info = env.step(action)
            steps += 1
            done, success = info["done_mask"].cpu(), info["success"].cpu()
            for i in torch.nonzero(done & running).flatten().tolist():
                wave_success[i], wave_length[i] = bool(success[i]), steps
            running &= ~done
            obs = obs_next[group].float()
            hist = torch.cat((hist[:, 1:], obs[:, None, :]), dim=1)
        take = min(n, episodes - len(successes))  # by env index, not by finishing order
        successes += wave_success[:take]
        lengths += wave_length[:take]
    return {"episodes": len(successes), "success_rate": float(np.mean(successes)),
            "mean_length": float(np.mean(lengths)), "successes": successes}
