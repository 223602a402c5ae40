"""EXPO's base training: the chunked base keeps learning on its own imitation loss over successful data.

EXPO (Dong et al.) does not leave its base frozen: while the edit policy and Q learn, the base is trained further
on its behaviour-cloning objective over the demonstrations plus the online episodes that succeeded, so that what
the edits and the argmax-Q choice found is distilled into the base that samples the next candidates.

:class:`SuccessPool` holds the imitation data as (observation history, action chunk) windows, exactly as the
behaviour-cloning runner builds them (:func:`robot_rl.policies.windows.chunk_windows`, one window per frame,
padded at the episode's ends): the demonstration windows once (only episodes that succeed, as
``BCTrainConfig.success_only``), then the online ones. An online episode is kept per env, frame by frame (the
policy observation it acted on and the raw action it executed, edits included), and enters the pool only when it
ends having succeeded; a failed or truncated-without-success episode is dropped whole.

:class:`BaseImitation` takes one gradient step of the policy's own ``compute_loss`` (DDPM / flow / MSE, the loss
``robot-rl train dp-<task>`` used) on a batch drawn uniformly from the pool, with AdamW (the base run's betas and
weight decay) and the policy's EMA update after each step; sampling (the candidates, evaluation, the export) uses
the EMA weights where the base keeps them, as after behaviour cloning. Its own generator draws the batches and the
diffusion noise, so training the base never shifts the noise of the agent's updates; the optimiser, the EMA step,
the generator, the pool and the episodes in progress go into the checkpoint (exact resume).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robot_rl.checkpoint import load_optimizer, optimizer_tensors
from robot_rl.data import load_dataset
from robot_rl.policies.windows import chunk_windows
from robot_rl.runners.bc import SUCCESS_KEY, dataset_features


def demo_windows(demos: str | Path, obs_key: str, action_key: str, n_obs_steps: int,
                 horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The BC windows ``(obs [W, n_obs_steps, obs_dim], actions [W, horizon, A])`` of the episodes of ``demos``
    that succeed (every episode when the dataset records no success)."""
    recorded = SUCCESS_KEY in dataset_features(demos)
    data = load_dataset(demos, keys=[obs_key, action_key] + ([SUCCESS_KEY] if recorded else []))
    eps = [ep for ep in data.episodes if not recorded or bool(ep[SUCCESS_KEY].any())]
    if not eps:
        raise ValueError(f"{demos}: no demonstration episode succeeds; nothing for the base to imitate")
    obs, act = chunk_windows([ep[obs_key] for ep in eps], [ep[action_key] for ep in eps], n_obs_steps, horizon)
    return torch.as_tensor(obs), torch.as_tensor(act)


class SuccessPool:
    """Imitation windows of successful episodes: fixed demonstration windows + a ring of ``capacity`` online ones,
    and the online episodes in progress (one per env)."""

    def __init__(self, num_envs: int, obs_dim: int, act_dim: int, n_obs_steps: int, horizon: int, capacity: int,
                 demo: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"base imitation capacity must be at least 1, got {capacity}")
        self.n_obs_steps, self.horizon, self.capacity = n_obs_steps, horizon, capacity
        self.demo_obs = demo[0] if demo is not None else torch.zeros(0, n_obs_steps, obs_dim)
        self.demo_act = demo[1] if demo is not None else torch.zeros(0, horizon, act_dim)
        self.obs = torch.zeros(capacity, n_obs_steps, obs_dim)
        self.act = torch.zeros(capacity, horizon, act_dim)
        self.pos = self.online = 0
        self.episodes_added = self.frames_dropped = 0
        self.ep_obs = torch.zeros(num_envs, 64, obs_dim)
        self.ep_act = torch.zeros(num_envs, 64, act_dim)
        self.ep_len = torch.zeros(num_envs, dtype=torch.long)
        self.ep_success = torch.zeros(num_envs, dtype=torch.bool)

    @property
    def size(self) -> int:
        """Windows to draw from (demonstrations + online)."""
        return len(self.demo_obs) + self.online

    def record(self, obs: torch.Tensor, action: torch.Tensor, done: torch.Tensor, success: torch.Tensor) -> int:
        """One control step of every env: ``obs`` ``[N, obs_dim]`` the policy observation acted on, ``action``
        ``[N, A]`` the raw action executed, ``done`` / ``success`` ``[N]`` from the env step. Envs whose episode
        ends here add its windows if it succeeded at any step, and start a new one; returns the episodes added."""
        n = len(obs)
        rows = torch.arange(n)
        if int(self.ep_len.max()) >= self.ep_obs.shape[1]:  # grow every episode buffer by doubling
            self.ep_obs = torch.cat((self.ep_obs, torch.zeros_like(self.ep_obs)), dim=1)
            self.ep_act = torch.cat((self.ep_act, torch.zeros_like(self.ep_act)), dim=1)
        self.ep_obs[rows, self.ep_len] = obs
        self.ep_act[rows, self.ep_len] = action
        self.ep_len += 1
        self.ep_success |= success.bool()
        added = 0
        for i in torch.nonzero(done.bool()).flatten().tolist():
            length = int(self.ep_len[i])
            if bool(self.ep_success[i]):
                o, a = chunk_windows([self.ep_obs[i, :length].numpy()], [self.ep_act[i, :length].numpy()],
                                     self.n_obs_steps, self.horizon)
                self._add(torch.as_tensor(o), torch.as_tensor(a))
                added += 1
            else:
                self.frames_dropped += length
            self.ep_len[i], self.ep_success[i] = 0, False
        self.episodes_added += added
        return added

    def _add(self, obs: torch.Tensor, act: torch.Tensor) -> None:
        idx = (torch.arange(len(obs)) + self.pos) % self.capacity
        self.obs[idx], self.act[idx] = obs[-self.capacity:], act[-self.capacity:]
        self.pos = (self.pos + len(obs)) % self.capacity
        self.online = min(self.online + len(obs), self.capacity)

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch`` windows uniformly over the pool."""
        idx = torch.randint(0, self.size, (batch,), generator=generator)
        d = len(self.demo_obs)
        demo, online = idx[idx < d], idx[idx >= d] - d
        return (torch.cat((self.demo_obs[demo], self.obs[online])), torch.cat((self.demo_act[demo], self.act[online])))

    def state_dict(self) -> dict[str, torch.Tensor]:
        m = max(int(self.ep_len.max()), 1)
        return {"obs": self.obs[:self.online].clone(), "act": self.act[:self.online].clone(),
                "counters": torch.tensor([self.pos, self.online, self.episodes_added, self.frames_dropped]),
                "ep_obs": self.ep_obs[:, :m].clone(), "ep_act": self.ep_act[:, :m].clone(),
                "ep_len": self.ep_len.clone(), "ep_success": self.ep_success.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.pos, self.online, self.episodes_added, self.frames_dropped = (int(x) for x in state["counters"])
        self.obs[:self.online], self.act[:self.online] = state["obs"], state["act"]
        m = max(state["ep_obs"].shape[1], 64)
        self.ep_obs = torch.zeros(len(self.ep_len), m, self.ep_obs.shape[2])
        self.ep_act = torch.zeros(len(self.ep_len), m, self.ep_act.shape[2])
        self.ep_obs[:, :state["ep_obs"].shape[1]] = state["ep_obs"]
        self.ep_act[:, :state["ep_act"].shape[1]] = state["ep_act"]
        self.ep_len, self.ep_success = state["ep_len"].clone().long(), state["ep_success"].clone().bool()


class BaseImitation:
    """Keeps training ``policy`` (the base the candidates are sampled from) on its imitation loss over a
    :class:`SuccessPool`; see the module docstring.

    Args:
        policy: the chunk policy (trained in place; its EMA, when kept, follows every step).
        pool: the successful data.
        lr: AdamW learning rate (constant).
        batch: windows per step.
        seed: seed of the batches and the loss noise.
        betas, weight_decay: AdamW settings (the base run's).
    """

    def __init__(self, policy: Any, pool: SuccessPool, lr: float, batch: int, seed: int,
                 betas: tuple[float, float] = (0.95, 0.999), weight_decay: float = 1e-6) -> None:
        self.policy, self.pool, self.batch = policy, pool, batch
        self.opt = torch.optim.AdamW(policy.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
        self.gen = torch.Generator().manual_seed(seed)
        self.steps = 0

    def step(self) -> float | None:
        """One optimiser step on a batch of the pool (its loss), or None while the pool is empty."""
        if self.pool.size == 0:
            return None
        obs, act = self.pool.sample(self.batch, self.gen)
        params = list(self.policy.parameters())
        for p in params:  # frozen for everything else (every FrozenChunkBase built on it switches them off)
            p.requires_grad_(True)
        self.policy.train()
        with torch.enable_grad():
            loss = self.policy.compute_loss(obs, act, self.gen)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        self.opt.step()
        self.policy.after_optimizer_step()
        self.policy.eval()
        for p in params:
            p.requires_grad_(False)
        self.steps += 1
        return loss.item()

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Checkpoint tensors (``policy.*``/``ema.*`` weights, optimiser, generator, pool) and metadata."""
        tensors = dict(self.policy.state_tensors())
        t, opt_meta = optimizer_tensors("opt", self.opt)
        tensors.update(t)
        tensors.update({f"pool.{k}": v for k, v in self.pool.state_dict().items()})
        tensors["gen"] = self.gen.get_state()
        ema = getattr(self.policy, "ema", None)
        meta = {"steps": self.steps, "optimizer": opt_meta, "ema_step": ema.step if ema is not None else 0,
                "pool_windows": self.pool.size, "episodes_added": self.pool.episodes_added}
        return tensors, meta

    def load(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Continue from :meth:`state`."""
        load_trained_base(self.policy, tensors, meta)
        load_optimizer("opt", self.opt, tensors, meta["optimizer"])
        self.pool.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("pool.")})
        self.gen.set_state(tensors["gen"])
        self.steps = meta["steps"]


def load_trained_base(policy: Any, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Put the weights of :meth:`BaseImitation.state` (``policy.*``/``ema.*`` tensors) into ``policy``."""
    policy.load_state_tensors(tensors, meta["ema_step"])


def make_base_imitation(cfg: Any, num_envs: int, seed: int, base_cfg: dict[str, Any], policy: Any,
                        demos: str) -> BaseImitation | None:
    """The base's imitation trainer for an :class:`~robot_rl.residual.expo.EXPOConfig` ``cfg`` with
    ``base_bc_every`` > 0 (None: the base stays frozen): the windows of the successful episodes of ``demos`` (""
    for none; read with the keys of the base run's config ``base_cfg``, whose AdamW betas and weight decay it also
    takes) + a ring for the online episodes of ``num_envs`` envs that succeed; batches and noise from ``seed + 4``."""
    if cfg.base_bc_every <= 0:
        return None
    p = policy
    demo = (demo_windows(demos, base_cfg.get("obs_key", "observation.state"), base_cfg.get("action_key", "action"),
                         p.n_obs_steps, p.horizon) if demos else None)
    pool = SuccessPool(num_envs, p.obs_dim, p.act_dim, p.n_obs_steps, p.horizon, cfg.base_bc_capacity, demo)
    return BaseImitation(p, pool, cfg.base_bc_lr, cfg.base_bc_batch, seed + 4,
                         tuple(base_cfg.get("betas", (0.95, 0.999))), base_cfg.get("weight_decay", 1e-6))
