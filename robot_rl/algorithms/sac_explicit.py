"""SAC's critic, actor and temperature updates as explicit forward/backward passes (``SACConfig.explicit``).

The SAC counterpart of :mod:`robot_rl.algorithms.td3_explicit`: on 64-256 wide networks the autograd path's
cost is per-op dispatch (the squashed Gaussian sample alone is ~20 ops, twice per update), so each step is written
out by hand and runs as one numba call (:mod:`robot_rl.algorithms._sac_kernels`, built on the TD3 kernels'
layers and torch's own GEMM): the critic step's gradients in one, the actor step's (with the temperature's
gradient) in another, each optimizer's Adam in one and the critic targets' Polyak step in one. Gradients are
written into the parameters' ``.grad`` and Adam updates the optimizers' own state in place, so checkpoints and
resumes see them as they are.

Same maths as :meth:`SAC.update`'s plain path (the random draws from the algorithm's torch generator in its
order and shapes), so the two agree to float rounding (tested to 1e-6 over 20 updates) and a run stays
seed-deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from robot_rl import distributed
from robot_rl.algorithms import _sac_kernels as SK
from robot_rl.algorithms import _td3_kernels as K
from robot_rl.algorithms._explicit_common import (
    NumbaAdam,
    ReplayGather,
    UpdateThreads,
    arr,
    average_into,
    critic_input,
    ensemble_views,
    flat,
    mlp_params,
    mlp_views,
)
from robot_rl.distributed import optimizer_params
from robot_rl.models import _blas
from robot_rl.models.mlp_act import ACTIVATION_CODES, LOG_STD_MAX, LOG_STD_MIN
from robot_rl.storage.replay import FIELDS

if TYPE_CHECKING:
    from robot_rl.algorithms.sac import SAC
    from robot_rl.storage.replay import ReplayBuffer


def unsupported(algo: SAC) -> str | None:
    """Why the explicit update cannot run this SAC (None: it can). It needs CPU float32 networks, an activation
    of :data:`~robot_rl.models.mlp_act.ACTIVATION_CODES`, fused Adam(W) without amsgrad/maximize and torch's
    BLAS reachable from numba."""
    w = algo.critic.weights[0]
    if not _blas.AVAILABLE:
        return "torch's sgemm_ is not reachable from numba"
    if algo.cfg.activation not in ACTIVATION_CODES:
        return f"activation {algo.cfg.activation!r} is not one of {sorted(ACTIVATION_CODES)}"
    if w.device.type != "cpu" or w.dtype != torch.float32:
        return "the networks are not CPU float32"
    opts = algo.optimizers().values()
    if not all(o.defaults.get("fused") for o in opts):
        return "the optimizers are not fused Adam"
    if any(g["amsgrad"] or g["maximize"] for o in opts for g in o.param_groups):
        return "amsgrad/maximize Adam"
    return None


class ExplicitSAC:
    """The explicit update bound to one :class:`SAC` (reads its networks, optimizers, generator and config)."""

    def __init__(self, algo: SAC) -> None:
        why = unsupported(algo)
        if why is not None:
            raise ValueError(f"sac.explicit: {why}")
        self._gather = ReplayGather()
        self.threads = UpdateThreads(algo.cfg.update_threads, "sac.update_threads")
        self.algo = algo
        self.code = ACTIVATION_CODES[algo.cfg.activation]
        self.log_std = (np.float32(LOG_STD_MIN), np.float32(LOG_STD_MAX))
        self.critic_params, self.actor_params = optimizer_params(algo.critic_opt), optimizer_params(algo.actor_opt)
        # gradients are written into these and stay the parameters' .grad
        self.grads = {p: torch.zeros_like(p) for p in [*self.critic_params, *self.actor_params, algo.log_alpha]}
        for p, g in self.grads.items():
            p.grad = g
        self.critic_adam, self.actor_adam = NumbaAdam(algo.critic_opt), NumbaAdam(algo.actor_opt)
        self.alpha_adam = NumbaAdam(algo.alpha_opt)
        self.scratch = _blas.scratch()
        self.loss = np.zeros(algo.critic.n, np.float64)
        # every tensor the views read, listed once (iterating the modules' parameters costs ~30 us per update)
        self._tensors = [*algo.actor.parameters(), *algo.critic.parameters(), *algo.critic_target.parameters(),
                         algo.log_alpha, *self.grads.values()]
        self._ptrs: tuple[int, ...] = ()
        self._views()

    def _views(self) -> None:
        """numpy views of every network, gradient and target (re-taken when a tensor's storage moved; the parameter
        objects themselves are listed once: replacing one, not its data, is not seen)."""
        ptrs = tuple(t.data_ptr() for t in self._tensors)
        if ptrs == self._ptrs:
            return
        if not all(t.is_contiguous() for t in self._tensors):
            raise ValueError("sac.explicit needs contiguous parameters")
        for adam in (self.critic_adam, self.actor_adam, self.alpha_adam):
            adam.state = None  # their views of parameters and gradients, too
        a, g = self.algo, self.grads
        actor = mlp_params(a.actor.net)
        self.actor_np = mlp_views(*actor)
        self.actor_grads_np = mlp_views(*([g[p] for p in ps] for ps in actor))
        self.critic_np = ensemble_views(a.critic.weights, a.critic.biases)
        self.critic_target_np = ensemble_views(a.critic_target.weights, a.critic_target.biases)
        self.critic_grads_np = ensemble_views([g[w] for w in a.critic.weights], [g[b] for b in a.critic.biases])
        self.polyak_critic = (tuple(flat(p) for p in a.critic_target.parameters()),
                              tuple(flat(p) for p in a.critic.parameters()))
        target_of = dict(zip(a.critic.parameters(), self.polyak_critic[0], strict=True))
        self._critic_targets = [tuple(target_of[p] for p in g["params"]) for g in a.critic_opt.param_groups]
        self.log_alpha_np, self.alpha_grad_np = flat(a.log_alpha), g[a.log_alpha].numpy().reshape(1)
        self._ptrs = ptrs

    def _step(self, adam: NumbaAdam, params: list[torch.Tensor]) -> None:
        if distributed.active():  # the gradient mean over the ranks, back in the buffers the kernels read
            average_into(self.grads, params)
        adam()

    def _alpha(self) -> np.float32:
        """The temperature ``exp(log_alpha)``: numpy's exp, or with ``sac.fused_collect`` numba's (the fused
        cycles compute it inside their kernel: the step-by-step updates must round it the same way)."""
        if self.algo.cfg.fused_collect:
            return SK.temperature(self.log_alpha_np)
        return np.exp(self.log_alpha_np[0])

    def _eps(self, rows: int) -> torch.Tensor:
        """The plain path's draw (``torch.randn(mean.shape, generator=gen)``)."""
        return torch.randn((rows, self.algo.actor.action_dim), generator=self.algo.gen)

    def update(self, batch: dict[str, torch.Tensor], train_actor: bool) -> dict[str, torch.Tensor]:
        """:meth:`SAC.update` (same schedule, random draws and return value)."""
        algo, c = self.algo, self.algo.cfg
        self._views()
        lo, hi = self.log_std
        alpha = self._alpha()
        nxp = batch["next_policy_obs"]
        x = critic_input(batch["critic_obs"], batch["action"])
        SK.critic_grads(arr(nxp), arr(batch["next_critic_obs"]), batch["reward"].numpy(),
                        batch["terminated"].numpy(), arr(x), self._eps(nxp.shape[0]).numpy(), *self.actor_np,
                        *self.critic_target_np, *self.critic_np, *self.critic_grads_np, self.code, alpha,
                        np.float32(c.gamma), lo, hi, c.squash_correction, self.loss)
        self._step(self.critic_adam, self.critic_params)
        algo.num_updates += 1
        out = {"critic_loss": torch.tensor(float(self.loss.sum()), dtype=torch.float32),
               "alpha": torch.tensor(alpha)}
        if train_actor and algo.num_updates % c.policy_delay == 0:
            pol = batch["policy_obs"]
            actor_loss, entropy = SK.actor_grads(
                arr(pol), arr(batch["critic_obs"]), self._eps(pol.shape[0]).numpy(), *self.actor_np,
                *self.critic_np, *self.actor_grads_np, self.code, alpha, lo, hi, c.squash_correction,
                np.float32(algo.target_entropy), self.alpha_grad_np, self.scratch)
            self._step(self.actor_adam, self.actor_params)
            self._step(self.alpha_adam, [algo.log_alpha])
            out["actor_loss"] = torch.tensor(actor_loss, dtype=torch.float32)
            out["entropy"] = torch.tensor(entropy, dtype=torch.float32)
        K.lerp_(*self.polyak_critic, c.tau)
        return out

    def adam_args(self) -> list[tuple[tuple, np.ndarray] | None]:
        """The critic's, actor's and temperature's :meth:`NumbaAdam.kernel_args` (None: no state yet) for
        :func:`~robot_rl.algorithms._sac_kernels.update_from_replay`, each critic group with its targets' flat views
        appended (the kernel takes the Polyak step inside the critic's Adam)."""
        critic = self.critic_adam.kernel_args()
        if critic is not None:
            critic = (tuple((*g, t) for g, t in zip(critic[0], self._critic_targets, strict=True)), critic[1])
        return [critic, self.actor_adam.kernel_args(), self.alpha_adam.kernel_args()]

    def update_from_replay(self, buffer: ReplayBuffer, batch_size: int, train_actor: bool) -> dict[str, float] | None:
        """``buffer.sample(batch_size, gen)`` followed by :meth:`update`, in one numba call with the same random
        draws (torch's, in that order) and the same values; the update reads only the columns it needs, gathered
        from the replay table. Returns the losses as floats, or None (nothing drawn, nothing changed) where it does
        not apply: a buffer that is not a CPU table in ``FIELDS`` order, a distributed run, a step whose optimizer
        has no state yet (its first step goes through torch, which creates it)."""
        algo, c = self.algo, self.algo.cfg
        if buffer._np is None or buffer.fields != list(FIELDS) or distributed.active():
            return None
        self._views()
        actor_step = train_actor and (algo.num_updates + 1) % c.policy_delay == 0
        adams = self.adam_args()
        if adams[0] is None or (actor_step and None in adams):
            return None
        adams = [a or adams[0] for a in adams]  # (not read without an actor step)
        idx = torch.randint(0, buffer.size, (batch_size,), generator=algo.gen, device=buffer.device)
        eps_c = self._eps(batch_size)
        eps_a = self._eps(batch_size) if actor_step else self._eps(0)
        alpha = self._alpha()
        algo.num_updates += 1
        lo, hi = self.log_std
        flags = np.array([actor_step, self.code, c.squash_correction], np.int64)
        consts = np.array([alpha, c.gamma, c.tau, lo, hi, algo.target_entropy], np.float64)
        actor_loss, entropy = SK.update_from_replay(
            buffer._np, idx.numpy(), eps_c.numpy(), eps_a.numpy(), *self._gather(buffer, batch_size),
            (self.actor_np, self.critic_np, self.critic_target_np), (self.critic_grads_np, self.actor_grads_np),
            tuple(a[0] for a in adams), tuple(a[1] for a in adams), flags, consts, self.loss,
            self.alpha_grad_np, self.scratch)
        out = {"critic_loss": float(np.float32(self.loss.sum())), "alpha": float(alpha)}
        if actor_step:
            out["actor_loss"], out["entropy"] = float(np.float32(actor_loss)), float(np.float32(entropy))
        return out


__all__ = ["ExplicitSAC", "unsupported"]
