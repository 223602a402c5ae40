"""Value-guided re-ranking (V-GPS, Nakamoto et al.): the frozen base samples K chunks where one is due, a value
trained offline scores their executed parts, the best one runs. No change to the base, no policy training.

Noise: candidate 0 is sampled with the base's own generator, exactly as the plain base would sample its chunk,
and candidates 1..K-1 with the base's candidate generator. With a constant value (ties go to the lowest index)
re-ranking therefore executes bit-for-bit what the base alone executes from the same seed.

Training data (:func:`train_value`): the base's demonstrations (all episodes, failures included, with the
expert's clean action labels) plus ``rollout_episodes`` episodes of the base itself on the training seed
(executed actions exactly), both cut into chunk-level transitions for :class:`~.value.ChunkValue`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_rl.data import load_dataset
from robot_rl.residual.base_policy import BaseStepPolicy, FrozenChunkBase
from robot_rl.residual.value import ChunkValue, IQLConfig, chunk_windows_rl, stack_transitions
from sim.registry import get_task


@torch.no_grad()
def rerank_act(base: FrozenChunkBase, value: ChunkValue | None, k: int) -> torch.Tensor:
    """The base's action for this step ``[N, A]``, where a chunk is due choosing the best of ``k`` by ``value``
    (None or ``k == 1``: the plain base)."""
    if value is None or k == 1 or not bool(base.due().any()):
        return base.act()
    due, cands = base.candidate_chunks(k)
    hist = base.history[due]
    executed = base.normalize_action(cands[:, :, : base.n_action_steps]).flatten(2)
    score = value.score(hist.flatten(1).repeat_interleave(k, dim=0), executed.flatten(0, 1)).view(len(due), k)
    chunks = base.chunk.clone()
    chunks[due] = cands[torch.arange(len(due)), score.argmax(1)]
    return base.act(chunks)


class RerankPolicy(BaseStepPolicy):
    """Batched ``obs -> action`` callable: the base's chunks re-ranked by ``value`` over ``k`` samples."""

    def __init__(self, policy: Any, value: ChunkValue | None, k: int, seed: int) -> None:
        super().__init__(policy, seed)
        self.value, self.k = value, k

    def choose(self, base: FrozenChunkBase) -> torch.Tensor:
        return rerank_act(base, self.value, self.k)


def evaluate_rerank(task: str, policy: Any, value: ChunkValue | None, k: int, episodes: int, seed: int = 0,
                    selection: bool = False) -> dict[str, Any]:
    """The task's success protocol (held-out seed unless ``selection``) with re-ranking over ``k`` chunks."""
    spec = get_task(task)
    return spec.evaluate(RerankPolicy(policy, value, k, seed), spec.config_cls(), spec.evaluation.config_cls(),
                         episodes, selection=selection)


@torch.no_grad()
def base_rollouts(task: str, policy: Any, episodes: int, seed: int, num_envs: int = 16) -> list[dict[str, Any]]:
    """``episodes`` episodes of the plain base (env seed ``seed``, never the evaluation seeds): policy
    observations, executed actions (normalised), sparse rewards and whether each ended by termination."""
    spec = get_task(task)
    n = min(num_envs, episodes)
    env = spec.make_env(replace(spec.config_cls(), num_envs=n, device="cpu"), seed=seed)
    obs = env.reset(seed=seed)["policy"].float()
    base = FrozenChunkBase(policy, n, seed)
    base.reset(obs)
    cur = [{"obs": [], "act": [], "rew": []} for _ in range(n)]
    out: list[dict[str, Any]] = []
    while len(out) < episodes:
        a = base.act()
        nxt, _, terminated, _, info = env.step(a)
        done, success = info["done_mask"].cpu(), info["success"].cpu()
        an = base.normalize_action(a)
        for i in range(n):
            cur[i]["obs"].append(obs[i].numpy())
            cur[i]["act"].append(an[i].numpy())
            cur[i]["rew"].append(float(success[i]))
            if done[i]:
                if len(out) < episodes:
                    out.append({"obs": np.stack(cur[i]["obs"]), "act": np.stack(cur[i]["act"]),
                                "rew": np.asarray(cur[i]["rew"]), "terminated": bool(terminated[i])})
                cur[i] = {"obs": [], "act": [], "rew": []}
        obs = nxt["policy"].float()
        base.step(obs, done)
    env.close()
    return out


def demo_episodes(demos: str | Path, policy: Any) -> list[dict[str, Any]]:
    """The demonstrations as episodes of :func:`base_rollouts`' form (labels normalised by the base)."""
    data = load_dataset(demos, keys=["observation.state", "action", "next.success"])
    out = []
    for ep in data.episodes:
        succ = np.asarray(ep["next.success"], dtype=bool).reshape(-1)
        act = policy.act_norm.normalize(torch.as_tensor(ep["action"], dtype=torch.float32)).numpy()
        out.append({"obs": np.asarray(ep["observation.state"], np.float32), "act": act, "rew": succ.astype(float),
                    "terminated": bool(succ[-1])})
    return out


def train_value(policy: Any, episodes: list[dict[str, Any]], cfg: IQLConfig, steps: int, seed: int,
                batch_size: int = 256) -> ChunkValue:
    """Fit a :class:`ChunkValue` to ``episodes`` for ``steps`` gradient steps."""
    torch.manual_seed(seed)
    to, n = policy.n_obs_steps, policy.n_action_steps
    data = stack_transitions([chunk_windows_rl(e["obs"], e["act"], e["rew"], e["terminated"], to, n, cfg.gamma)
                              for e in episodes])
    norm = (policy.obs_norm.mid.repeat(to), policy.obs_norm.span.repeat(to))
    value = ChunkValue(cfg, to * policy.obs_dim, n * policy.act_dim, n, norm)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(data["obs"]), (batch_size,), generator=gen)
        value.update({k: v[idx] for k, v in data.items()})
    return value.eval()
