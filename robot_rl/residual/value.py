"""Chunk-level IQL value for value-guided re-ranking (V-GPS): Q(history, executed chunk) and V(history).

One transition per frame t of an episode: the observation history at t, the ``n`` actions executed from t
(one chunk's executed part, normalised and flattened), the discounted reward over them, whether the episode
terminated within them, and the history at t + n. IQL (Kostrikov et al. 2022) never queries actions outside
the data: V is the ``expectile`` of the target Q over the data's chunks, Q regresses to
``R + gamma^n (1 - terminated) V(s')``. Windows cut by a truncation (time limit) have no next state and are
left out; windows that reach a termination are kept (nothing to bootstrap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robot_rl.residual.expo_replay import history_rows
from robot_rl.residual.q_ensemble import QEnsemble, QWithTarget


@dataclass
class IQLConfig:
    """Hyper-parameters of the chunk value (IQL's defaults where they apply)."""

    num_q: int = 2
    """Q members (IQL's twin Q; V regresses to their minimum)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of Q and V."""
    expectile: float = 0.8
    """Expectile of V over the data's chunk values (0.5: the mean; toward 1: the best chunk seen)."""
    gamma: float = 0.99
    """Per-step discount."""
    tau: float = 0.005
    """Polyak rate of the target Q."""
    lr: float = 3e-4
    """Adam learning rate of Q and V."""


def chunk_windows_rl(obs: np.ndarray, actions: np.ndarray, reward: np.ndarray, terminated_last: bool,
                     n_obs_steps: int, n: int, gamma: float) -> dict[str, np.ndarray]:
    """Transitions of one episode (``obs`` ``[T, D]``, normalised ``actions`` ``[T, A]``, ``reward`` ``[T]``;
    ``terminated_last``: the episode ended by termination rather than truncation)."""
    t_len = len(obs)
    hist = obs[history_rows(t_len, n_obs_steps)].reshape(t_len, -1)
    t = np.arange(t_len)
    idx = np.minimum(t[:, None] + np.arange(n)[None, :], t_len - 1)  # past the end: the last action repeats
    inside = (t[:, None] + np.arange(n)[None, :]) < t_len
    ret = (reward[idx] * inside * gamma ** np.arange(n)[None, :]).sum(1)
    ends = t + n >= t_len
    nxt = np.minimum(t + n, t_len - 1)
    return {"obs": hist, "chunk": actions[idx].reshape(t_len, -1), "ret": ret, "terminated": ends & terminated_last,
            "next_obs": hist[nxt], "valid": ~ends | terminated_last}


class ChunkValue(nn.Module):
    """IQL's Q ensemble on (history, executed chunk) with a target copy, and V on the history."""

    def __init__(self, cfg: IQLConfig, obs_dim: int, chunk_dim: int, n_exec: int,
                 obs_norm: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.cfg, self.n_exec = cfg, n_exec
        mid, span = obs_norm or (torch.zeros(obs_dim), torch.ones(obs_dim))
        self.q = QWithTarget(QEnsemble(cfg.num_q, obs_dim, chunk_dim, cfg.hidden, mid, span))
        self.v = QEnsemble(1, obs_dim, 0, cfg.hidden, mid, span)
        self.opt = torch.optim.Adam([*self.q.q.parameters(), *self.v.parameters()], lr=cfg.lr)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v(obs, obs[:, :0])[0]

    def score(self, obs: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        """Re-ranking score of executed chunks ``[B, n_exec * A]``: the ensemble-mean Q, ``[B]``."""
        return self.q.q(obs, chunk).mean(0)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        with torch.no_grad():
            q_t = self.q.target(batch["obs"], batch["chunk"]).min(0).values
            y = batch["ret"] + cfg.gamma ** self.n_exec * (1 - batch["terminated"]) * self.value(batch["next_obs"])
        diff = q_t - self.value(batch["obs"])
        w = torch.where(diff > 0, cfg.expectile, 1 - cfg.expectile)
        v_loss = (w * diff ** 2).mean()
        valid = batch["valid"]
        q_loss = (((self.q.q(batch["obs"], batch["chunk"]) - y) ** 2).mean(0) * valid).sum() / valid.sum().clamp(min=1)
        self.opt.zero_grad(set_to_none=True)
        (q_loss + v_loss).backward()
        self.opt.step()
        self.q.update_target(cfg.tau)
        return {"q_loss": q_loss.item(), "v_loss": v_loss.item(), "v_mean": self.value(batch["obs"]).mean().item()}


def stack_transitions(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Concatenate per-episode transitions into float tensors."""
    return {k: torch.as_tensor(np.concatenate([p[k] for p in parts]), dtype=torch.float32) for k in parts[0]}
