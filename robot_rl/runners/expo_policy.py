"""The EXPO agent on a chunked base and its deterministic policy, shared by training, evaluation and export.

:func:`make_agent` sizes Q and the edit policy for a base policy (its observation history, the wrench reading where
the agent reads it, one action or a whole chunk: :func:`q_steps`); :class:`CandidatePolicy` runs the trained agent
(mean edits, argmax Q over the candidates) as a batched ``obs -> action`` callable.
"""

from __future__ import annotations

from typing import Any

import torch

from robot_rl.residual.base_policy import BaseStepPolicy, FrozenChunkBase
from robot_rl.residual.expo import EXPOAgent, EXPOConfig, commit, commit_chunk, propose, propose_chunks
from robot_rl.residual.expo_inputs import WRENCH_DIM, agent_obs, agent_obs_norm


def obs_norm_of(base: FrozenChunkBase, wrench: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The base's observation normalisation tiled over its history, then the wrench's where the agent reads it
    (what Q and the edit policy read: :mod:`robot_rl.residual.expo_inputs`)."""
    n = base.policy.obs_norm
    return agent_obs_norm(n.mid, n.span, base.n_obs_steps, wrench)


def q_steps(cfg: EXPOConfig, policy: Any) -> int:
    """Control steps one Q action spans: 1, or the base's ``n_action_steps`` for a chunk-level Q."""
    return policy.n_action_steps if cfg.q_level == "chunk" else 1


def make_agent(cfg: EXPOConfig, policy: Any, obs_norm: tuple[torch.Tensor, torch.Tensor] | None = None,
               wrench: bool = False) -> EXPOAgent:
    """The agent for a base ``policy``: Q and edits on its observation history (and the wrench reading) and on
    one action (``q_level "step"``) or the ``n_action_steps`` actions of a chunk (``"chunk"``)."""
    n = q_steps(cfg, policy)
    obs_dim = policy.n_obs_steps * policy.obs_dim + (WRENCH_DIM if wrench else 0)
    return EXPOAgent(cfg, obs_dim, n * policy.act_dim, obs_norm, chunk_steps=n)


class CandidatePolicy(BaseStepPolicy):
    """The deterministic EXPO policy (mean edits, argmax Q over whole chunks where one is due) as a batched
    ``obs -> action`` callable for the evaluation protocols."""

    def __init__(self, policy: Any, agent: EXPOAgent, seed: int, wrench: bool = False) -> None:
        super().__init__(policy, seed)
        self.agent = agent
        self.obs_groups = ("policy", "wrench") if wrench else ("policy",)
        self.wrench: torch.Tensor | None = None

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """One control step; with the wrench, ``obs`` is the policy group then the wrench group."""
        if len(self.obs_groups) > 1:
            obs = obs.float().cpu()
            obs, self.wrench = obs[:, :-WRENCH_DIM], obs[:, -WRENCH_DIM:]
        return super().__call__(obs)

    def choose(self, base: FrozenChunkBase) -> torch.Tensor:
        obs = agent_obs(base.history, self.wrench)
        if self.agent.cfg.q_level == "chunk":
            cands, due, chunks = propose_chunks(base, self.agent.cfg.num_candidates)
            if len(due):
                action, idx, _ = self.agent.select(obs[due], cands, stochastic=False)
                commit_chunk(base, due, chunks, idx, action)
            return base.act()
        cands, due, chunks = propose(base, self.agent.cfg.num_candidates)
        action, idx, _ = self.agent.select(obs, cands, stochastic=False)
        commit(base, due, chunks, idx)
        return base.unnormalize_action(action)
