"""Replay buffer for asymmetric off-policy learning, storing what reward recomputation needs."""

from __future__ import annotations

from collections.abc import Callable

import torch

FIELDS = ("policy_obs", "critic_obs", "action", "reward_terms", "reward", "next_policy_obs",
          "next_critic_obs", "terminated")


class ReplayBuffer:
    """Fixed-capacity ring buffer of transitions on one device.

    Besides the reward it keeps the unweighted reward terms of every transition, so that
    :meth:`recompute_rewards` can rewrite all stored rewards when a curriculum changes the weights (the
    L2F paper's trick). ``overwrite=False`` refuses to wrap (the paper never overwrites its buffer).
    """

    def __init__(self, capacity: int, dims: dict[str, int], device: torch.device | str = "cpu",
                 overwrite: bool = True) -> None:
        self.capacity = capacity
        self.overwrite = overwrite
        self.device = torch.device(device)
        self.data = {k: torch.zeros(capacity, d, device=self.device) for k, d in dims.items()}
        self.data["reward"] = torch.zeros(capacity, device=self.device)
        self.data["terminated"] = torch.zeros(capacity, device=self.device)
        self.pos = 0
        self.size = 0

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
        idx = (torch.arange(n, device=self.device) + self.pos) % self.capacity
        for k, v in batch.items():
            dst = self.data[k]
            dst.index_copy_(0, idx, v.to(dst.dtype).reshape(n, *dst.shape[1:]))
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (batch_size,), generator=generator, device=self.device)
        return {k: v.index_select(0, idx) for k, v in self.data.items() if k != "reward_terms"}

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
