"""A re-ranking value from branched base rollouts: K chunks from one state, each with a simulated outcome.

The IQL value of :mod:`robot_rl.residual.rerank` learns from base rollouts where each state has one executed
chunk, and does not tell one state's K samples apart (benchmarks/README.md, "Re-ranking's ceiling"). This fits a
value to exactly that contrast. :func:`best_of_k_rollouts` runs the base on training episodes (never the
evaluation seeds) and, where a chunk is due, executes each of the K candidates (candidate 0 = the base's own
sample) from a copy of the env's state, followed by the plain base for ``lookahead`` control steps; a candidate
scores +1 if the episode succeeds within them, -1 if it fails (a failure termination), else 0, and the best one
runs. Every continuation of one replanning draws the same *fresh* base and observation noise, not the noise the
run then meets: a one-sample estimate of each chunk's success. With a simulator as the value this is also the
ceiling of re-ranking (``benchmarks/rerank_oracle.py``).

:func:`fit_branch_value` regresses each candidate's score minus the mean score of its state on (observation
history, executed chunk) with an ensemble Q (only the ranking within a state matters, so the state's own value is
not learned); :class:`BranchValue` scores chunks as :class:`robot_rl.residual.value.ChunkValue` does, so
re-ranking, its evaluation and its export take either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.q_ensemble import QEnsemble
from sim.registry import get_task


@dataclass
class BranchedConfig:
    """Data and network of the branched value (``robot-rl train vgps --value branched``)."""

    episodes: int = 96
    """Branched training episodes (env seed: the run's seed + 10 000, as the IQL value's base rollouts)."""
    lookahead: int = 64
    """Control steps each candidate is simulated for (0: to the end of the episode)."""
    num_q: int = 2
    """Q members (the score is their mean)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths."""
    lr: float = 3e-4
    """Adam learning rate."""


def score_continuations(env: Any, base: FrozenChunkBase, chunks: torch.Tensor, steps: int,
                        seed: int) -> torch.Tensor:
    """Run ``chunks`` at the due envs, then the base, for ``steps`` control steps from the current state with
    fresh noise from ``seed``: +1 success, -1 failure, 0 neither (per env, the first episode end only)."""
    base.generator.manual_seed(seed)
    env.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state  # the env's own generator object
    score = torch.zeros(base.num_envs)
    ended = torch.zeros(base.num_envs, dtype=torch.bool)
    a = base.act(chunks)
    for _ in range(steps):
        obs, _, terminated, _, info = env.step(a)
        now = info["done_mask"].cpu() & ~ended
        succ = info["success"].cpu().bool()
        score[now & succ] = 1.0
        score[now & ~succ & terminated.cpu().bool()] = -1.0
        ended |= now
        if bool(ended.all()):
            break
        base.step(obs["policy"].float(), info["done_mask"].cpu())
        a = base.act()
    return score


@torch.no_grad()
def best_of_k_rollouts(policy: Any, task: str, episodes: int, k: int, lookahead: int, seed: int, env_seed: int,
                       record: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
                       ) -> dict[str, Any]:
    """``episodes`` episodes (one per env, env seed ``env_seed``) of the base (``k`` 1) or of the best of ``k``
    candidates by simulated continuation. ``record``: per replanning, the envs still in their episode get
    ``(history [D, To * obs], executed parts of the K candidates normalised [D, K, n * A], scores [D, K])``."""
    spec = get_task(task)
    env = spec.make_env(replace(spec.config_cls(), num_envs=episodes, device="cpu"), seed=env_seed)
    obs = env.reset(seed=env_seed)
    base = FrozenChunkBase(policy, episodes, seed)
    base.reset(obs["policy"].float())
    horizon = lookahead or env.max_episode_steps
    done = torch.zeros(episodes, dtype=torch.bool)
    success = torch.zeros(episodes, dtype=torch.bool)
    length = torch.zeros(episodes, dtype=torch.long)
    ret = torch.zeros(episodes, dtype=torch.float64)
    simulated, replans, t0 = 0, 0, time.perf_counter()
    for _ in range(env.max_episode_steps):
        chunks = None
        if k > 1 and bool((base.due() & ~done).any()):  # an episode that still counts needs a chunk
            due, cands = base.candidate_chunks(k)
            env_state, base_state = env.state_dict(), base.state_dict()
            scores = torch.zeros(len(due), k)
            look_seed = 10_000_019 * (seed + 1) + replans
            for j in range(k):
                env.load_state_dict(env_state)
                base.load_state_dict(base_state)
                trial = base.chunk.clone()
                trial[due] = cands[:, j]
                scores[:, j] = score_continuations(env, base, trial, horizon, look_seed)[due]
                simulated += horizon * episodes
            env.load_state_dict(env_state)
            base.load_state_dict(base_state)
            chunks = base.chunk.clone()
            if record is not None:
                live = ~done[due]
                executed = base.normalize_action(cands[live, :, : base.n_action_steps]).flatten(2)
                record.append((base.history[due][live].flatten(1), executed, scores[live]))
            best = torch.where(done[due], 0, scores.argmax(1))  # argmax: the first of equal scores
            chunks[due] = cands[torch.arange(len(due)), best]
            replans += 1
        obs, reward, _, _, info = env.step(base.act(chunks))
        ret += torch.where(done, 0.0, reward.cpu().double())
        length += (~done).long()
        ended = info["done_mask"].cpu() & ~done
        success |= ended & info["success"].cpu().bool()
        done |= ended
        if bool(done.all()):
            break
        base.step(obs["policy"].float(), info["done_mask"].cpu())
    env.close()
    return {"task": task, "success": success.double().mean().item(), "episode_success": success.tolist(),
            "episode_length": length.tolist(), "episode_return": ret.tolist(), "replans": replans,
            "env_steps_simulated": simulated, "wall_s": round(time.perf_counter() - t0, 1)}


def stack_record(record: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """:func:`best_of_k_rollouts`' record as three tensors (one row per state): ``hist``, ``chunks``, ``scores``."""
    return {"hist": torch.cat([h for h, _, _ in record]), "chunks": torch.cat([c for _, c, _ in record]),
            "scores": torch.cat([s for _, _, s in record])}


def relative_scores(stacked: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One row per (state, candidate): history, executed chunk and the score minus its state's mean score;
    ``mixed`` (one per state): whether its candidates' scores differ."""
    hist, chunks, scores = stacked["hist"], stacked["chunks"], stacked["scores"]
    return {"obs": hist.repeat_interleave(chunks.shape[1], dim=0), "chunk": chunks.flatten(0, 1),
            "target": (scores - scores.mean(1, keepdim=True)).flatten(),
            "mixed": (scores.max(1).values > scores.min(1).values).float()}


class BranchValue(nn.Module):
    """Re-ranking score of executed chunks: the ensemble mean of a Q fitted to relative branched outcomes."""

    def __init__(self, cfg: BranchedConfig, obs_dim: int, chunk_dim: int,
                 obs_norm: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__()
        mid, span = obs_norm or (torch.zeros(obs_dim), torch.ones(obs_dim))
        self.q = QEnsemble(cfg.num_q, obs_dim, chunk_dim, cfg.hidden, mid, span)

    def score(self, obs: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        """Scores ``[B]`` of normalised executed chunks ``[B, n_exec * A]`` after histories ``[B, To * obs]``."""
        return self.q(obs, chunk).mean(0)


def fit_branch_value(policy: Any, data: dict[str, torch.Tensor], cfg: BranchedConfig, steps: int, seed: int,
                     batch_size: int = 256) -> BranchValue:
    """Regress :func:`relative_scores`' ``target`` on (history, chunk) for ``steps`` Adam steps."""
    torch.manual_seed(seed)
    to = policy.n_obs_steps
    value = BranchValue(cfg, data["obs"].shape[1], data["chunk"].shape[1],
                        (policy.obs_norm.mid.repeat(to), policy.obs_norm.span.repeat(to)))
    opt = torch.optim.Adam(value.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(data["target"]), (batch_size,), generator=gen)
        loss = ((value.q(data["obs"][idx], data["chunk"][idx]) - data["target"][idx]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return value.eval()
