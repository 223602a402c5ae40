"""PPO (Schulman et al. 2017) with GAE and an asymmetric value function V(critic_obs)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from robot_rl import distributed
from robot_rl.algorithms.common import make_optimizer
from robot_rl.models.mlp import MLP, PolicyGraph
from robot_rl.models.normalizer import EmpiricalNormalizer


@dataclass
class PPOConfig:
    """Hyper-parameters of PPO (defaults in the spirit of rsl_rl)."""

    actor_hidden: tuple[int, ...] = (64, 64)
    critic_hidden: tuple[int, ...] = (64, 64)
    activation: str = "elu"
    lr: float = 1e-3
    gamma: float = 0.99
    lam: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    value_clip: float = 0.2
    value_coef: float = 1.0
    entropy_coef: float = 0.0
    epochs: int = 5
    minibatches: int = 4
    init_std: float = 0.5
    max_grad_norm: float = 1.0
    empirical_normalization: bool = False
    """Feed actor and critic their inputs normalised by the running mean/std of the rollout observations (as
    rsl_rl's ``empirical_normalization``); the export folds the actor's statistics into its first layer."""


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, last_value: torch.Tensor, dones: torch.Tensor,
                bootstrap: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over ``[T, N]`` tensors.

    ``dones[t]`` ends the episode after step t (no value flows back across it); ``bootstrap[t]`` is the value
    of the final observation added to ``rewards[t]`` for truncated steps (0 elsewhere), so time-outs are
    not mistaken for failures. Returns ``(advantages, returns)``.
    """
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    gae = torch.zeros_like(last_value)
    for t in reversed(range(T)):
        next_v = last_value if t == T - 1 else values[t + 1]
        not_done = 1.0 - dones[t]
        r = rewards[t] + gamma * bootstrap[t]
        delta = r + gamma * not_done * next_v - values[t]
        gae = delta + gamma * lam * not_done * gae
        adv[t] = gae
    return adv, adv + values


def normalize_advantages(adv: torch.Tensor) -> torch.Tensor:
    """``(adv - mean) / (std + 1e-8)``, mean and (unbiased) std over every rank's advantages.

    Distributed: one all-reduce of the count, sum and sum of squares, in float64 so that the one-pass variance
    loses nothing against a single process's two-pass one in float32."""
    if not distributed.active():
        return (adv - adv.mean()) / (adv.std() + 1e-8)
    a = adv.double()
    n, total, squares = distributed.all_sum(torch.stack((torch.tensor(float(a.numel()), dtype=a.dtype,
                                                                      device=a.device), a.sum(), a.square().sum())))
    mean = total / n
    std = ((squares - n * mean * mean) / (n - 1)).clamp_min(0.0).sqrt()
    return (adv - mean.to(adv.dtype)) / (std.to(adv.dtype) + 1e-8)


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's clipped objective as a loss: ``-mean(min(ratio A, clip(ratio, 1-eps, 1+eps) A))``."""
    ratio = (logp - old_logp).exp()
    return -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()


class GaussianActor(nn.Module):
    """Mean MLP + state-independent log-std; the deterministic (exported) action is the clipped mean.

    With ``normalize`` the MLP reads ``(obs - mean) / std`` from an :class:`EmpiricalNormalizer` that the
    trainer updates on rollout data; :meth:`graph` hands those statistics to the exporter.
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...], action_dim: int, activation: str, init_std: float,
                 normalize: bool = False):
        super().__init__()
        self.normalizer = EmpiricalNormalizer(in_dim) if normalize else None
        self.net = MLP(in_dim, hidden, action_dim, activation, output="identity")
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_std)))

    def _mean(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs if self.normalizer is None else self.normalizer(obs))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self._mean(obs).clamp(-1.0, 1.0)

    def dist(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self._mean(obs), self.log_std.exp())

    def graph(self) -> PolicyGraph:
        n = self.normalizer
        g = self.net.graph() if n is None else self.net.graph(n.mean, n.std)
        g.output = "clip"
        return g


class PPO:
    """Update rule only: ``update(rollout)`` runs the epochs of minibatch steps on one rollout."""

    def __init__(self, cfg: PPOConfig, policy_dim: int, critic_dim: int, action_dim: int,
                 generator: torch.Generator | None = None) -> None:
        self.cfg = cfg
        norm = cfg.empirical_normalization
        self.actor = GaussianActor(policy_dim, cfg.actor_hidden, action_dim, cfg.activation, cfg.init_std, norm)
        self.critic: nn.Module = MLP(critic_dim, cfg.critic_hidden, 1, cfg.activation)
        if norm:
            self.critic = nn.Sequential(EmpiricalNormalizer(critic_dim), self.critic)
        self.opt = make_optimizer(list(self.actor.parameters()) + list(self.critic.parameters()), cfg.lr, 0.0)
        self.gen = generator

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def update_normalizers(self, policy_obs: torch.Tensor, critic_obs: torch.Tensor) -> None:
        """Fold one batch of rollout observations into the running statistics (no-op without normalisation)."""
        if self.cfg.empirical_normalization:  # over every rank's batch, so the ranks' statistics stay equal
            self.actor.normalizer.update(distributed.all_gather_cat(policy_obs))
            self.critic[0].update(distributed.all_gather_cat(critic_obs))

    @torch.no_grad()
    def act(self, policy_obs: torch.Tensor, explore: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled (unclipped) action and its log-probability; the env clips to its bounds."""
        d = self.actor.dist(policy_obs)
        noise = torch.randn(d.mean.shape, generator=self.gen, device=d.mean.device) if explore else 0.0
        a = d.mean + d.stddev * noise
        return a, d.log_prob(a).sum(-1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """``batch`` holds flattened ``policy_obs, critic_obs, action, logp, advantages, returns, values``.

        In a distributed run each rank passes its own rollout: advantages are normalised by the statistics of
        all ranks' advantages and every minibatch gradient is averaged over the ranks (with ``minibatches=1``
        the step equals a single process's on the ranks' rollouts concatenated)."""
        c = self.cfg
        n = batch["action"].shape[0]
        adv = normalize_advantages(batch["advantages"])
        params = list(self.actor.parameters()) + list(self.critic.parameters())
        stats = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0}
        steps = 0
        for _ in range(c.epochs):
            perm = torch.randperm(n, generator=self.gen, device=batch["action"].device)
            for idx in perm.chunk(c.minibatches):
                d = self.actor.dist(batch["policy_obs"][idx])
                logp = d.log_prob(batch["action"][idx]).sum(-1)
                pl = clipped_surrogate(logp, batch["logp"][idx], adv[idx], c.clip)
                v = self.critic(batch["critic_obs"][idx]).squeeze(-1)
                v_old, ret = batch["values"][idx], batch["returns"][idx]
                v_clipped = v_old + (v - v_old).clamp(-c.value_clip, c.value_clip)
                vl = torch.max((v - ret) ** 2, (v_clipped - ret) ** 2).mean()
                ent = d.entropy().sum(-1).mean()
                loss = pl + c.value_coef * vl - c.entropy_coef * ent
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                distributed.average_gradients(params)
                nn.utils.clip_grad_norm_(params, c.max_grad_norm)
                self.opt.step()
                stats["policy_loss"] += pl.item()
                stats["value_loss"] += vl.item()
                stats["entropy"] += ent.item()
                steps += 1
        return {k: v / steps for k, v in stats.items()}
