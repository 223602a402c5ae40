"""A differentiable fused hover env: numba forward step plus a hand-written vector-Jacobian product.

:class:`DiffFusedHoverEnv` is :class:`~sim.quadrotor.fused.FusedQuadrotorHoverEnv` (same constructor, random
streams, observations, reward, termination and auto-reset) whose ``step`` is differentiable like the plain-torch
:class:`~sim.quadrotor.task.QuadrotorHoverEnv`: when the action (or the state reached by earlier differentiable
steps) requires grad, the returned actor observation and reward carry an autograd graph through one
``torch.autograd.Function`` per step. Its forward is the fused numba step; its backward is
``_adjoint_kernels.vjp_rows``, the adjoint of RK4 + quaternion renormalisation + rotor-speed clamp +
observation + reward + action clamp + action history. Gradients flow where they flow in the torch env: through
the dynamics, the observation the policy reads (the noise is additive), the action history and the reward;
an env that is reset starts a gradient-free branch (its new state, observation and history), while the reward
of its last step still depends on the pre-reset state. ``detach()`` cuts the graph (truncated BPTT), as in the
torch env. Not differentiable: the critic group and ``info["final_obs"]``. Over vehicles (``vehicles.enabled``) the
backward is ``_adjoint_vehicles.vjp_rows_v``, and with observation latency the differentiable state carried from
step to step is the dynamics state plus the delay line of clean observations (``carry_dim`` columns).

:func:`hover_step` is the same one-step math as a differentiable function of ``(state, action)`` without
termination or resets, in float32 or float64 (used to check the VJP with ``torch.autograd.gradcheck``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sim.core import Obs
from sim.quadrotor import _adjoint_kernels as A
from sim.quadrotor import _adjoint_vehicles as AV
from sim.quadrotor import _fused_kernels as K
from sim.quadrotor.config import QuadrotorTaskConfig, RewardWeights
from sim.quadrotor.fused import FusedQuadrotorHoverEnv


def _np(t: torch.Tensor | np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A contiguous numpy array of a (possibly absent) cotangent."""
    if t is None:
        return np.zeros(shape, dtype)
    if isinstance(t, np.ndarray):
        return np.ascontiguousarray(t, dtype)
    return t.detach().to("cpu", torch.float64 if dtype == np.float64 else torch.float32).contiguous().numpy()


class _HoverStep(torch.autograd.Function):
    """``(state, action) -> (next_state, clean_obs, reward)`` of one step (no termination or resets)."""

    @staticmethod
    def forward(ctx: Any, state: torch.Tensor, action: torch.Tensor, consts: tuple[np.ndarray, ...]
                ) -> tuple[torch.Tensor, ...]:
        s, a = state.detach().contiguous().numpy(), action.detach().to(state.dtype).contiguous().numpy()
        ctx.arrays = (s, a, *consts)
        ctx.set_materialize_grads(False)
        return tuple(torch.from_numpy(x) for x in A.forward_rows(s, a, *consts))

    @staticmethod
    def backward(ctx: Any, g_next: torch.Tensor | None, g_obs: torch.Tensor | None,
                 g_reward: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        s, a = ctx.arrays[:2]
        n, dt = s.shape[0], s.dtype
        live = np.ones(n, np.bool_)
        gs, ga, _ = A.vjp_rows(*ctx.arrays, _np(g_next, (n, 17), dt), _np(g_obs, (n, 18), dt),
                               _np(g_reward, (n,), dt), live)
        return torch.from_numpy(gs), torch.from_numpy(ga), None


def hover_step(state: torch.Tensor, action: torch.Tensor, env: FusedQuadrotorHoverEnv
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One differentiable hover step of ``state`` ``[N, 17]`` under ``action`` ``[N, 4]`` (clamped to [-1, 1]):
    next state ``[N, 17]``, noise-free actor observation ``[N, 18]`` and reward ``[N]``.

    Disturbances, target, per-env parameters, frame constants and reward weights are those ``env`` holds now;
    no termination or reset. Runs in the dtype of ``state`` (float32 or float64, CPU). The frame's vehicle only.
    """
    if env._veh.enabled:
        raise ValueError("hover_step: the frame's vehicle only (vehicles.enabled is not supported)")
    dt = state.detach().numpy().dtype
    geo = env._geo.astype(dt)
    geo[K.GEO_H6] = geo[K.GEO_DT] / 6  # exact in float64 (the env's float32 constant is rounded)
    consts = (env.force.numpy().astype(dt), env.torque.numpy().astype(dt), env.target.numpy().astype(dt),
              env._prm.astype(dt), geo, _weights(env).astype(dt))
    return _HoverStep.apply(state, action, consts)


def _weights(env: FusedQuadrotorHoverEnv) -> np.ndarray:
    """Reward weights, scale, constant and hover action (the ``weights`` layout of ``_adjoint_kernels``)."""
    return np.append(env._weights, np.float32(env.hover_action)).astype(np.float32)


class _EnvStep(torch.autograd.Function):
    """One env step: ``(action, state_link, obs_link) -> (next_state, policy_obs, reward)``.

    The links are the previous differentiable state and actor observation (their values are the env's
    buffers, only their graphs matter); the other step results are left in ``env._step_out``.
    """

    @staticmethod
    def forward(ctx: Any, env: DiffFusedHoverEnv, action: torch.Tensor, state_link: torch.Tensor,
                obs_link: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = env.step_record(action)
        env._step_out = out
        ctx.env, ctx.record = env, out[5]
        ctx.set_materialize_grads(False)
        return torch.from_numpy(env.carried_state()), out[0]["policy"], out[1]

    @staticmethod
    def backward(ctx: Any, g_state: torch.Tensor | None, g_obs: torch.Tensor | None,
                 g_reward: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        gs, ga, gh = ctx.env.step_vjp(ctx.record, g_state, g_obs, g_reward)
        need = ctx.needs_input_grad
        return (None, torch.from_numpy(ga), torch.from_numpy(gs) if need[2] else None,
                torch.from_numpy(gh) if need[3] else None)


Cotangent = torch.Tensor | np.ndarray | None
StepRecord = tuple[np.ndarray, ...]
"""What the VJP of one step needs: pre-step state, raw action, force, torque, target, parameters, frame
constants, reward weights (+ hover action), and the mask of envs that were not reset."""


class DiffFusedHoverEnv(FusedQuadrotorHoverEnv):
    """:class:`FusedQuadrotorHoverEnv` with a differentiable ``step`` (see the module docstring; CPU only).

    Used by the analytic policy gradient (``robot-rl train crazyflie-hover``) instead of the torch env.
    """

    differentiable = True

    def __init__(self, cfg: QuadrotorTaskConfig | None = None, seed: int = 0) -> None:
        self._links: tuple[torch.Tensor, torch.Tensor] | None = None
        super().__init__(cfg, seed)
        d = self.obs_dims["policy"]
        # over vehicles with observation latency, the differentiable state carries the delay line too
        self.carry_dim = 17 + (self._delay.shape[1] - 18 if self._veh.enabled else 0)
        self._blank = (torch.zeros(self.num_envs, self.carry_dim), torch.zeros(self.num_envs, d))
        self._vjp = AV.vjp_rows_v if self._veh.enabled else A.vjp_rows

    def set_reward_weights(self, weights: RewardWeights) -> None:
        """Change the reward weights from the next step on (used by curricula)."""
        super().set_reward_weights(weights)
        self._adj_weights = _weights(self)

    def detach(self) -> None:
        """Cut the autograd graph at the current state (the next step starts a new graph)."""
        self._links = None

    def reset(self, seed: int | None = None) -> Obs:
        """Reset every env (and cut the graph); see :meth:`FusedQuadrotorHoverEnv.reset`."""
        self._links = None
        return super().reset(seed)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the buffers of :meth:`state_dict` (the graph is cut)."""
        self._links = None
        super().load_state_dict(state)

    def step_record(self, action: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor,
                                                         dict[str, Any], StepRecord]:
        """:meth:`FusedQuadrotorHoverEnv.step` (no graph) plus the record :meth:`step_vjp` differentiates."""
        a = action.detach().to("cpu", torch.float32).contiguous()
        if tuple(a.shape) != (self.num_envs, 4):
            raise ValueError(f"action must be [{self.num_envs}, 4], got {list(a.shape)}")
        before = self._before(a.numpy())
        obs, reward, terminated, truncated, info = super().step(a)
        return obs, reward, terminated, truncated, info, (*before, ~info["done_mask"].numpy())

    def step_raw(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, StepRecord]:
        """The step of :meth:`step_record` on numpy arrays, without the torch wrapping (for hand-written BPTT):
        ``action`` float32 ``[N, 4]`` -> ``policy, critic, reward, done, record``."""
        before = self._before(action)
        policy, critic, reward, _, flags, _, _ = self._launch(action)
        return policy, critic, reward, flags[2], (*before, ~flags[2])

    def step_vjp(self, record: StepRecord, g_state: Cotangent, g_obs: Cotangent, g_reward: Cotangent
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cotangents ``(pre-step state [N, 17], action [N, 4], previous actor observation [N, D])`` of the step
        recorded in ``record`` for the cotangents of its next state, actor observation and reward (None: 0)."""
        n, d, f32 = self.num_envs, self.obs_dims["policy"], np.float32
        if g_state is not None and tuple(g_state.shape) != (n, self.carry_dim):
            raise ValueError(f"step_vjp: g_state must be [{n}, {self.carry_dim}], got {list(g_state.shape)}")
        return self._vjp(*record[:-1], _np(g_state, (n, self.carry_dim), f32), _np(g_obs, (n, d), f32),
                         _np(g_reward, (n,), f32), record[-1])

    def position_error(self) -> torch.Tensor:
        """``[N, 3]`` position - target of the current state (noise-free), differentiable through the graph of
        the steps since ``detach()`` (as the torch env's)."""
        pos = self._links[0][:, :3] if self._links is not None else torch.from_numpy(self._state[:, :3].copy())
        return pos - torch.from_numpy(self._target)

    def carried_state(self) -> np.ndarray:
        """The differentiable state ``[N, carry_dim]``: the dynamics state, then (vehicles with latency) the last
        ``L`` clean observations, newest first (see ``_adjoint_vehicles``)."""
        if self.carry_dim == 17:
            return self._state.copy()
        slots = self._delay.shape[1] // 18
        order = [(self._dhead - k) % slots for k in range(slots - 1)]
        ring = self._delay.reshape(self.num_envs, slots, 18)[:, order].reshape(self.num_envs, -1)
        return np.concatenate((self._state, ring), axis=1)

    def _before(self, action: np.ndarray) -> tuple[np.ndarray, ...]:
        """The pre-step part of a :data:`StepRecord`."""
        prm = self._vprm if self._veh.enabled else self._prm
        return (self._state.copy(), action, self._force.copy(), self._torque.copy(), self._target.copy(),
                prm.copy(), self._geo, self._adj_weights.copy())

    def step(self, action: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Advance every env one step; differentiable in ``action`` and the graph of earlier steps."""
        links = self._links if self._links is not None else self._blank
        grad = isinstance(action, torch.Tensor) and torch.is_grad_enabled() and (
            action.requires_grad or self._links is not None)
        if not grad:
            self._links = None
            return super().step(action)
        if tuple(action.shape) != (self.num_envs, 4):
            raise ValueError(f"action must be [{self.num_envs}, 4], got {list(action.shape)}")
        state, policy, reward = _EnvStep.apply(self, action, *links)
        self._links = (state, policy)
        obs, _, terminated, truncated, info, _ = self._step_out
        self._step_out = None
        return {"policy": policy, "critic": obs["critic"]}, reward, terminated, truncated, info


__all__ = ["DiffFusedHoverEnv", "hover_step"]
