"""Replay buffer for asymmetric off-policy learning, storing what reward recomputation needs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from numba import literal_unroll, njit

FIELDS = ("policy_obs", "critic_obs", "action", "reward_terms", "reward", "next_policy_obs",
          "next_critic_obs", "terminated")


@njit(cache=True)
def _write_rows(table, pos, fields):
    """Copy each field's ``[n, width]`` rows side by side into ``table[pos:pos + n]`` (no wrap)."""
    col = 0
    for field in literal_unroll(fields):  # the fields may differ in dtype (a heterogeneous tuple)
        n, w = field.shape
        for r in range(n):
            for c in range(w):
                table[pos + r, col + c] = field[r, c]
        col += w


class ReplayBuffer:
    """Fixed-capacity ring buffer of transitions on one device.

    Besides the reward it keeps the unweighted reward terms of every transition, so that
    :meth:`recompute_rewards` can rewrite all stored rewards when a curriculum changes the weights (the
    L2F paper's trick). ``overwrite=False`` refuses to wrap (the paper never overwrites its buffer).

    All fields live side by side in one preallocated ``[capacity, width]`` float32 table (``data[name]`` is a
    view of its columns): adding a batch is one row write and sampling one ``index_select``, whatever the number
    of fields (per-field tensors cost one op per field, and on small networks those ops are the update's cost).
    """

    def __init__(self, capacity: int, dims: dict[str, int], device: torch.device | str = "cpu",
                 overwrite: bool = True) -> None:
        self.capacity = capacity
        self.overwrite = overwrite
        self.device = torch.device(device)
        widths = {**dims, "reward": 1, "terminated": 1}  # one scalar per transition each
        self.fields = [k for k in FIELDS if k in widths] + [k for k in widths if k not in FIELDS]
        self.table = torch.zeros(capacity, sum(widths.values()), device=self.device)
        self.columns: dict[str, slice] = {}
        start = 0
        for k in self.fields:
            self.columns[k] = slice(start, start + widths[k])
            start += widths[k]
        self.data = {k: self._view(self.table, k) for k in self.fields}
        self._np: np.ndarray | None = self.table.numpy() if self.device.type == "cpu" else None
        self._sampled = [k for k in self.fields if k != "reward_terms"]
        self.pos = 0
        self.size = 0

    def _view(self, rows: torch.Tensor, name: str) -> torch.Tensor:
        col = self.columns[name]
        if name in ("reward", "terminated"):
            return rows[:, col.start]
        return rows[:, col]

    @classmethod
    def for_env(cls, capacity: int, policy_dim: int, critic_dim: int, action_dim: int, n_terms: int,
                device: torch.device | str = "cpu", overwrite: bool = True) -> ReplayBuffer:
        dims = {"policy_obs": policy_dim, "critic_obs": critic_dim, "action": action_dim,
                "reward_terms": n_terms, "next_policy_obs": policy_dim, "next_critic_obs": critic_dim}
        return cls(capacity, dims, device, overwrite)

    def add(self, **batch: torch.Tensor) -> None:
        """Append a batch of transitions (every field of ``FIELDS``, leading dim = batch)."""
        n = batch["action"].shape[0]
        if not self.overwrite and self.size + n > self.capacity:
            raise RuntimeError(f"replay buffer full ({self.capacity} transitions) and overwrite=False")
        if batch.keys() != self.columns.keys():
            raise ValueError(f"replay add needs the fields {sorted(self.columns)}, got {sorted(batch)}")
        parts = [batch[k] for k in self.fields]
        arrays = None
        if self._np is not None and self.pos + n <= self.capacity:
            try:  # numpy views of CPU tensors without gradient (other dtypes are cast by the copy as by .to())
                arrays = tuple(t.numpy().reshape(n, -1) for t in parts)
            except (TypeError, RuntimeError):  # on an accelerator, or requiring grad: the torch write
                arrays = None
        if arrays is not None:
            # one compiled row copy: a torch.cat + slice write costs more than the copy on one env
            _write_rows(self._np, self.pos, arrays)
        else:
            rows = torch.cat([t.reshape(n, -1).to(self.table.dtype) for t in parts], dim=1)
            if self.pos + n <= self.capacity:
                self.table[self.pos:self.pos + n] = rows
            else:
                self.table.index_copy_(0, (torch.arange(n, device=self.device) + self.pos) % self.capacity, rows)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (batch_size,), generator=generator, device=self.device)
        rows = self.table.index_select(0, idx)
        return {k: self._view(rows, k) for k in self._sampled}

    @torch.no_grad()
    def recompute_rewards(self, reward_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Rewrite every stored reward from its stored terms with ``reward_fn(terms) -> reward``."""
        n = self.size
        self.data["reward"][:n] = reward_fn(self.data["reward_terms"][:n])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Filled part of the buffer plus position (for exact resume)."""
        out = {f"replay.{k}": v[: self.size].clone() for k, v in self.data.items()}
        out["replay.pos_size"] = torch.tensor([self.pos, self.size])
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.pos, self.size = (int(x) for x in state["replay.pos_size"])
        for k, v in self.data.items():
            v[: self.size] = state[f"replay.{k}"].to(self.device)
