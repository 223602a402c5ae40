"""EXPO's replay: demonstrations and online transitions in two preallocated buffers, sampled half and half
(RLPD's symmetric sampling), each transition carrying the base candidates of its state and of its next state.

A transition holds ``obs`` (the flattened observation history of the policy group, what Q and the edit policy
read), the executed ``action`` (normalised), ``cands`` ``[k * A]`` (base candidates of the state), ``reward``,
``terminated``, ``next_obs`` and ``next_cands``, and ``valid`` (0 where the episode was truncated: the next state
was never acted in, so the transition cannot be backed up and is left out of the loss).

Demonstrations (:func:`demo_transitions`): the datasets of ``robot-rl demos`` hold the policy group
(``observation.state``), the critic group (``privileged.state``, not used: see :mod:`.expo`), the expert's
clean action label, reward and success per frame. Their candidates are sampled from the frozen base once, on
each frame's observation history, as if a chunk were due at every frame (the first actions of ``k`` chunks): the
demonstrations have no chunk phase, and their backups then value the policy's choice at a replanning. The
recorded action is the expert's label, while the executed action had the expert's exploration noise added
(``robot-rl demos --action-noise``): a small, zero-mean error in the demonstrations' transitions that we accept
(the noise is not recorded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from robot_rl.data import DatasetFormatError, load_dataset
from robot_rl.storage.replay import ReplayBuffer

POLICY_KEY = "observation.state"


def transition_dims(obs_dim: int, act_dim: int, k: int) -> dict[str, int]:
    """Sizes of the stored fields (``reward`` and ``terminated`` are added by the buffer)."""
    return {"obs": obs_dim, "action": act_dim, "cands": k * act_dim, "next_obs": obs_dim, "next_cands": k * act_dim,
            "valid": 1}


class ExpoReplay:
    """A demonstration buffer (filled once) and an online ring buffer of ``capacity`` transitions."""

    def __init__(self, dims: dict[str, int], capacity: int, demo_capacity: int) -> None:
        self.online = ReplayBuffer(capacity, dims)
        self.demo = ReplayBuffer(max(demo_capacity, 1), dims, overwrite=False)

    def sample(self, batch_size: int, demo_fraction: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``batch_size`` transitions, ``demo_fraction`` of them demonstrations (all of one kind if the other is
        empty)."""
        n_demo = round(batch_size * demo_fraction) if self.online.size else batch_size
        n_demo = n_demo if self.demo.size else 0
        parts = [buf.sample(n, generator) for buf, n in ((self.demo, n_demo), (self.online, batch_size - n_demo))
                 if n > 0]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {f"online.{k}": v for k, v in self.online.state_dict().items()}
        out.update({f"demo.{k}": v for k, v in self.demo.state_dict().items()})
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.online.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("online.")})
        self.demo.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("demo.")})


def history_rows(length: int, n_obs_steps: int) -> np.ndarray:
    """Frame indices ``[length, n_obs_steps]`` of each frame's observation history (padded with the first)."""
    t = np.arange(length)
    return np.clip(t[:, None] + np.arange(-n_obs_steps + 1, 1)[None, :], 0, length - 1)


@torch.no_grad()
def demo_transitions(demos: str | Path, base: Any, k: int, reward: Literal["sparse", "dense"],
                     generator: torch.Generator, batch: int = 4096, chunk_steps: int = 1,
                     gamma: float = 0.99) -> dict[str, torch.Tensor]:
    """Every frame of ``demos`` as an EXPO transition for ``base`` (a :class:`FrozenChunkBase`), with ``k``
    base candidates sampled per frame (``generator``: their noise); ``sparse`` reward: 1 on the step that
    succeeds, ``dense``: the task's recorded reward.

    ``chunk_steps`` > 1 (a chunk-level Q): the transition of frame ``t`` is the ``chunk_steps`` actions from ``t``
    (the last one repeated past an episode's end, where they never run), its reward the discounted sum over
    them, its next state frame ``t + chunk_steps``; it terminates if the episode succeeds within them and is
    invalid if the episode ends there without success. Candidates: the first ``chunk_steps`` actions of ``k``
    chunks."""
    n_c = chunk_steps
    data = load_dataset(demos, keys=[POLICY_KEY, "action", "next.reward", "next.success"])
    to = base.n_obs_steps
    hist, act, rew, term, valid, nxt = [], [], [], [], [], []
    for ep in data.episodes:
        o = torch.as_tensor(ep[POLICY_KEY], dtype=torch.float32)
        n = len(o)
        if o.shape[1] != base.obs_dim:
            raise DatasetFormatError(f"{demos}: {POLICY_KEY} has {o.shape[1]} dims, the base observes {base.obs_dim}")
        hist.append(o[torch.as_tensor(history_rows(n, to))])
        steps = torch.arange(n)[:, None] + torch.arange(n_c)[None, :]  # [n, chunk_steps] frames of each chunk
        a = torch.as_tensor(ep["action"], dtype=torch.float32)
        act.append(a[steps.clamp(max=n - 1)].flatten(1))
        success = torch.as_tensor(ep["next.success"]).bool().reshape(-1)
        r = (success.float() if reward == "sparse"
             else torch.as_tensor(ep["next.reward"], dtype=torch.float32).reshape(-1))
        r = torch.cat((r, torch.zeros(n_c)))  # nothing is earned after the episode
        rew.append((r[steps] * gamma ** torch.arange(n_c, dtype=torch.float32)).sum(1))
        end = torch.arange(n) + n_c  # the frame the next chunk starts at
        t = ((end >= n) & success[-1]).float()
        term.append(t)
        valid.append(((end < n) | t.bool()).float())  # ended there without success: truncated, no next state
        nxt.append(end.clamp(max=n - 1))
    offsets = np.cumsum([0] + [len(h) for h in hist[:-1]])
    nxt_idx = torch.cat([ix + int(off) for ix, off in zip(nxt, offsets, strict=True)])
    hist_all = torch.cat(hist)
    cands = torch.cat([base.normalize_action(base.policy.predict_chunk(
        hist_all[i:i + batch].repeat_interleave(k, dim=0), generator)[:, :n_c]).reshape(
            -1, k * n_c * base.action_dim) for i in range(0, len(hist_all), batch)])
    obs = hist_all.flatten(1)
    actions = base.normalize_action(torch.cat(act).view(-1, n_c, base.action_dim)).flatten(1)
    return {"obs": obs, "action": actions, "cands": cands, "reward": torch.cat(rew),
            "terminated": torch.cat(term), "valid": torch.cat(valid)[:, None], "next_obs": obs[nxt_idx],
            "next_cands": cands[nxt_idx]}


class PendingChunks:
    """Chunk-level transitions under way, one per env (``q_level = "chunk"``): opened when an env starts a chunk
    (its observation, executed actions ``[n * A]`` normalised and candidates), its discounted reward summed while
    the chunk runs, closed when the env's next chunk is due (that state and its candidates are the next ones) or
    its episode ends (terminated: no backup; truncated without success: invalid)."""

    def __init__(self, num_envs: int, obs_dim: int, act_dim: int, k: int, gamma: float) -> None:
        self.gamma = gamma
        self.obs = torch.zeros(num_envs, obs_dim)
        self.action = torch.zeros(num_envs, act_dim)
        self.cands = torch.zeros(num_envs, k * act_dim)
        self.reward = torch.zeros(num_envs)
        self.weight = torch.ones(num_envs)
        self.open = torch.zeros(num_envs, dtype=torch.bool)

    def start(self, ids: torch.Tensor, obs: torch.Tensor, action: torch.Tensor, cands: torch.Tensor) -> None:
        """Open the transitions of envs ``ids`` (rows of ``obs``/``action``/``cands`` in that order)."""
        self.obs[ids], self.action[ids], self.cands[ids] = obs, action, cands
        self.reward[ids], self.weight[ids], self.open[ids] = 0.0, 1.0, True

    def add_reward(self, reward: torch.Tensor) -> None:
        """One control step of every env: ``reward`` ``[N]`` joins the open sums, discounted."""
        self.reward += self.open.float() * self.weight * reward
        self.weight *= self.gamma

    def _take(self, ids: torch.Tensor, **rest: torch.Tensor) -> dict[str, torch.Tensor]:
        self.open[ids] = False
        return {"obs": self.obs[ids], "action": self.action[ids], "cands": self.cands[ids],
                "reward": self.reward[ids].clone(), **rest}

    def close(self, ids: torch.Tensor, next_obs: torch.Tensor,
              next_cands: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """The open transitions among envs ``ids`` (now due a chunk, ``next_obs``/``next_cands`` their rows)."""
        keep = self.open[ids]
        if not bool(keep.any()):
            return None
        n = int(keep.sum())
        return self._take(ids[keep], next_obs=next_obs[keep], next_cands=next_cands[keep],
                          terminated=torch.zeros(n), valid=torch.ones(n, 1))

    def end(self, done: torch.Tensor, terminated: torch.Tensor,
            truncated: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """The open transitions of envs whose episode ended this step (``[N]`` bool masks)."""
        ids = torch.nonzero(done & self.open).flatten()
        if not len(ids):
            return None
        term = terminated[ids]
        return self._take(ids, next_obs=torch.zeros_like(self.obs[ids]), next_cands=torch.zeros_like(self.cands[ids]),
                          terminated=term.float(), valid=(term | ~truncated[ids]).float()[:, None])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"obs": self.obs, "action": self.action, "cands": self.cands, "reward": self.reward,
                "weight": self.weight, "open": self.open}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            setattr(self, key, value.clone())
