"""TD3's critic and actor updates as explicit forward/backward passes (the fused path, RLtools-style).

On the small networks of off-policy RL (64-256 wide, a few hundred rows) the plain path's cost is dispatch:
autograd records ~60 nodes per critic update, and every elementwise op (the fast tanh alone is seven) reads and
writes a whole activation tensor. Here each step is written out by hand and runs as one numba call
(:mod:`robot_rl.algorithms._td3_kernels`): a critic step's gradients (target actor and critics, TD target, every
critic's forward and backward) in one, an actor step's in another, Adam and the Polyak averaging in one each. The
matrix products call torch's own BLAS from inside the kernels (:mod:`robot_rl.models._blas`; a numba GEMM
reaches ~13 GFLOP/s here against MKL's ~65-150, benchmarks/README.md), the gradients are written into the
parameters' ``.grad`` and Adam updates the optimizer's own state tensors in place (checkpoints and resumes see
them as they are). No autograd, no torch op per layer.

Same maths as :meth:`TD3.update`'s plain path, generic over widths, depth, the critic count and the activations
of :data:`~robot_rl.models.mlp_act.ACTIVATION_CODES`; the random draws (target-policy noise) come from the
algorithm's torch generator in the plain path's order, so the two agree to float rounding (tested to 1e-6 over
20 updates) and a run stays seed-deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from robot_rl import distributed
from robot_rl.algorithms import _td3_kernels as K
from robot_rl.algorithms._explicit_common import NumbaAdam as _NumbaAdam
from robot_rl.algorithms._explicit_common import (
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
from robot_rl.models.mlp_act import ACTIVATION_CODES
from robot_rl.storage.replay import FIELDS

if TYPE_CHECKING:
    from robot_rl.algorithms.td3 import TD3
    from robot_rl.storage.replay import ReplayBuffer


def applies(algo: TD3) -> bool:
    """Whether the explicit update runs this TD3 (CPU float32 weights, a supported activation, fused Adam(W),
    torch's BLAS reachable from numba)."""
    w = algo.critic.weights[0]
    return (_blas.AVAILABLE and algo.cfg.activation in ACTIVATION_CODES and w.device.type == "cpu"
            and w.dtype == torch.float32 and bool(algo.critic_opt.defaults.get("fused"))
            and algo.actor.output == "tanh")


class ExplicitTD3:
    """The explicit update bound to one :class:`TD3` (reads its networks, optimizers, generator and config)."""

    def __init__(self, algo: TD3) -> None:
        if not applies(algo) or any(g["amsgrad"] or g["maximize"] for o in algo.optimizers().values()
                                    for g in o.param_groups):
            raise ValueError("the explicit TD3 update needs CPU float32 networks, fast_tanh/tanh/relu and fused Adam")
        self.algo = algo
        self.threads = UpdateThreads(algo.cfg.update_threads, "td3.update_threads")
        self._gather = ReplayGather()
        self.code = ACTIVATION_CODES[algo.cfg.activation]
        a = algo
        self.critic_params, self.actor_params = optimizer_params(a.critic_opt), optimizer_params(a.actor_opt)
        # gradients are written into these and stay the parameters' .grad
        self.grads = {p: torch.zeros_like(p) for p in [*self.critic_params, *self.actor_params]}
        for p, g in self.grads.items():
            p.grad = g
        self.critic_adam, self.actor_adam = _NumbaAdam(a.critic_opt), _NumbaAdam(a.actor_opt)
        self.scratch = _blas.scratch()
        self.loss = np.zeros(a.critic.n, np.float64)
        # every tensor the views read, listed once (iterating the modules' parameters costs ~30 us per update)
        self._tensors = [*a.actor.parameters(), *a.critic.parameters(), *a.actor_target.parameters(),
                         *a.critic_target.parameters(), *self.grads.values()]
        self._ptrs: tuple[int, ...] = ()
        self._views()

    def _views(self) -> None:
        """numpy views of every network, gradient and target (re-taken when a tensor's storage moved; the parameter
        objects themselves are listed once: replacing one, not its data, is not seen)."""
        a = self.algo
        tensors = self._tensors
        ptrs = tuple(t.data_ptr() for t in tensors)
        if ptrs == self._ptrs:
            return
        if not all(t.is_contiguous() for t in tensors):
            raise ValueError("the explicit TD3 update needs contiguous parameters")
        self.critic_adam.state = self.actor_adam.state = None  # their views of parameters and gradients, too

        self.actor_np, self.actor_target_np = mlp_views(*mlp_params(a.actor)), mlp_views(*mlp_params(a.actor_target))
        self.critic_np = ensemble_views(a.critic.weights, a.critic.biases)
        self.critic_target_np = ensemble_views(a.critic_target.weights, a.critic_target.biases)
        g = self.grads
        self.critic_grads_np = ensemble_views([g[w] for w in a.critic.weights], [g[b] for b in a.critic.biases])
        self.actor_grads_np = mlp_views(*([g[p] for p in ps] for ps in mlp_params(a.actor)))
        self.polyak_actor = (tuple(flat(p) for p in a.actor_target.parameters()),
                             tuple(flat(p) for p in a.actor.parameters()))
        self.polyak_critic = (tuple(flat(p) for p in a.critic_target.parameters()),
                              tuple(flat(p) for p in a.critic.parameters()))
        self._ptrs = ptrs

    def _average(self, params: list[torch.Tensor]) -> None:
        """A distributed run's gradient mean over the ranks, back in the buffers the kernels read."""
        if distributed.active():
            average_into(self.grads, params)

    _critic_input = staticmethod(critic_input)

    # ------------------------------------------------------------------ updates
    def critic_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One critic step (every critic on its own batch with ``independent_batches``); returns the loss."""
        c, algo = self.algo.cfg, self.algo
        nxp = batch["next_policy_obs"]
        eps = torch.randn((nxp.shape[0], algo.action_dim), generator=algo.gen)  # the plain path's draw
        x = self._critic_input(batch["critic_obs"], batch["action"])
        K.critic_grads(arr(nxp), arr(batch["next_critic_obs"]), batch["reward"].numpy(),
                       batch["terminated"].numpy(), arr(x), eps.numpy(), *self.actor_target_np,
                       *self.critic_target_np, *self.critic_np, *self.critic_grads_np, self.code,
                       np.float32(c.target_noise), np.float32(c.target_noise_clip), np.float32(c.gamma),
                       c.independent_batches, self.loss, self.scratch)
        self._average(self.critic_params)
        self.critic_adam()
        return torch.tensor(float(self.loss.sum()), dtype=torch.float32)

    def actor_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One actor step on ``-mean Q_1(s, pi(s))`` (the first critic) and the actor target's Polyak step."""
        mean_q = K.actor_grads(arr(batch["policy_obs"]), arr(batch["critic_obs"]), *self.actor_np,
                               *self.critic_np, *self.actor_grads_np, self.code, self.scratch)
        self._average(self.actor_params)
        self.actor_adam()
        K.lerp_(*self.polyak_actor, self.algo.cfg.tau)
        return torch.tensor(-mean_q, dtype=torch.float32)

    def update(self, batch: dict[str, torch.Tensor], train_actor: bool,
               actor_batch: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        """:meth:`TD3.update` (same schedule and return value)."""
        algo, c = self.algo, self.algo.cfg
        self._views()
        out = {"critic_loss": self.critic_step(batch)}
        algo.num_updates += 1
        if train_actor and algo.num_updates % c.policy_delay == 0:
            out["actor_loss"] = self.actor_step(actor_batch if actor_batch is not None else batch)
        if algo.num_updates % c.critic_target_delay == 0:
            K.lerp_(*self.polyak_critic, c.tau)
        return out

    def update_from_replay(self, buffer: ReplayBuffer, batch_size: int, train_actor: bool) -> dict[str, float] | None:
        """``buffer.sample`` (the critic rows, and the actor's with ``independent_batches`` when it is due) followed
        by :meth:`update`, in one numba call with the same random draws (torch's, in that order) and the same
        values; the update reads only the columns it needs, gathered from the replay table. Returns the losses as
        floats, or None (nothing drawn, nothing changed) where it does not apply: a buffer that is not a CPU table
        in ``FIELDS`` order, a distributed run, a step whose optimizer has no state yet (its first step goes through
        torch, which creates it)."""
        algo, c = self.algo, self.algo.cfg
        if buffer._np is None or buffer.fields != list(FIELDS) or distributed.active():
            return None
        self._views()
        actor_step = algo.actor_due(train_actor)
        critic_adam, actor_adam = self.critic_adam.kernel_args(), self.actor_adam.kernel_args()
        if critic_adam is None or (actor_step and actor_adam is None):
            return None
        actor_adam = actor_adam or critic_adam  # (not read without an actor step)
        gen, dev = algo.gen, buffer.device
        rows = algo.batch_rows(batch_size)
        idx_c = torch.randint(0, buffer.size, (rows,), generator=gen, device=dev)
        idx_a = (torch.randint(0, buffer.size, (batch_size,), generator=gen, device=dev)
                 if c.independent_batches and actor_step else self._no_rows)
        eps = torch.randn((rows, algo.action_dim), generator=gen)
        algo.num_updates += 1
        flags = np.array([actor_step, algo.num_updates % c.critic_target_delay == 0, self.code,
                          c.independent_batches], np.int64)
        consts = np.array([c.target_noise, c.target_noise_clip, c.gamma, c.tau], np.float64)
        mean_q = K.update_from_replay(
            buffer._np, idx_c.numpy(), idx_a.numpy(), eps.numpy(),
            *self.gather_args(buffer, max(rows, batch_size)),
            (self.actor_np, self.actor_target_np, self.critic_np, self.critic_target_np),
            (self.critic_grads_np, self.actor_grads_np), (critic_adam[0], actor_adam[0]),
            (critic_adam[1], actor_adam[1]), (self.polyak_actor, self.polyak_critic), flags, consts, self.loss,
            self.scratch)
        out = {"critic_loss": float(np.float32(self.loss.sum()))}
        if actor_step:
            out["actor_loss"] = float(np.float32(-mean_q))
        return out

    _no_rows = torch.zeros(0, dtype=torch.int64)

    def gather_args(self, buffer: ReplayBuffer, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The replay kernels' column map of ``buffer``'s table and their row buffers for up to ``rows`` rows."""
        return self._gather(buffer, rows)


__all__ = ["ExplicitTD3", "applies"]
