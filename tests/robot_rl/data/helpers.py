"""Small synthetic demonstration episodes for the dataset tests."""

from __future__ import annotations

import numpy as np

NAMES = {"observation.state": ["q0", "q1", "q2"], "action": ["dx", "dy"]}


def make_episodes(n: int = 3, seed: int = 0, first_length: int = 5) -> list[dict[str, np.ndarray]]:
    """``n`` episodes of lengths first_length, first_length + 1, ...: a policy state, a privileged state,
    actions, rewards and done/success flags (done and success on the last frame of odd episodes only)."""
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n):
        t = first_length + i
        last = np.arange(t) == t - 1
        episodes.append({
            "observation.state": (rng.standard_normal((t, 3)) + [0.0, 1.0, -2.0]).astype(np.float32),
            "privileged.state": rng.standard_normal((t, 4)).astype(np.float32),
            "action": rng.uniform(-1, 1, (t, 2)).astype(np.float32),
            "next.reward": rng.random(t).astype(np.float32),
            "next.done": last,
            "next.success": last & (i % 2 == 1),
        })
    return episodes
