"""TD3's critic and actor updates as explicit forward/backward passes (the fused path, RLtools-style).

On the small networks of off-policy RL (64-256 wide, a few hundred rows) the plain path's cost is dispatch:
autograd records ~60 nodes per critic update, and every elementwise op (the fast tanh alone is seven) reads and
writes a whole activation tensor. Here each update is written out by hand: the matrix products stay torch GEMMs
(MKL; a numba GEMM reaches ~13 GFLOP/s here against MKL's ~65, measured in benchmarks/README.md), everything
elementwise is one numba pass per layer (:mod:`robot_rl.algorithms._td3_kernels`), the gradients are written
into ``.grad`` and the optimizers take torch's fused Adam kernel directly (``fused_adam_step``). No autograd.

Same maths as :meth:`TD3.update`'s plain path, generic over widths, depth, the critic count and the activations
of :data:`~robot_rl.models.mlp_act.ACTIVATION_CODES`; the random draws (target-policy noise) come from the
algorithm's torch generator in the plain path's order, so the two agree to float rounding (tested to 1e-6 over
20 updates) and a run stays seed-deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from robot_rl.algorithms import _td3_kernels as K
from robot_rl.algorithms.common import fused_adam_step
from robot_rl.distributed import average_gradients, optimizer_params
from robot_rl.models.mlp_act import ACTIVATION_CODES

if TYPE_CHECKING:
    from robot_rl.algorithms.td3 import TD3


def _np3(t: torch.Tensor) -> np.ndarray:
    """A ``[n, rows, width]`` numpy view of a contiguous CPU float32 tensor (kernels write through it)."""
    a = t.numpy()
    return a if a.ndim == 3 else a.reshape(1, a.shape[0], -1)


def _bias(b: torch.Tensor) -> np.ndarray:
    """``[n, width]`` numpy view of an ensemble bias ``[n, 1, width]`` or a layer bias ``[width]``."""
    a = b.detach().numpy()
    return a.reshape(a.shape[0], -1) if a.ndim == 3 else a.reshape(1, -1)


def applies(algo: TD3) -> bool:
    """Whether the explicit update runs this TD3 (CPU float32 weights, a supported activation, fused Adam)."""
    w = algo.critic.weights[0]
    return (algo.cfg.activation in ACTIVATION_CODES and w.device.type == "cpu" and w.dtype == torch.float32
            and bool(algo.critic_opt.defaults.get("fused")) and algo.actor.output == "tanh")


class _FusedAdam:
    """``fused_adam_step(opt)`` with its per-group argument lists kept while the optimizer state object stays
    the same (``load_state_dict`` replaces it): the same kernel calls, without rebuilding lists every step."""

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        self.opt = opt
        self.state: object = None
        self.calls: list[tuple] = []

    def __call__(self) -> None:
        opt = self.opt
        if opt.state is not self.state:
            params = optimizer_params(opt)
            if any(p not in opt.state for p in params):  # the first step builds the state
                fused_adam_step(opt)
                return
            self.calls = []
            for g in opt.param_groups:
                st = [opt.state[p] for p in g["params"]]
                kernel = torch._fused_adamw_ if isinstance(opt, torch.optim.AdamW) else torch._fused_adam_
                self.calls.append((kernel, g["params"], [x["exp_avg"] for x in st], [x["exp_avg_sq"] for x in st],
                                   [x["step"] for x in st], g))
            self.state = opt.state
        for kernel, params, m, v, steps, g in self.calls:
            torch._foreach_add_(steps, 1)
            beta1, beta2 = g["betas"]
            kernel(params, [p.grad for p in params], m, v, [], steps, amsgrad=False, lr=g["lr"], beta1=beta1,
                   beta2=beta2, weight_decay=g["weight_decay"], eps=g["eps"], maximize=False)


class ExplicitTD3:
    """The explicit update bound to one :class:`TD3` (reads its networks, optimizers, generator and config)."""

    def __init__(self, algo: TD3) -> None:
        if not applies(algo) or any(g["amsgrad"] or g["maximize"] for o in algo.optimizers().values()
                                    for g in o.param_groups):
            raise ValueError("the explicit TD3 update needs CPU float32 networks, fast_tanh/tanh/relu and fused Adam")
        self.algo = algo
        self.code = ACTIVATION_CODES[algo.cfg.activation]
        a = algo
        self.actor_w = [layer.weight for layer in a.actor.linears]
        self.actor_b = [layer.bias for layer in a.actor.linears]
        self.target_w = [layer.weight for layer in a.actor_target.linears]
        self.target_b = [layer.bias for layer in a.actor_target.linears]
        self.critic_w, self.critic_b = list(a.critic.weights), list(a.critic.biases)
        self.ctarget_w, self.ctarget_b = list(a.critic_target.weights), list(a.critic_target.biases)
        self.critic_params, self.actor_params = optimizer_params(a.critic_opt), optimizer_params(a.actor_opt)
        self.critic_adam, self.actor_adam = _FusedAdam(a.critic_opt), _FusedAdam(a.actor_opt)
        # gradients are written into these (out=) and stay the parameters' .grad
        self.grads = {p: torch.zeros_like(p) for p in [*self.critic_params, *self.actor_params]}
        self.polyak_actor = (list(a.actor_target.parameters()), list(a.actor.parameters()))
        self.polyak_critic = (list(a.critic_target.parameters()), list(a.critic.parameters()))

    def _grad(self, p: torch.Tensor) -> torch.Tensor:
        g = self.grads[p]
        if p.grad is not g:  # (a distributed run's gradient averaging points .grad elsewhere each step)
            p.grad = g
        return g

    # ------------------------------------------------------------------ forward passes
    def _target_q(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``r + gamma (1 - terminated) min_i Q_i'(s', clip(pi'(s') + clip(eps)))`` ``[R]``."""
        c = self.algo.cfg
        h = batch["next_policy_obs"]
        last = len(self.target_w) - 1
        for i, (w, b) in enumerate(zip(self.target_w, self.target_b, strict=True)):
            h = torch.mm(h, w.t())
            if i < last:
                K.bias_act_(_np3(h), _bias(b), self.code)
        eps = torch.randn(h.shape, generator=self.algo.gen)  # the plain path's draw
        K.target_action_(h.numpy(), self.target_b[-1].detach().numpy(), eps.numpy(), np.float32(c.target_noise),
                         np.float32(c.target_noise_clip))
        x = torch.cat((batch["next_critic_obs"], h), dim=-1)
        n = self.ctarget_w[0].shape[0]
        h = x.unsqueeze(0).expand(n, -1, -1)
        last = len(self.ctarget_w) - 1
        for i, (w, b) in enumerate(zip(self.ctarget_w, self.ctarget_b, strict=True)):
            h = torch.bmm(h, w)
            K.bias_act_(_np3(h), _bias(b), self.code if i < last else -1)
        y = torch.empty(x.shape[0])
        K.td_target(h.numpy().reshape(n, -1), batch["reward"].contiguous().numpy(),
                    batch["terminated"].contiguous().numpy(), np.float32(c.gamma), y.numpy())
        return y

    def _forward(self, h: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor],
                 batched: bool) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Last layer's output without its bias, every layer's input and every hidden layer's slope."""
        posts, slopes = [h], []
        last = len(weights) - 1
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            h = torch.bmm(h, w) if batched else torch.mm(h, w.t())
            if i < last:
                s = torch.empty_like(h)
                K.bias_act_slope_(_np3(h), _bias(b), self.code, _np3(s))
                posts.append(h)
                slopes.append(s)
        return h, posts, slopes

    @staticmethod
    def _critic_input(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``cat((obs, action), -1)``; a view when the two are neighbouring columns of one table (the replay's
        sampled rows), a copy otherwise."""
        if (obs.dim() == 2 and obs.stride() == action.stride() and obs.stride(1) == 1
                and obs.shape[0] == action.shape[0] and obs.shape[1] + action.shape[1] <= obs.stride(0)
                and obs.untyped_storage().data_ptr() == action.untyped_storage().data_ptr()
                and action.data_ptr() == obs.data_ptr() + obs.shape[1] * obs.element_size()):
            return obs.as_strided((obs.shape[0], obs.shape[1] + action.shape[1]), obs.stride())
        return torch.cat((obs, action), dim=-1)

    # ------------------------------------------------------------------ updates
    def critic_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One critic step (every critic on its own batch with ``independent_batches``); returns the loss."""
        c = self.algo.cfg
        y = self._target_q(batch)
        x = self._critic_input(batch["critic_obs"], batch["action"])
        n = self.critic_w[0].shape[0]
        if c.independent_batches:
            x, y = x.reshape(n, -1, x.shape[-1]), y.reshape(n, -1)
        else:
            x, y = x.unsqueeze(0).expand(n, -1, -1), y.unsqueeze(0).expand(n, -1).contiguous()
        q, posts, slopes = self._forward(x, self.critic_w, self.critic_b, batched=True)
        g = torch.empty_like(q)
        loss = np.empty(n, np.float64)
        K.mse_grad(q.numpy().reshape(n, -1), _bias(self.critic_b[-1]), y.numpy(), g.numpy().reshape(n, -1), loss)
        for i in range(len(self.critic_w) - 1, -1, -1):
            torch.bmm(posts[i].transpose(1, 2), g, out=self._grad(self.critic_w[i]))
            torch.sum(g, 1, keepdim=True, out=self._grad(self.critic_b[i]))
            if i > 0:
                g = torch.bmm(g, self.critic_w[i].transpose(1, 2))
                K.mul_(g.numpy().reshape(-1), slopes[i - 1].numpy().reshape(-1))
        average_gradients(self.critic_params)
        self.critic_adam()
        return torch.tensor(loss.sum(), dtype=torch.float32)

    def actor_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One actor step on ``-mean Q_1(s, pi(s))`` (the first critic) and the actor target's Polyak step."""
        algo = self.algo
        a, a_posts, a_slopes = self._forward(batch["policy_obs"], self.actor_w, self.actor_b, batched=False)
        K.bias_tanh_(a.numpy(), self.actor_b[-1].detach().numpy())
        x = torch.cat((batch["critic_obs"], a), dim=-1)
        w1 = [w[0].t() for w in self.critic_w]  # the first critic in nn.Linear's [out, in] layout
        q, _, c_slopes = self._forward(x, w1, [b[:1] for b in self.critic_b], batched=False)
        q = q + self.critic_b[-1][0]
        rows = q.shape[0]
        g = torch.full_like(q, -1.0 / rows)
        for i in range(len(w1) - 1, -1, -1):  # to the critic's input: no critic gradient is kept
            g = torch.mm(g, w1[i])
            if i > 0:
                K.mul_(g.numpy().reshape(-1), c_slopes[i - 1].numpy().reshape(-1))
        g = g[:, x.shape[1] - a.shape[1]:].contiguous()
        K.tanh_out_grad(g.numpy().reshape(-1), a.numpy().reshape(-1))
        for i in range(len(self.actor_w) - 1, -1, -1):
            torch.mm(g.t(), a_posts[i], out=self._grad(self.actor_w[i]))
            torch.sum(g, 0, out=self._grad(self.actor_b[i]))
            if i > 0:
                g = torch.mm(g, self.actor_w[i])
                K.mul_(g.numpy().reshape(-1), a_slopes[i - 1].numpy().reshape(-1))
        average_gradients(self.actor_params)
        self.actor_adam()
        torch._foreach_lerp_(*self.polyak_actor, algo.cfg.tau)
        return -q.mean()

    def update(self, batch: dict[str, torch.Tensor], train_actor: bool,
               actor_batch: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        """:meth:`TD3.update` (same schedule and return value)."""
        algo, c = self.algo, self.algo.cfg
        with torch.no_grad():
            out = {"critic_loss": self.critic_step(batch)}
            algo.num_updates += 1
            if train_actor and algo.num_updates % c.policy_delay == 0:
                out["actor_loss"] = self.actor_step(actor_batch if actor_batch is not None else batch)
            if algo.num_updates % c.critic_target_delay == 0:
                torch._foreach_lerp_(*self.polyak_critic, c.tau)
        return out


__all__ = ["ExplicitTD3", "applies"]
