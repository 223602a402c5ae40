"""Per-step traces of the first evaluation episodes, from the components a task declares for them.

A task names noise-free ``"critic"`` components (:attr:`sim.core.BatchedEnv.trace_components`, e.g. the TCP and the
object position) and component pairs whose distance is its progress measure (:attr:`~sim.core.BatchedEnv.
trace_distances`); :class:`TraceRecorder` reads them from the observations the evaluation sees anyway (the reset
observation, then ``info["final_obs"]`` of every step, which is the state an episode ended in before its auto-reset),
so an evaluator records them without knowing the robot.
"""

from __future__ import annotations

import numpy as np
import torch

from sim.core import BatchedEnv


def distance_name(a: str, b: str) -> str:
    """The name a recorded distance between components ``a`` and ``b`` goes by."""
    return f"|{a} - {b}|"


class TraceRecorder:
    """Records the declared trace components of envs ``0..episodes-1`` for at most ``steps`` steps (NaN after an
    episode ended). ``values``: name -> ``[episodes, steps + 1, k]`` (frame 0: the initial state)."""

    def __init__(self, env: BatchedEnv, episodes: int, steps: int) -> None:
        comps, pairs = tuple(env.trace_components), tuple(env.trace_distances)
        name = env.task_name or type(env).__name__
        if not comps and not pairs:
            raise ValueError(f"task {name!r} declares no trace components (BatchedEnv.trace_components): its "
                             "evaluations record no traces")
        index: dict[str, list[int]] = {}
        for k, n in enumerate(env.observation_names()["critic"]):
            index.setdefault(n.split(".", 1)[0], []).append(k)
        for c in (*comps, *(c for p in pairs for c in p)):
            if c not in index:
                raise ValueError(f"task {name!r}: trace component {c!r} is not in its critic group "
                                 f"({', '.join(index)})")
        self.index = {c: np.asarray(index[c]) for c in dict.fromkeys((*comps, *(c for p in pairs for c in p)))}
        self.components, self.pairs, self.episodes = comps, pairs, episodes
        self.values = {c: np.full((episodes, steps + 1, len(index[c])), np.nan) for c in comps}
        self.values |= {distance_name(a, b): np.full((episodes, steps + 1, 1), np.nan) for a, b in pairs}
        self.success = np.full((episodes, steps + 1), np.nan)

    def record(self, t: int, critic: torch.Tensor, active: torch.Tensor, success: torch.Tensor | None = None) -> None:
        """Frame ``t`` from the critic observations ``critic [N, dim]`` of the envs where ``active`` is set, with
        the step's ``info["success"]`` (None: not set, e.g. frame 0)."""
        x = critic[: self.episodes].detach().cpu().double().numpy()
        rows = np.flatnonzero(active[: self.episodes].cpu().numpy())
        self.success[rows, t] = 0.0 if success is None else success[: self.episodes].cpu().numpy()[rows]
        for c in self.components:
            self.values[c][rows, t] = x[np.ix_(rows, self.index[c])]
        for a, b in self.pairs:
            d = np.linalg.norm(x[:, self.index[a]] - x[:, self.index[b]], axis=1)
            self.values[distance_name(a, b)][rows, t, 0] = d[rows]

    def result(self, success: torch.Tensor, length: torch.Tensor, dt: float) -> dict:
        """The traces with each episode's outcome: ``values`` (name -> ``[episodes, T + 1, k]``), ``success``
        (``[episodes, T + 1]``: the task's per-step success flag, NaN after the end), ``success_step`` (the first
        step it was set, None: never), ``episode_success`` (the protocol's verdict), ``episode_length``, ``dt``."""
        n = int(length[: self.episodes].max()) + 1
        flag = self.success[:, :n]
        first = [int(np.argmax(row == 1.0)) if (row == 1.0).any() else None for row in flag]
        return {"values": {k: v[:, :n] for k, v in self.values.items()}, "success": flag, "success_step": first,
                "episode_success": success[: self.episodes].tolist(),
                "episode_length": length[: self.episodes].tolist(), "dt": dt}
