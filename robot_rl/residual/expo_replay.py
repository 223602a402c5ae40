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
                     generator: torch.Generator,
                     batch: int = 4096) -> dict[str, torch.Tensor]:
    """Every frame of ``demos`` as an EXPO transition for ``base`` (a :class:`FrozenChunkBase`), with ``k``
    base candidates sampled per frame (``generator``: their noise); ``sparse`` reward: 1 on the step that
    succeeds, ``dense``: the task's recorded reward."""
    data = load_dataset(demos, keys=[POLICY_KEY, "action", "next.reward", "next.success"])
    to = base.n_obs_steps
    hist, act, rew, term, valid, nxt = [], [], [], [], [], []
    for ep in data.episodes:
        o = torch.as_tensor(ep[POLICY_KEY], dtype=torch.float32)
        n = len(o)
        if o.shape[1] != base.obs_dim:
            raise DatasetFormatError(f"{demos}: {POLICY_KEY} has {o.shape[1]} dims, the base observes {base.obs_dim}")
        hist.append(o[torch.as_tensor(history_rows(n, to))])
        act.append(torch.as_tensor(ep["action"], dtype=torch.float32))
        success = torch.as_tensor(ep["next.success"]).bool().reshape(-1)
        rew.append(success.float() if reward == "sparse"
                   else torch.as_tensor(ep["next.reward"], dtype=torch.float32).reshape(-1))
        t = torch.zeros(n)
        t[-1] = float(success[-1])
        term.append(t)
        v = torch.ones(n)
        v[-1] = float(success[-1])  # a last frame without success was truncated: no next state to back up
        valid.append(v)
        nxt.append(torch.cat((torch.arange(1, n), torch.tensor([n - 1]))))
    offsets = np.cumsum([0] + [len(h) for h in hist[:-1]])
    nxt_idx = torch.cat([ix + int(off) for ix, off in zip(nxt, offsets, strict=True)])
    hist_all = torch.cat(hist)
    cands = torch.cat([base.normalize_action(base.policy.predict_chunk(
        hist_all[i:i + batch].repeat_interleave(k, dim=0), generator)[:, 0]).view(-1, k * base.action_dim)
        for i in range(0, len(hist_all), batch)])
    obs = hist_all.flatten(1)
    return {"obs": obs, "action": base.normalize_action(torch.cat(act)), "cands": cands, "reward": torch.cat(rew),
            "terminated": torch.cat(term), "valid": torch.cat(valid)[:, None], "next_obs": obs[nxt_idx],
            "next_cands": cands[nxt_idx]}
