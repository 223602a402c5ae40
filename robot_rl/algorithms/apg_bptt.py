"""Hand-written back-propagation through time for APG on the differentiable fused hover env (CPU).

:class:`FusedBPTT` computes what ``APGRunner`` otherwise gets from torch autograd: roll every env ``horizon``
steps with the actor, then the gradient of the mean reward with respect to the actor's parameters, through
the env steps (``DiffFusedHoverEnv.step_vjp``: dynamics, observation, action history, reward, resets) and the
actor (observation -> action), including the paths from an action to later observations (state and action
history). Autograd records about 30 nodes per step; here a step costs three ``addmm`` and two elementwise
kernels forward, three ``mm`` and two kernels backward, one fused env kernel each way, and the weight
gradients are two large matrix products per layer over the whole window. Same math as autograd, other float
rounding: ``tests/robot_rl/test_apg_bptt.py`` checks it against autograd through this env and the torch env.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from robot_rl.algorithms import _apg_kernels as KA
from robot_rl.models.mlp import MLP
from sim.quadrotor.diff_fused import DiffFusedHoverEnv


def supports(actor: torch.nn.Module, env: object) -> bool:
    """Whether :class:`FusedBPTT` handles this actor and env (else use autograd)."""
    return (isinstance(env, DiffFusedHoverEnv) and isinstance(actor, MLP) and actor.output == "tanh"
            and actor.activation_name == "fast_tanh" and len(actor.linears) >= 2
            and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in actor.parameters()))


class FusedBPTT:
    """Rollout + gradient of a fast-tanh MLP actor (tanh output) on a :class:`DiffFusedHoverEnv`.

    Buffers (inputs, pre- and post-activations, cotangents of every step of a window) are allocated once.
    """

    def __init__(self, actor: MLP, env: DiffFusedHoverEnv, horizon: int, barrier: float = 0.0,
                 barrier_start: float = 0.4) -> None:
        if not supports(actor, env):
            raise ValueError("FusedBPTT needs a fast-tanh MLP actor with tanh output on a DiffFusedHoverEnv (CPU)")
        limit = env.cfg.position_limit
        check_barrier(barrier, barrier_start, limit)
        self.actor, self.env, self.horizon = actor, env, horizon
        self.barrier, self.barrier_start, self.limit = barrier, barrier_start, limit
        n, t = env.num_envs, horizon
        self.rel_after = np.empty((t, n, 3), np.float32)  # position - target after each step
        self.widths = [layer.weight.shape[0] for layer in actor.linears]
        self.xs = torch.empty(t, n, env.obs_dims["policy"])
        self.pre = [torch.empty(t, n, w) for w in self.widths]  # pre-activations (last: before tanh)
        self.post = [torch.empty(t, n, w) for w in self.widths]  # activations (last: the actions)
        self.g_pre = [torch.empty(t, n, w) for w in self.widths]  # cotangents of the pre-activations
        self.rewards = np.empty((t, n), np.float32)
        self.dones = np.empty((t, n), np.bool_)
        self._g_reward = np.full(n, 1.0 / (n * t), np.float32)
        self._views = [b.unbind(0) for b in (self.xs, *self.pre, *self.post, *self.g_pre)]
        self._np = [[v.numpy().reshape(-1) for v in b] for b in self._views[1:]]
        _load_kernels(env)


    @torch.no_grad()
    def rollout_gradient(self, obs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], dict[str, torch.Tensor]]:
        """Roll the env ``horizon`` steps from the actor observation ``obs`` (a constant: the window starts here)
        and differentiate the mean reward (minus the bound barrier of ``barrier`` > 0 on every state after a step
        whose env was not reset: see ``APGConfig.bound_barrier``).

        Returns ``(mean_reward, grads, last_obs)``: ``grads`` = d(mean reward)/d(parameter) in the order of
        ``actor.parameters()``; ``last_obs`` the observation groups after the last step. The window's rewards
        and done flags are left in ``rewards`` and ``dones`` ``[horizon, N]``.
        """
        env, lin, layers, horizon = self.env, list(self.actor.linears), len(self.widths), self.horizon
        xs, pre, post, g_pre = self._views[0], self._views[1:1 + layers], self._views[1 + layers:1 + 2 * layers], \
            self._views[1 + 2 * layers:]
        pre_np, post_np, g_np = self._np[:layers], self._np[layers:2 * layers], self._np[2 * layers:]
        weights = [layer.weight for layer in lin]
        weights_t = [w.t() for w in weights]
        records = []
        xs[0].copy_(obs)
        for t in range(horizon):
            h = xs[t]
            for i in range(layers - 1):
                torch.addmm(lin[i].bias, h, weights_t[i], out=pre[i][t])
                KA.fast_tanh(pre_np[i][t], post_np[i][t])
                h = post[i][t]
            torch.tanh(torch.addmm(lin[-1].bias, h, weights_t[-1], out=pre[-1][t]), out=post[-1][t])
            policy, critic, reward, done, rec = env.step_raw(post[-1][t].numpy())
            records.append(rec)
            if self.barrier:  # critic[:, :3]: noise-free position - target (of a reset env: its new episode's)
                self.rel_after[t] = critic[:, :3]
            self.rewards[t], self.dones[t] = reward, done
            if t + 1 < horizon:
                xs[t + 1].copy_(torch.from_numpy(policy))
        # backward: cotangents of the next state and actor observation flow from step t + 1 to step t
        g_state = g_obs = None
        penalty = 0.0
        for t in range(horizon - 1, -1, -1):
            if self.barrier:  # the barrier on the state after step t, where that state lives on (no reset)
                pen, g_rel = bound_barrier(self.rel_after[t], self.barrier_start, self.limit)
                live = ~self.dones[t]
                penalty += float((self.barrier * pen * live).sum())
                gb = np.zeros((env.num_envs, env.carry_dim), np.float32)
                gb[:, :3] = (-self.barrier * self._g_reward[:, None]) * g_rel * live[:, None]
                g_state = gb if g_state is None else g_state + gb
            gs, ga, g_prev = env.step_vjp(records[t], g_state, g_obs, self._g_reward)
            KA.tanh_out_grad(post_np[-1][t], ga.reshape(-1), g_np[-1][t])
            for i in range(layers - 2, -1, -1):
                gh = g_pre[i + 1][t].mm(weights[i + 1])
                KA.fast_tanh_grad(pre_np[i][t], gh.numpy().reshape(-1), g_np[i][t])
            if t > 0:  # the window's first observation is a constant
                g_obs = torch.from_numpy(g_prev).addmm_(g_pre[0][t], weights[0])
                g_state = gs
        grads: list[torch.Tensor] = []
        inputs = [self.xs] + self.post[:-1]
        for i in range(layers):
            gi = self.g_pre[i].reshape(-1, self.widths[i])
            grads += [gi.t().mm(inputs[i].reshape(-1, inputs[i].shape[-1])), gi.sum(0)]
        mean_reward = torch.from_numpy(self.rewards).mean(1).sum() / horizon - penalty / (env.num_envs * horizon)
        return mean_reward, grads, {"policy": torch.from_numpy(policy), "critic": torch.from_numpy(critic)}


def check_barrier(weight: float, start: float, limit: float) -> None:
    """Refuse a bound barrier of negative ``weight`` or a ``start`` outside ``[0, limit)`` (``APGConfig``)."""
    if weight < 0 or not 0 <= start < limit:
        raise ValueError(f"bound barrier: need weight >= 0 and 0 <= start < position_limit ({limit}), got "
                         f"{weight} and {start}")


def bound_barrier(rel: np.ndarray, start: float, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Penalty ``sum_i (max(|rel_i| - start, 0) / (limit - start))^2`` per row of ``rel`` ``[N, 3]`` (0 inside
    ``start``, 1 per axis at the bound; continuous gradient) and its gradient ``[N, 3]``."""
    width = limit - start
    h = np.maximum(np.abs(rel) - start, 0.0) / width
    return (h * h).sum(-1), (2.0 / width) * h * np.sign(rel)


def _load_kernels(env: DiffFusedHoverEnv) -> None:
    """Compile (first use, ~30 s) or load from numba's cache (~0.1 s) every kernel of a window, on a one-env
    scratch copy of the task, so that this one-off cost falls in set-up rather than in the first window."""
    scratch = DiffFusedHoverEnv(replace(env.cfg, num_envs=1), seed=0)
    *_, record = scratch.step_raw(np.zeros((1, 4), np.float32))
    scratch.step_vjp(record, np.zeros((1, scratch.carry_dim), np.float32), None, np.zeros(1, np.float32))
    z = np.zeros(4, np.float32)
    KA.fast_tanh(z, z)
    KA.fast_tanh_grad(z, z, z)
    KA.tanh_out_grad(z, z, z)
