"""A frozen chunked behaviour-cloning policy executed per env, step by step, as deployment executes it.

:class:`FrozenChunkBase` is the base that residual RL (ResiP), EXPO-style edit policies and value-guided
re-ranking build on. Each env keeps its own observation history and chunk phase: a chunk is sampled from the
history in the step where the previous one has run ``n_action_steps`` actions (the synchronous schedule of
:class:`deploy.chunked_runtime.ChunkedPolicyRunner` and :func:`robot_rl.policies.rollout.evaluate_chunked`),
and an env whose episode ends restarts with its history filled with the auto-reset observation and a new chunk
due. Only the envs whose chunk is due are sampled, with noise from the base's own generator in env order, so
when every env is due together the noise is exactly that of ``policy.predict_chunk(history, generator)``.

Candidate chunks for scoring (:meth:`FrozenChunkBase.candidate_chunks`): the first draws the base's own noise, the
others a second generator, so choosing the first runs the plain base and the others never shift its noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robot_rl.policies.base import ChunkPolicy


class FrozenChunkBase:
    """Per-env execution of a frozen :class:`~robot_rl.policies.base.ChunkPolicy` (see the module docstring).

    Args:
        policy: the trained chunk policy (diffusion, flow or MSE-BC) with ``obs_norm``/``act_norm``
            min-max normalisers; it is put in eval mode and its parameters frozen.
        num_envs: batch size N of every call.
        seed: seed of the chunk noise (and, offset by one, of the candidate noise).
    """

    def __init__(self, policy: ChunkPolicy, num_envs: int, seed: int) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.policy = policy
        if isinstance(policy, torch.nn.Module):
            policy.eval()
            for p in policy.parameters():
                p.requires_grad_(False)
        self.num_envs = int(num_envs)
        self.obs_dim, self.action_dim = int(policy.obs_dim), int(policy.act_dim)
        self.n_obs_steps, self.n_action_steps = int(policy.n_obs_steps), int(policy.n_action_steps)
        self.horizon = int(policy.horizon)
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.candidate_generator = torch.Generator().manual_seed(self.seed + 1)
        n = self.num_envs
        self.history = torch.zeros(n, self.n_obs_steps, self.obs_dim)
        self.chunk = torch.zeros(n, self.horizon, self.action_dim)
        self.phase = torch.zeros(n, dtype=torch.long)
        """Index into ``chunk`` of the action each env executes next."""
        self.chunk_due = torch.ones(n, dtype=torch.bool)
        """Envs whose next :meth:`act` samples a new chunk."""
        self.chunks_sampled = 0

    @classmethod
    def from_run(cls, run_dir: str | Path, num_envs: int, seed: int) -> FrozenChunkBase:
        """The trained policy of a behaviour-cloning run (``robot-rl train dp-<task>|mse-<task>``), frozen with
        its evaluation weights (EMA where kept)."""
        from robot_rl.runners.bc import load_policy

        policy, _ = load_policy(run_dir)
        return cls(policy, num_envs, seed)

    # ------------------------------------------------------------------ normalisation
    def normalize_action(self, a: torch.Tensor) -> torch.Tensor:
        """Raw action units -> the base's normalised action space ([-1, 1] over the demonstrations)."""
        return self.policy.act_norm.normalize(a)

    def unnormalize_action(self, a: torch.Tensor) -> torch.Tensor:
        """The base's normalised action space -> raw action units."""
        return self.policy.act_norm.unnormalize(a)

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw policy observation -> the base's normalised observation ([-1, 1] over the demonstrations)."""
        return self.policy.obs_norm.normalize(obs)

    # ------------------------------------------------------------------ episodes
    def _ids(self, env_ids: torch.Tensor | None) -> torch.Tensor:
        if env_ids is None:
            return torch.arange(self.num_envs)
        ids = torch.as_tensor(env_ids)
        if ids.dtype == torch.bool:
            if ids.shape != (self.num_envs,):
                raise ValueError(f"env mask must have shape [{self.num_envs}], got {list(ids.shape)}")
            return torch.nonzero(ids).flatten()
        return ids.long().flatten()

    def _check_obs(self, obs: torch.Tensor) -> torch.Tensor:
        obs = torch.as_tensor(obs).detach().to("cpu", torch.float32)
        if obs.shape != (self.num_envs, self.obs_dim):
            raise ValueError(f"observations must be [{self.num_envs}, {self.obs_dim}], got {list(obs.shape)}")
        return obs

    def reset(self, obs: torch.Tensor, env_ids: torch.Tensor | None = None) -> None:
        """Start episodes of ``env_ids`` (index tensor or [N] bool mask; None: every env) from ``obs`` [N, obs_dim]
        (all envs' rows; only those of ``env_ids`` are read): history filled with it, a new chunk due."""
        obs = self._check_obs(obs)
        ids = self._ids(env_ids)
        self.history[ids] = obs[ids, None, :].expand(-1, self.n_obs_steps, -1)
        self.phase[ids] = 0
        self.chunk_due[ids] = True

    # ------------------------------------------------------------------ acting
    def _sample(self, history: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            return self.policy.predict_chunk(history, generator)

    def due(self) -> torch.Tensor:
        """``[N]`` bool: the envs whose next :meth:`act` starts a new chunk."""
        return self.chunk_due.clone()

    def act(self, chunks: torch.Tensor | None = None) -> torch.Tensor:
        """The raw action ``[N, A]`` each env executes now. Envs whose chunk is due get a new one: sampled from
        their history, or taken from ``chunks`` ``[N, horizon, A]`` when given (re-ranking picks the chunk;
        rows of envs not due are ignored). Calling it again before :meth:`step` returns the same actions."""
        due = torch.nonzero(self.chunk_due).flatten()
        if len(due):
            if chunks is not None:
                if chunks.shape != (self.num_envs, self.horizon, self.action_dim):
                    raise ValueError(f"chunks must be [{self.num_envs}, {self.horizon}, {self.action_dim}], got "
                                     f"{list(chunks.shape)}")
                self.chunk[due] = chunks[due].detach().to("cpu", torch.float32)
            else:
                self.chunk[due] = self._sample(self.history[due], self.generator)
            self.chunks_sampled += len(due)
            self.chunk_due[due] = False
        return self.chunk[torch.arange(self.num_envs), self.phase].clone()

    def candidate_chunks(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(due [D], chunks [D, k, horizon, A])``: k chunks (raw units) from the histories of the D envs whose
        chunk is due. Chunk 0 draws the base's own noise, exactly what :meth:`act` would sample (so choosing it
        runs the plain base); chunks 1..k-1 draw from the candidate generator. Nothing else changes until the
        chosen chunks are passed to :meth:`act`."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        due = torch.nonzero(self.chunk_due).flatten()
        out = torch.zeros(len(due), k, self.horizon, self.action_dim)
        if len(due):
            hist = self.history[due]
            out[:, 0] = self._sample(hist, self.generator)
            if k > 1:
                rest = self._sample(hist.repeat_interleave(k - 1, dim=0), self.candidate_generator)
                out[:, 1:] = rest.view(len(due), k - 1, self.horizon, self.action_dim)
        return due, out

    def step(self, next_obs: torch.Tensor, done: torch.Tensor) -> None:
        """Advance one control step: ``next_obs`` [N, obs_dim] joins the histories; envs with ``done`` [N] restart
        their episode from ``next_obs`` (the auto-reset observation)."""
        obs = self._check_obs(next_obs)
        done = torch.as_tensor(done).to("cpu", torch.bool).reshape(-1)
        if done.shape != (self.num_envs,):
            raise ValueError(f"done must be [{self.num_envs}], got {list(done.shape)}")
        if bool(self.chunk_due.any()):
            raise RuntimeError("step() before act(): every env needs its action of this step first")
        self.history = torch.cat((self.history[:, 1:], obs[:, None, :]), dim=1)
        self.phase += 1
        wrap = self.phase >= self.n_action_steps
        self.phase[wrap] = 0
        self.chunk_due |= wrap
        if bool(done.any()):
            self.reset(obs, done)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Generators, histories, chunks and phases (flat tensors, for checkpoints)."""
        return {"generator": self.generator.get_state(), "candidate_generator": self.candidate_generator.get_state(),
                "history": self.history.clone(), "chunk": self.chunk.clone(), "phase": self.phase.clone(),
                "chunk_due": self.chunk_due.clone(), "chunks_sampled": torch.tensor(self.chunks_sampled)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (same policy and ``num_envs``)."""
        if tuple(state["history"].shape) != tuple(self.history.shape):
            raise ValueError(f"base state has histories {list(state['history'].shape)}, this base "
                             f"{list(self.history.shape)}")
        self.generator.set_state(state["generator"])
        self.candidate_generator.set_state(state["candidate_generator"])
        self.history = state["history"].clone().float()
        self.chunk = state["chunk"].clone().float()
        self.phase = state["phase"].clone().long()
        self.chunk_due = state["chunk_due"].clone().bool()
        self.chunks_sampled = int(state["chunks_sampled"])


class BaseStepPolicy:
    """A batched ``obs -> action`` callable for the evaluation protocols, built on a :class:`FrozenChunkBase`:
    each call is one control step of every env (their first episode counts). Subclasses choose the action from
    the base in :meth:`choose` (re-ranked chunks, EXPO's argmax-Q candidate)."""

    def __init__(self, policy: ChunkPolicy, seed: int) -> None:
        self.policy, self.seed = policy, seed
        self.base: FrozenChunkBase | None = None

    def reset(self) -> None:
        """Start afresh (an evaluation calls it first): the next call starts every env's episode with a new base
        whose noise comes from ``seed`` again, so every row of a robustness sweep sees the same noise."""
        self.base = None

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        obs = obs.float().cpu()
        if self.base is None:
            self.base = FrozenChunkBase(self.policy, len(obs), self.seed)
            self.base.reset(obs)
        else:
            self.base.step(obs, torch.zeros(len(obs), dtype=torch.bool))
        return self.choose(self.base)

    def choose(self, base: FrozenChunkBase) -> torch.Tensor:
        """The raw action every env executes now."""
        raise NotImplementedError
