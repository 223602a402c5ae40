"""TD3 (Fujimoto et al. 2018) with an asymmetric critic: Q(critic_obs, a), pi(policy_obs)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from robot_rl.algorithms import td3_explicit
from robot_rl.algorithms.common import make_rltools_adam, polyak, step
from robot_rl.algorithms.td3_explicit import ExplicitTD3
from robot_rl.models.critic import EnsembleMLP
from robot_rl.models.ensemble_function import actor_apply, ensemble_apply
from robot_rl.models.mlp import MLP
from robot_rl.models.mlp_act import ACTIVATION_CODES, NumbaActor
from robot_rl.models.mlp_function import mlp_forward
from robot_rl.storage.replay import ReplayBuffer


@dataclass
class TD3Config:
    """Hyper-parameters of TD3 (defaults: the L2F paper's)."""

    actor_hidden: tuple[int, ...] = (64, 64)
    critic_hidden: tuple[int, ...] = (64, 64)
    activation: str = "fast_tanh"
    """relu | tanh | elu | fast_tanh (the paper's rational tanh)."""
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    weight_decay: float = 1e-4
    """RLtools' decoupled weight decay: each optimizer step also shrinks every weight-matrix entry by the factor
    ``1 - weight_decay / 2`` (independent of the learning rate; biases are not decayed); 0 gives Adam."""
    gamma: float = 0.99
    tau: float = 0.005
    """Polyak step for the target networks (0.005 = the paper's 0.995 averaging)."""
    policy_delay: int = 2
    """Actor (and actor-target) updates once per this many critic updates."""
    critic_target_delay: int = 1
    """Critic targets are updated once per this many critic updates. The paper (RLtools) updates them with every
    critic update, from the first one on (before the actor starts); Fujimoto et al. use ``policy_delay``."""
    independent_batches: bool = True
    """Every critic and the actor train on a batch of their own (each with its own target-action noise), as
    RLtools does; False: one shared batch per update."""
    target_noise: float = 0.2
    target_noise_clip: float = 0.5
    exploration_noise: float = 0.1
    num_critics: int = 2
    update_threads: int = 1
    """numba threads for the explicit update (``fused`` on the CPU): its critics run one per thread and Adam in two
    shares, the same numbers at any count (tested). Give it only cores no other busy process needs: a thread that
    waits for a shared core stalls every update."""
    fused: bool = False
    """Opt-in fast path, same maths per update and the same random draws (tested to 1e-6 over 20 updates):
    acting in one numba call (``models/mlp_act.py``) and, on CPU float32 with fast_tanh/tanh/relu, the whole
    update written out by hand (``td3_explicit.py``: each step one numba call with torch's GEMM inside, Adam and
    Polyak as kernels, no autograd); elsewhere (or without torch's ``sgemm_``) one autograd node per network
    (``mlp_function``/``ensemble_function``) with torch's fused Adam kernel. With an env that has a compiled
    step, the off-policy runner also collects the steps between two updates in one numba call
    (``runners/fused_collect.py``) and, once both optimizers have stepped, runs every collect + update cycle up to
    its next boundary in one (``runners/fused_cycles.py``), bit for bit its step-by-step loop.
    Not the default: its float rounding differs from the plain path's, training amplifies that to different
    networks within ~1000 updates, and `panda-reach-sac` (SAC) seed 0 then learned to 0.60 held-out success
    against 1.00 on the plain path (benchmarks/README.md: rounding, not a bug)."""


class TD3:
    """Update rule only: ``update(batch)`` takes one gradient step on the critics (and, delayed, the actor)."""

    def __init__(self, cfg: TD3Config, policy_dim: int, critic_dim: int, action_dim: int,
                 generator: torch.Generator | None = None) -> None:
        self.cfg = cfg
        self.action_dim = action_dim
        self.actor = MLP(policy_dim, cfg.actor_hidden, action_dim, cfg.activation, output="tanh")
        self.critic = EnsembleMLP(cfg.num_critics, critic_dim + action_dim, cfg.critic_hidden, 1, cfg.activation)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = make_rltools_adam(self.actor.named_parameters(), cfg.actor_lr, cfg.weight_decay, cfg.fused)
        self.critic_opt = make_rltools_adam(self.critic.named_parameters(), cfg.critic_lr, cfg.weight_decay,
                                            cfg.fused)
        self.gen = generator
        self.num_updates = 0
        self._numba_actor = NumbaActor(self.actor) if cfg.fused and cfg.activation in ACTIVATION_CODES else None
        self._explicit: ExplicitTD3 | None = None

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"actor": self.actor, "critic": self.critic, "actor_target": self.actor_target,
                "critic_target": self.critic_target}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_opt": self.actor_opt, "critic_opt": self.critic_opt}

    @torch.no_grad()
    def act(self, policy_obs: torch.Tensor, explore: bool) -> torch.Tensor:
        fast = self._numba_actor
        if fast is not None and fast.takes(policy_obs) and fast.ready():  # one numba call, the same noise draws
            shape = (policy_obs.shape[0], self.action_dim)
            noise = torch.randn(shape, generator=self.gen) if explore else None
            return fast(policy_obs, noise, self.cfg.exploration_noise)
        a = mlp_forward(self.actor, policy_obs) if self.cfg.fused else self.actor(policy_obs)
        if explore:
            noise = torch.randn(a.shape, generator=self.gen, device=a.device) * self.cfg.exploration_noise
            a = (a + noise).clamp(-1.0, 1.0)
        return a

    @torch.no_grad()
    def target_q(self, reward: torch.Tensor, next_policy_obs: torch.Tensor, next_critic_obs: torch.Tensor,
                 terminated: torch.Tensor) -> torch.Tensor:
        """``r + gamma (1 - terminated) min_i Q_i'(s', clip(pi'(s') + clip(eps)))``."""
        c = self.cfg
        a = mlp_forward(self.actor_target, next_policy_obs) if c.fused else self.actor_target(next_policy_obs)
        eps = torch.randn(a.shape, generator=self.gen, device=a.device) * c.target_noise
        a = (a + eps.clamp(-c.target_noise_clip, c.target_noise_clip)).clamp(-1.0, 1.0)
        x = torch.cat((next_critic_obs, a), dim=-1)
        q = (ensemble_apply(self.critic_target, x) if c.fused else self.critic_target(x)).squeeze(-1).min(dim=0).values
        return reward + c.gamma * (1.0 - terminated) * q

    def batch_rows(self, batch_size: int) -> int:
        """Rows to sample for one critic update: one batch per critic with ``independent_batches``."""
        return batch_size * (self.cfg.num_critics if self.cfg.independent_batches else 1)

    def actor_due(self, train_actor: bool) -> bool:
        """Whether the next :meth:`update` will also step the actor."""
        return train_actor and (self.num_updates + 1) % self.cfg.policy_delay == 0

    def update_from_replay(self, buffer: ReplayBuffer, batch_size: int, train_actor: bool = True) -> dict[str, float]:
        """Sample from ``buffer`` and :meth:`update`: the critic rows (:meth:`batch_rows`), then with
        ``independent_batches`` the actor's own ``batch_size`` rows when :meth:`actor_due`, all with this TD3's
        generator. On the explicit path sampling and update are one numba call (the same draws and values,
        ``ExplicitTD3.update_from_replay``). Returns the losses as floats."""
        c = self.cfg
        if c.fused and td3_explicit.applies(self):
            if self._explicit is None:
                self._explicit = ExplicitTD3(self)
            with self._explicit.threads:
                out = self._explicit.update_from_replay(buffer, batch_size, train_actor)
            if out is not None:
                return out
        batch = buffer.sample(self.batch_rows(batch_size), self.gen)
        actor_batch = (buffer.sample(batch_size, self.gen) if c.independent_batches and self.actor_due(train_actor)
                       else None)
        return {k: float(v) for k, v in self.update(batch, train_actor, actor_batch).items()}

    def update(self, batch: dict[str, torch.Tensor], train_actor: bool = True,
               actor_batch: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One critic step (and every ``policy_delay``-th call an actor + actor-target step); returns detached losses.

        With ``independent_batches`` ``batch`` holds ``num_critics`` batches one after the other (critic ``i``
        trains on the ``i``-th, each target the twin minimum of both target critics); the actor trains on
        ``actor_batch`` when given, else on ``batch``. Critic targets follow every ``critic_target_delay``-th
        critic step.
        """
        c = self.cfg
        if c.fused and td3_explicit.applies(self):  # explicit forward/backward passes, no autograd
            if self._explicit is None:
                self._explicit = ExplicitTD3(self)
            with self._explicit.threads:
                return self._explicit.update(batch, train_actor, actor_batch)
        y = self.target_q(batch["reward"], batch["next_policy_obs"], batch["next_critic_obs"], batch["terminated"])
        x = torch.cat((batch["critic_obs"], batch["action"]), dim=-1)
        if c.independent_batches:
            x, y = x.reshape(c.num_critics, -1, x.shape[-1]), y.reshape(c.num_critics, -1)
        q = (ensemble_apply(self.critic, x) if c.fused else self.critic(x)).squeeze(-1)
        critic_loss = ((q - y) ** 2).mean(dim=1).sum()
        step(self.critic_opt, critic_loss)
        self.num_updates += 1
        out = {"critic_loss": critic_loss.detach()}
        if train_actor and self.num_updates % c.policy_delay == 0:
            ab = actor_batch if actor_batch is not None else batch
            if c.fused:
                a = actor_apply(self.actor, ab["policy_obs"])
                q_pi = ensemble_apply(self.critic, torch.cat((ab["critic_obs"], a), dim=-1), members=1)[0]
            else:
                a = self.actor(ab["policy_obs"])
                q_pi = self.critic(torch.cat((ab["critic_obs"], a), dim=-1))[0]
            actor_loss = -q_pi.mean()
            self.critic.requires_grad_(False)
            step(self.actor_opt, actor_loss)
            self.critic.requires_grad_(True)
            out["actor_loss"] = actor_loss.detach()
            polyak(self.actor_target, self.actor, c.tau)
        if self.num_updates % c.critic_target_delay == 0:
            polyak(self.critic_target, self.critic, c.tau)
        return out
