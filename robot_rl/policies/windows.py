"""Training samples for chunked policies: (observation history, action chunk) windows over demonstrations.

One sample per frame t of every episode: observations t - n_obs_steps + 1 .. t and actions t .. t + horizon - 1.
Windows that run past an episode's ends repeat its first observation / last action (diffusion_policy's
``SequenceSampler`` padding, and what the runtime does at activation: the history starts filled with the first
observation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def chunk_windows(obs: Sequence[np.ndarray], actions: Sequence[np.ndarray], n_obs_steps: int,
                  horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack every episode's windows: ``obs`` ``[N, n_obs_steps, obs_dim]``, actions ``[N, horizon, act_dim]``.

    ``obs[i]`` and ``actions[i]`` are episode i's ``[T_i, obs_dim]`` and ``[T_i, act_dim]`` arrays.
    """
    if len(obs) != len(actions) or not obs:
        raise ValueError(f"need the same non-zero number of observation and action episodes ({len(obs)} vs "
                         f"{len(actions)})")
    all_obs, all_act = [], []
    for i, (o, a) in enumerate(zip(obs, actions, strict=True)):
        if len(o) != len(a) or len(o) == 0:
            raise ValueError(f"episode {i}: {len(o)} observations but {len(a)} actions")
        t = np.arange(len(o))
        oi = np.clip(t[:, None] + np.arange(-n_obs_steps + 1, 1)[None, :], 0, len(o) - 1)
        ai = np.clip(t[:, None] + np.arange(horizon)[None, :], 0, len(a) - 1)
        all_obs.append(o[oi])
        all_act.append(a[ai])
    return (np.concatenate(all_obs).astype(np.float32, copy=False),
            np.concatenate(all_act).astype(np.float32, copy=False))
