"""The batched environment contract shared by every simulator backend, plus a gymnasium adapter.

Every env steps ``num_envs`` copies at once on one torch device:

* ``reset(seed) -> obs`` and ``step(action) -> (obs, reward, terminated, truncated, info)``;
* ``obs`` is a dict of named groups, ``"policy"`` (what the robot measures, noisy) and ``"critic"``
  (privileged, noise-free), each ``[num_envs, dim]``;
* finished envs are reset inside ``step``; ``info["final_obs"]`` holds the observation every env reached
  *before* that reset (equal to ``obs`` for envs that did not finish), so learners can bootstrap through
  truncation; ``info["done_mask"]`` marks the envs that were reset;
* tasks with a success criterion put ``info["success"]`` (bool ``[N]``, read where ``done_mask`` is set: did
  the episode that just ended succeed) into ``info``; the generic evaluation protocol counts it.

Besides ``reset``/``step``, the class declares every method a trainer, evaluator or exporter may call. The
defaults raise :class:`Unsupported` (``task 'X' does not support Y``), so a task implements what it supports
and a trainer that needs more fails with one clear line instead of an ``AttributeError``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

Obs = dict[str, torch.Tensor]


class Unsupported(ValueError):
    """A task was asked for something it does not provide (e.g. gradients, reward weights, an export)."""


@dataclass(frozen=True)
class CompiledStep:
    """:meth:`BatchedEnv.step` as a numba kernel, for a trainer that fuses collection into its own compiled loop.

    ``kernel(action, ctx)`` (a numba dispatcher, callable from other numba functions) advances every env one step
    on the float32 C-contiguous ``action`` ``[N, action_dim]``, resetting the finished envs as ``step`` does,
    and returns ``(policy, critic, reward, terms, flags, done_idx, final)``: the two observation groups after the
    step (float32 ``[N, dim]``), the reward ``[N]`` and reward terms ``[N, len(reward_term_names)]`` (float32),
    bool ``flags`` ``[3, N]`` (rows: terminated, truncated, done), the reset envs ``done_idx`` (int64, ascending)
    and ``final`` ``[len(done_idx), policy_dim + critic_dim]``, their observations before the reset (policy
    columns, then critic). ``ctx`` holds every piece of the env's state the kernel reads or writes: arrays the
    env itself keeps using (a kernel step and a ``step`` call continue each other exactly; the arrays stay
    valid across ``load_state_dict``, ``reset`` and ``set_reward_weights``)."""

    kernel: Any
    ctx: tuple


class BatchedEnv(ABC):
    """Abstract batched environment (see the module docstring for the contract)."""

    #: Registered task name (set by :func:`sim.registry.make_env`); names the task in errors.
    task_name: str = ""

    num_envs: int
    device: torch.device
    obs_dims: dict[str, int]
    action_dim: int
    #: Bounds of the action box (same for every dimension); actions outside are clipped by the env.
    action_low: float = -1.0
    action_high: float = 1.0
    max_episode_steps: int
    dt: float
    #: Names of the unweighted reward terms in ``info["reward_terms"]`` (``[N, n_terms]``; the reward is linear
    #: in them); empty: the task reports no terms.
    reward_term_names: tuple[str, ...] = ()
    #: Current reward weights (a dataclass of floats) where the task has them, for curricula; None: it has none.
    reward_weights: Any = None
    #: Whether ``step`` is differentiable in the action (torch autograd), for analytic policy gradients.
    differentiable: bool = False
    #: Components of the ``"critic"`` group (noise-free) that an evaluation records per step for its plots, e.g.
    #: ``("ee_position", "object_position")`` (names as :meth:`observation_names` gives them, ``component.element``);
    #: empty: the task declares none, and its evaluations record no traces.
    trace_components: tuple[str, ...] = ()
    #: Pairs of ``"critic"`` components whose distance an evaluation records beside :attr:`trace_components`, e.g.
    #: ``(("ee_position", "goal_position"),)``: the task's own progress measure.
    trace_distances: tuple[tuple[str, str], ...] = ()

    @abstractmethod
    def reset(self, seed: int | None = None) -> Obs:
        """Reset every env; a seed re-seeds the env's random generator."""

    @abstractmethod
    def step(self, action: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Advance every env one control step; returns bool ``terminated``/``truncated`` of shape ``[N]``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (nothing by default)."""

    # Optional capabilities: the defaults say which task lacks which one. -------------------------------
    def unsupported(self, what: str) -> Unsupported:
        """The error for a missing capability: ``task 'X' does not support <what>``."""
        return Unsupported(f"task {self.task_name or type(self).__name__!r} does not support {what}")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Everything needed to continue bit-exactly after :meth:`load_state_dict` (checkpoints)."""
        raise self.unsupported("checkpointing (state_dict)")

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""
        raise self.unsupported("checkpointing (load_state_dict)")

    def set_reward_weights(self, weights: Any) -> None:
        """Change the reward weights from the next step on (curricula)."""
        raise self.unsupported("reward weights (a reward curriculum)")

    def reward_from_terms(self, terms: torch.Tensor) -> torch.Tensor:
        """Rewards of stored ``info["reward_terms"]`` under the current weights (replay-buffer recomputation)."""
        raise self.unsupported("recomputing rewards from reward terms")

    def detach(self) -> None:
        """Cut the autograd graph at the current state (differentiable envs only)."""
        raise self.unsupported("gradients through the simulator (apg needs a differentiable env)")

    def observation_names(self) -> dict[str, list[str]]:
        """One name per dimension of each observation group (datasets, plots); default ``group[i]``."""
        return {group: [f"{group}[{i}]" for i in range(dim)] for group, dim in self.obs_dims.items()}

    def compiled_step(self) -> CompiledStep:
        """The env's step as a numba kernel (:class:`CompiledStep`), where its step is one."""
        raise self.unsupported("a compiled step (compiled_step)")

    def export_spec(self) -> dict[str, Any]:
        """The deployed policy's observation/action contract: the ``policy.json`` fields ``observation``,
        ``action``, ``control_rate_hz`` and optionally ``robot`` and ``model`` (see :mod:`deploy.contract`)."""
        raise self.unsupported("export (export_spec)")


class GymVectorEnv(gym.vector.VectorEnv):
    """Gymnasium ``VectorEnv`` view of a :class:`BatchedEnv` (numpy in and out, same-step autoreset).

    ``obs_group`` picks which observation group is the gymnasium observation; the other groups are
    returned in ``info["obs_<group>"]``. Final observations of finished envs come in
    ``info["final_obs"]`` with the mask ``info["_final_obs"]``, as gymnasium's SAME_STEP mode specifies.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env: BatchedEnv, obs_group: str = "policy") -> None:
        if obs_group not in env.obs_dims:
            raise ValueError(f"unknown observation group {obs_group!r}; the env has {sorted(env.obs_dims)}")
        self.env = env
        self.obs_group = obs_group
        self.num_envs = env.num_envs
        dim = env.obs_dims[obs_group]
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.single_action_space = gym.spaces.Box(env.action_low, env.action_high, (env.action_dim,), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)

    def _split(self, obs: Obs) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        extra = {f"obs_{k}": v.cpu().numpy() for k, v in obs.items() if k != self.obs_group}
        return obs[self.obs_group].cpu().numpy(), extra

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self._split(self.env.reset(seed=seed))
        return obs, info

    def step(self, actions):
        action = torch.as_tensor(np.asarray(actions, dtype=np.float32), device=self.env.device)
        obs, reward, terminated, truncated, info = self.env.step(action)
        out, extra = self._split(obs)
        done = info["done_mask"].cpu().numpy()
        extra["final_obs"] = np.where(done[:, None], info["final_obs"][self.obs_group].cpu().numpy(), 0.0)
        extra["_final_obs"] = done
        return (out, reward.cpu().numpy(), terminated.cpu().numpy(), truncated.cpu().numpy(), extra)

    def close_extras(self, **kwargs) -> None:
        self.env.close()
