"""SAC (Haarnoja et al. 2018) with automatic temperature and an asymmetric critic."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from robot_rl.algorithms.common import make_optimizer, polyak, step
from robot_rl.algorithms.sac_explicit import ExplicitSAC
from robot_rl.models.critic import EnsembleMLP
from robot_rl.models.ensemble_function import actor_apply, ensemble_apply
from robot_rl.models.mlp import MLP, PolicyGraph
from robot_rl.models.mlp_act import LOG_STD_MAX, LOG_STD_MIN
from robot_rl.models.mlp_function import mlp_forward
from robot_rl.storage.replay import ReplayBuffer


@dataclass
class SACConfig:
    """Hyper-parameters of SAC (defaults: RLtools' L2F SAC recipe where it states them)."""

    actor_hidden: tuple[int, ...] = (32, 32, 32)
    critic_hidden: tuple[int, ...] = (32, 32, 32)
    activation: str = "fast_tanh"
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    alpha_lr: float = 1e-3
    weight_decay: float = 0.0
    gamma: float = 0.99
    tau: float = 0.005
    init_alpha: float = 1.0
    target_entropy: float | None = -4.0
    """None gives -action_dim."""
    policy_delay: int = 1
    num_critics: int = 2
    squash_correction: bool = True
    """Whether the log-probability of an action (entropy bonus, temperature) includes the tanh's Jacobian, as in
    Haarnoja et al. (the action's true density). That term rewards actions near 0 (the widest part of the squashed
    density): with it, the actor's mean is pulled toward 0 by ``2 alpha tanh(u)`` per dimension, which matters
    where the task needs a steady action away from 0 and the critic is nearly flat along it (a quadrotor's hover
    thrust: benchmarks/README.md). False: the entropy of the Gaussian before the squash, which does not depend on
    the mean."""
    fused: bool = False
    """Opt-in fast path, same maths per update (tested to 1e-6): actor and critics as one autograd node each
    (hand-written backward, ``mlp_function``/``ensemble_function``), torch's fused Adam. Not the
    default: its float rounding differs from the plain path's (on `panda-reach-sac`: only the fused Adam kernel's,
    1-2 ulp per update), training amplifies that to different networks within ~1000 updates as it does a 1-ulp
    change of the weights, and `panda-reach-sac` seed 0 then lands below its bar (0.60 against 1.00 held-out
    success; benchmarks/README.md: rounding, not a bug)."""
    explicit: bool = False
    """Opt-in faster path, same maths per update (tested to 1e-6 over 20 updates against the plain path): each
    update written out by hand (``sac_explicit.py``: the critic step and the actor + temperature step one numba call
    each with torch's GEMM inside, Adam and the Polyak step as kernels, no autograd; the off-policy runner samples
    the replay and updates in one call, ``update_from_replay``), the random draws the plain path's. Needs what
    ``fused`` builds: CPU float32 networks, fast_tanh/tanh/relu, fused Adam (built with this flag whether or not
    ``fused`` is set; ``fused`` still chooses how the actor acts); anything else is refused with a ValueError at the
    first update. Like ``fused``, its float rounding differs from the plain path's and training amplifies that to
    different networks, so results measured on another path do not carry over bit for bit."""
    update_threads: int = 1
    """numba threads for the explicit update (``explicit``): its critics run one per thread and Adam in two shares,
    the same numbers at any count (tested). Give it only cores no other busy process needs: a thread that waits
    for a shared core stalls every update."""
    fused_collect: bool = False
    """Opt-in on top of ``explicit``: the off-policy runner collects in numba (the exploration sample, the env's
    compiled step, the stored reward with its precision bonus, the replay write) and runs every collect + update
    cycle up to its next boundary in one numba call (``runners/fused_cycles_sac.py``), the temperature
    ``exp(log_alpha)`` of each update computed in numba too. The random draws are the plain loop's; the float
    rounding of the sample, the bonus and the temperature is numba's (a run differs from one without the flag as
    ``explicit`` runs differ from plain ones). Needs an env with a compiled step and a CPU replay table; the runner
    refuses anything else with a ValueError."""


class SquashedGaussianActor(nn.Module):
    """MLP producing mean and log-std of a Gaussian squashed by tanh; deterministic action = tanh(mean)."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], action_dim: int, activation: str,
                 fused: bool = False, squash_correction: bool = True) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.fused = fused
        self.squash_correction = squash_correction
        self.net = MLP(in_dim, hidden, 2 * action_dim, activation, output="identity")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = mlp_forward(self.net, obs) if self.fused and not torch.is_grad_enabled() else self.net(obs)
        return torch.tanh(out[..., : self.action_dim])

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action and its log-probability (with the tanh correction unless
        ``squash_correction`` is off: then the Gaussian's before the squash)."""
        out = actor_apply(self.net, obs) if self.fused else self.net(obs)
        mean, log_std = out.split(self.action_dim, dim=-1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device)
        u = mean + eps * log_std.exp()
        a = torch.tanh(u)
        logp = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        if self.squash_correction:  # log(1 - tanh(u)^2) computed stably
            logp = logp - (2 * (math.log(2.0) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return a, logp

    def graph(self) -> PolicyGraph:
        g = self.net.graph()
        g.weights[-1] = g.weights[-1][: self.action_dim]
        g.biases[-1] = g.biases[-1][: self.action_dim]
        g.output = "tanh"
        return g


class SAC:
    """Update rule only: ``update(batch)`` = critic step, actor + temperature step, target update."""

    def __init__(self, cfg: SACConfig, policy_dim: int, critic_dim: int, action_dim: int,
                 generator: torch.Generator | None = None) -> None:
        self.cfg = cfg
        self.actor = SquashedGaussianActor(policy_dim, cfg.actor_hidden, action_dim, cfg.activation, cfg.fused,
                                           cfg.squash_correction)
        self.critic = EnsembleMLP(cfg.num_critics, critic_dim + action_dim, cfg.critic_hidden, 1, cfg.activation)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_alpha)))
        self.target_entropy = float(-action_dim if cfg.target_entropy is None else cfg.target_entropy)
        fused = cfg.fused or cfg.explicit
        self.actor_opt = make_optimizer(self.actor.parameters(), cfg.actor_lr, cfg.weight_decay, fused)
        self.critic_opt = make_optimizer(self.critic.parameters(), cfg.critic_lr, cfg.weight_decay, fused)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, fused=fused or None)
        self.gen = generator
        self.num_updates = 0
        self._explicit: ExplicitSAC | None = None

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "temperature": nn.ParameterList([self.log_alpha])}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_opt": self.actor_opt, "critic_opt": self.critic_opt, "alpha_opt": self.alpha_opt}

    @torch.no_grad()
    def act(self, policy_obs: torch.Tensor, explore: bool) -> torch.Tensor:
        return self.actor.sample(policy_obs, self.gen)[0] if explore else self.actor(policy_obs)

    def temperature_loss(self, logp: torch.Tensor) -> torch.Tensor:
        """``-log_alpha * (logp + target_entropy)`` averaged (Haarnoja et al. 2018b, eq. 18)."""
        return -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()

    def update_from_replay(self, buffer: ReplayBuffer, batch_size: int, train_actor: bool = True) -> dict[str, float]:
        """``update(buffer.sample(batch_size, self.gen))``; on the explicit path sampling and update are one numba
        call (the same draws and values, ``ExplicitSAC.update_from_replay``). Returns the losses as floats."""
        if self.cfg.explicit:
            if self._explicit is None:
                self._explicit = ExplicitSAC(self)
            with self._explicit.threads:
                out = self._explicit.update_from_replay(buffer, batch_size, train_actor)
            if out is not None:
                return out
        return {k: float(v) for k, v in self.update(buffer.sample(batch_size, self.gen), train_actor).items()}

    def update(self, batch: dict[str, torch.Tensor], train_actor: bool = True) -> dict[str, torch.Tensor]:
        """One critic step, every ``policy_delay``-th call an actor + temperature step, then the critic targets'
        Polyak step; returns the detached losses, ``alpha`` and (with the actor's step) the entropy."""
        if self.cfg.explicit:  # hand-written forward/backward passes, no autograd
            if self._explicit is None:
                self._explicit = ExplicitSAC(self)
            with self._explicit.threads:
                return self._explicit.update(batch, train_actor)
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            a2, logp2 = self.actor.sample(batch["next_policy_obs"], self.gen)
            x2 = torch.cat((batch["next_critic_obs"], a2), dim=-1)
            q2 = (ensemble_apply(self.critic_target, x2) if self.cfg.fused else self.critic_target(x2))
            q2 = q2.squeeze(-1).min(0).values
            y = batch["reward"] + self.cfg.gamma * (1.0 - batch["terminated"]) * (q2 - alpha * logp2)
        critic = (lambda x: ensemble_apply(self.critic, x)) if self.cfg.fused else self.critic
        q = critic(torch.cat((batch["critic_obs"], batch["action"]), dim=-1)).squeeze(-1)
        critic_loss = ((q - y) ** 2).mean(dim=1).sum()
        step(self.critic_opt, critic_loss)
        self.num_updates += 1
        out = {"critic_loss": critic_loss.detach(), "alpha": alpha}
        if train_actor and self.num_updates % self.cfg.policy_delay == 0:
            a, logp = self.actor.sample(batch["policy_obs"], self.gen)
            self.critic.requires_grad_(False)
            q_pi = critic(torch.cat((batch["critic_obs"], a), dim=-1)).squeeze(-1).min(0).values
            actor_loss = (alpha * logp - q_pi).mean()
            step(self.actor_opt, actor_loss)
            self.critic.requires_grad_(True)
            step(self.alpha_opt, self.temperature_loss(logp))
            out["actor_loss"] = actor_loss.detach()
            out["entropy"] = -logp.detach().mean()
        polyak(self.critic_target, self.critic, self.cfg.tau)
        return out
