"""Analytic policy gradient (APG): back-propagate the return through the differentiable simulator.

The simulator is differentiable (the plain-torch env through autograd, or the fused CPU env with its
hand-written vector-Jacobian product), so the reward of a ``horizon``-step rollout is a differentiable
function of the policy parameters (observations, dynamics, reward and the action history included). One
update rolls every env forward ``horizon`` steps from where it stands, averages the reward, and takes one
Adam step on its gradient (truncated back-propagation through time; episodes continue across updates and
resets inside a window simply start a new, gradient-free branch; ``runners/apg.py`` does the rollout and, on
the fused env, the hand-written BPTT of ``apg_bptt.py``). Short-horizon variants of this idea
(e.g. SHAC, Xu et al. 2022) are how differentiable simulators train quadrotor hover policies in minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from robot_rl.algorithms.common import make_optimizer
from robot_rl.distributed import average_gradients
from robot_rl.models.mlp import MLP
from robot_rl.models.recurrent import GRUActor


@dataclass
class APGConfig:
    """Hyper-parameters of the analytic policy gradient."""

    actor_hidden: tuple[int, ...] = (64, 64)
    activation: str = "fast_tanh"
    lr: float = 1e-3
    lr_final: float | None = None
    """If set, the learning rate follows a cosine from ``lr`` to this over the run."""
    horizon: int = 100
    """Steps back-propagated per update (100 = 1 s of flight: long enough to see position errors)."""
    max_grad_norm: float = 1.0
    init_action: float | None = None
    """Start the policy near this constant action (small last layer); None: the env's hover action (a number,
    or one per action element)."""
    init_scale: float = 0.01
    """Scale of the last layer's initial weights."""
    bound_barrier: float = 0.0
    """Weight of a penalty near the termination bound, subtracted from every step's reward in the gradient (0:
    off): ``w * sum_i (max(|p_i - target_i| - b, 0) / (limit - b))^2`` with ``b = bound_barrier_start``
    (``w`` per axis at the bound). A crash ends the episode, and the reward it loses is no gradient: APG sees
    only the rewards of the window's live steps. The barrier gives the approach to the bound a gradient.
    The same term in the hand-written BPTT (``apg_bptt.py``) and by autograd (on an env with ``position_limit``
    and ``position_error()``: the hover envs)."""
    bound_barrier_start: float = 0.4
    """Distance from the target per axis (m) where the barrier starts (the hover task terminates at 0.6)."""
    episode_length: int = 0
    """Truncate the training env's episodes after this many steps (0: the task's ``episode_length``). Evaluation
    keeps the task's. Shorter training episodes start more often: more of every window is the recovery from the
    task's initial states, where the robust hover's crashes are (``benchmarks/hover_crashes.py``)."""
    recurrent_state: int = 0
    """State size of a recurrent actor (0: the MLP): a GRU cell on top of one dense layer of ``actor_hidden``
    (``robot_rl/models/recurrent.py``); its state carries from step to step and across windows (not their
    gradient), and is zeroed when an env's episode ends. Trained by autograd (the hand-written BPTT is MLP-only)."""
    backprop: str = "auto"
    """``auto``: hand-written BPTT (``apg_bptt.py``) where it applies (fast-tanh MLP on the differentiable fused
    CPU env), else torch autograd; ``autograd``: always torch autograd (same gradient, other rounding)."""


class APG:
    """Update rule only: ``update(mean_reward)`` takes one Adam step up the gradient of the rollout's mean reward
    (by autograd from ``mean_reward``, or from precomputed ``grads``); the runner rolls out the actor."""

    def __init__(self, cfg: APGConfig, policy_dim: int, action_dim: int,
                 init_action: float | list[float] = 0.0) -> None:
        self.cfg = cfg
        if cfg.recurrent_state:
            if cfg.recurrent_state < 0 or len(cfg.actor_hidden) != 1:
                raise ValueError(f"apg.recurrent_state: need > 0 and one actor_hidden layer (the GRU's input), got "
                                 f"{cfg.recurrent_state} and actor_hidden {tuple(cfg.actor_hidden)}")
            self.actor: nn.Module = GRUActor(policy_dim, cfg.actor_hidden[0], cfg.recurrent_state, action_dim,
                                             cfg.activation)
            last = self.actor.out
        else:
            self.actor = MLP(policy_dim, cfg.actor_hidden, action_dim, cfg.activation, output="tanh")
            last = self.actor.linears[-1]
        a0 = init_action if cfg.init_action is None else cfg.init_action
        with torch.no_grad():
            last.weight.mul_(cfg.init_scale)
            bias = torch.as_tensor(a0, dtype=torch.float64).clamp(-0.999, 0.999).atanh()
            last.bias.copy_(bias.expand_as(last.bias))
        self.opt = make_optimizer(self.actor.parameters(), cfg.lr, 0.0)
        self.num_updates = 0

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def set_progress(self, fraction: float) -> None:
        """Cosine learning-rate schedule position (0 = start, 1 = end of the run)."""
        if self.cfg.lr_final is None:
            return
        f = min(max(fraction, 0.0), 1.0)
        lr = self.cfg.lr_final + (self.cfg.lr - self.cfg.lr_final) * 0.5 * (1.0 + math.cos(math.pi * f))
        for group in self.opt.param_groups:
            group["lr"] = lr

    def update(self, mean_reward: torch.Tensor, grads: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One Adam step on ``-mean_reward`` (clipped gradient norm). ``grads``: the gradient of ``mean_reward``
        with respect to ``actor.parameters()``, when computed without autograd."""
        loss = -mean_reward
        self.opt.zero_grad(set_to_none=True)
        if grads is None:
            loss.backward()
        else:
            for p, g in zip(self.actor.parameters(), grads, strict=True):
                p.grad = -g
        average_gradients(self.actor.parameters())  # a distributed run: the mean over every rank's envs
        norm = nn.utils.clip_grad_norm_(self.actor.parameters(), self.cfg.max_grad_norm)
        self.opt.step()
        self.num_updates += 1
        return {"apg_loss": loss.detach(), "grad_norm": norm.detach()}
