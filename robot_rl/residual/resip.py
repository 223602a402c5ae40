"""ResiP (Ankile et al., "From Imitation to Refinement"): PPO on a per-step residual over a frozen chunked base.

The residual actor reads ``[normalised policy observation, normalised base action]`` (with ``history = H``, also
the env's last H observations, and optionally executed actions: :mod:`robot_rl.residual.history`; with
``wrench``, also the env's ``wrench`` group, a wrist force/torque reading: :mod:`sim.arm.wrench`) and outputs
``r``; the executed action is ``a = clip(a_base + scale * r, -1, 1)`` in the base's normalised action space
(then mapped back to raw units). Its last layer has no bias and starts at zero, so training starts exactly at
the base. The Gaussian over ``r`` has a fixed (or learned) state-independent log-std. The critic is asymmetric:
it reads the privileged ``critic`` group (true object/hole state), which the actor never sees.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
import tyro
from torch import nn

from robot_rl.algorithms.ppo import clipped_surrogate
from robot_rl.models.normalizer import EmpiricalNormalizer
from robot_rl.policies.diffusion import MinMaxNormalizer
from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.history import ResidualHistory

WRENCH_DIM = 6
"""Width of the ``wrench`` observation group: force x y z (N), torque x y z (N m), the sensor frame."""


@dataclass
class ResiPConfig:
    """Residual PPO on a frozen behaviour-cloning base (``robot-rl train resip --base RUN``)."""

    base: str = ""
    """Behaviour-cloning run directory of the frozen base (``robot-rl train dp-<task>|mse-<task>``)."""
    task: str = ""
    """Registered task to train on ("": the base run's task)."""
    seed: int = 0
    """Seed of the env episodes, network initialisation, exploration and base noise."""
    num_envs: int = 32
    """Parallel envs."""
    steps_per_env: int = 64
    """Control steps per env per PPO iteration."""
    total_env_steps: int = 400_000
    """Environment steps to train for (all envs together)."""
    scale: float = 0.1
    """Residual scale in the base's normalised action space: ``a = clip(a_base + scale * r, -1, 1)`` (it scales
    the exploration noise too: 0.3 broke the base's insertions on panda-peg-insert)."""
    actor_hidden: tuple[int, ...] = (256, 256)
    """Residual actor hidden widths (ReLU)."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Critic hidden widths (ReLU)."""
    log_std_init: float = -1.0
    """Initial log-std of the residual ``r`` (ResiP: fixed at -1)."""
    learn_std: bool = False
    """Learn the log-std (otherwise it stays at ``log_std_init``)."""
    history: int = 0
    """In-context residual: the actor also reads each env's last H policy observations, as changes from the
    current one, normalised by running statistics (0: memoryless). Use it with ``--actor-lr 1e-4``: the window's
    inputs make each Adam step move the output ~3x further (benchmarks/README.md)."""
    history_actions: bool = False
    """The history residual also reads the window's executed actions (exploration noise included; it did worse
    on panda-peg-insert). The window keeps both either way, so export and runtime are the same."""
    wrench: bool = False
    """The actor also reads the env's ``wrench`` group (a wrist force/torque sensor, its noise and low-pass filter:
    ``sim.arm.config.ArmWristFT``), normalised by running statistics; the base keeps reading the policy group."""
    reward: Literal["sparse", "dense"] = "sparse"
    """``sparse``: 1 in the step the task reports success (episodes end there), else 0; ``dense``: the task's
    shaped reward (where success ends the episode, per-step shaping can pay more than succeeding: on
    panda-peg-insert it taught the residual to hover above the hole, see benchmarks/README.md)."""
    train_task: dict[str, float] = dataclasses.field(default_factory=dict)
    """Fields of the task's config set for the training envs only (``--train-task NAME VALUE``; evaluation and
    export keep the task as registered), e.g. ``beside_ring_fail_depth 0.01`` on panda-peg-insert: end an episode
    as a failure once the peg is pushed down beside the ring."""
    fail_penalty: float = 0.0
    """Subtracted from the reward in the step an episode ends as a failure (terminated without success: what the
    task reports as lost, e.g. through ``train_task``); 0: the reward as ``reward`` says."""
    gamma: float = 0.99
    """Discount (the paper's 0.999, with its 50 full-batch epochs, did worse on panda-peg-insert, where time-limit
    truncations are bootstrapped: benchmarks/README.md)."""
    lam: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """PPO ratio clip."""
    epochs: int = 8
    """Update epochs per rollout (fewer when the KL early stop triggers)."""
    minibatches: int = 4
    """Minibatches per epoch."""
    actor_lr: float = 3e-4
    """Residual actor learning rate."""
    critic_lr: float = 1e-3
    """Critic learning rate."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip of each network."""
    target_kl: float = 0.05
    """Stop the epochs of an update once the approximate KL to the rollout policy exceeds this (0: never)."""
    value_norm: bool = True
    """Critic predicts returns normalised by their running mean/std (targets normalised alike)."""
    eval_every: int = 0
    """Env steps between evaluations on the task's selection episodes (0: none during training)."""
    eval_episodes: Annotated[int, tyro.conf.arg(name="selection-episodes")] = 50
    """Episodes of each in-training evaluation (on the command line ``--selection-episodes``: ``--eval-episodes``
    is the run flag of the evaluation after training)."""
    keep_best: bool = False
    """The run's residual (what ``robot-rl eval``/``export`` and the checkpoint's ``best_actor`` give) is the actor
    of the best in-training evaluation (the earliest of equal ones), not the last: the selection episodes choose
    it, the held-out ones of ``robot-rl eval`` confirm it. Needs ``eval_every``."""
    log_every: int = 10_000
    """Env steps between metrics rows."""
    checkpoint_every: int = 50_000
    """Env steps between checkpoints (0: only at the end)."""
    threads: int = 1
    """torch CPU threads."""

    def to_dict(self) -> dict[str, Any]:
        return {"algorithm": "resip", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResiPConfig:
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k != "algorithm"}
        return cls(**d)

    def check(self) -> ResiPConfig:
        if not self.base:
            raise ValueError("resip needs --base RUN (a behaviour-cloning run: robot-rl train dp-<task> --demos DIR)")
        if self.scale <= 0:
            raise ValueError(f"--scale must be positive, got {self.scale}")
        if self.fail_penalty < 0:
            raise ValueError(f"--fail-penalty is subtracted at a failure and must be >= 0, got {self.fail_penalty}")
        if self.keep_best and self.eval_every <= 0:
            raise ValueError("--keep-best keeps the actor of the best in-training evaluation: give --eval-every N")
        if self.history < 0:
            raise ValueError(f"--history must be >= 0 (0: a memoryless residual), got {self.history}")
        if self.num_envs < 1 or self.steps_per_env < 1 or self.minibatches < 1:
            raise ValueError("num_envs, steps_per_env and minibatches must be at least 1")
        return self


def _mlp(inp: int, hidden: tuple[int, ...], out: int, last_bias: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(inp, h), nn.ReLU()]
        inp = h
    layers.append(nn.Linear(inp, out, bias=last_bias))
    return nn.Sequential(*layers)


class ResidualActor(nn.Module):
    """``(obs [B, obs_dim] raw, a_base [B, A] normalised[, history [B, H, obs_dim + A] raw][, wrench [B, W] raw])
    -> r`` mean; the executed action is :meth:`compose`.

    Carries a copy of the base's normalisers and the scale, so it is self-contained for export. With
    ``history = H > 0`` the window's rows enter as ``normalise(obs_past) - normalise(obs)`` (and, with
    ``history_actions``, ``normalise(action_past)``; the base's min-max normalisers), then through running mean/std
    statistics (``history_norm``, updated on rollouts by :meth:`update_history_stats`): motions of a millimetre
    are a hundredth of the demonstrations' range, too small for the MLP to read at their raw scale. The first
    layer's weights on the window start at zero and the rest as in the memoryless actor of the same seed (the same
    draws): training starts from the memoryless network and adds what the past is worth, rather than from
    hidden units dominated at initialisation by H * obs_dim mostly uninformative inputs. With ``wrench_dim = W > 0``
    the W readings of the ``wrench`` group enter last, through running mean/std statistics (``wrench_norm``), their
    first-layer weights at zero too: with or without them, every other weight and the first actions are the same.
    """

    def __init__(self, obs_norm: MinMaxNormalizer, act_norm: MinMaxNormalizer, hidden: tuple[int, ...],
                 scale: float, log_std_init: float, learn_std: bool, history: int = 0,
                 history_actions: bool = False, wrench_dim: int = 0) -> None:
        super().__init__()
        self.obs_norm, self.act_norm = _copy(obs_norm), _copy(act_norm)
        self.obs_dim, self.action_dim, self.scale = obs_norm.dim, act_norm.dim, float(scale)
        self.history, self.history_actions, self.wrench_dim = int(history), bool(history_actions), int(wrench_dim)
        self.net = _mlp(self.obs_dim + self.action_dim, hidden, self.action_dim, last_bias=False)
        if self.history:
            context = self.history * (self.obs_dim + self.action_dim * self.history_actions)
            self.history_norm = EmpiricalNormalizer(context, eps=1e-3)
            self.net[0] = _widen(self.net[0], context)
        if self.wrench_dim:
            self.wrench_norm = EmpiricalNormalizer(self.wrench_dim, eps=1e-3)
            self.net[0] = _widen(self.net[0], self.wrench_dim)
        nn.init.zeros_(self.net[-1].weight)
        self.log_std = nn.Parameter(torch.full((self.action_dim,), float(log_std_init)), requires_grad=learn_std)

    def history_features(self, obs: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """``[B, H * (obs_dim + A)]`` window features before the running normalisation."""
        d = self.obs_dim
        if history.shape[1:] != (self.history, d + self.action_dim):
            raise ValueError(f"history must be [batch, {self.history}, {d + self.action_dim}], got "
                             f"{list(history.shape)}")
        past = self.obs_norm.normalize(history[..., :d]) - self.obs_norm.normalize(obs)[:, None, :]
        if not self.history_actions:
            return past.flatten(1)
        return torch.cat((past, self.act_norm.normalize(history[..., d:])), -1).flatten(1)

    @torch.no_grad()
    def update_input_stats(self, obs: torch.Tensor, history: torch.Tensor | None,
                           wrench: torch.Tensor | None = None) -> None:
        """Fold a rollout step's windows and wrench readings into the running statistics (training only)."""
        if self.history:
            self.history_norm.update(self.history_features(obs, history))
        if self.wrench_dim:
            self.wrench_norm.update(self._check_wrench(wrench))

    def _check_wrench(self, wrench: torch.Tensor | None) -> torch.Tensor:
        if wrench is None or wrench.shape[-1] != self.wrench_dim:
            got = "none" if wrench is None else list(wrench.shape)
            raise ValueError(f"this residual reads a [batch, {self.wrench_dim}] wrench reading; got {got}")
        return wrench

    def forward(self, obs: torch.Tensor, base_action_n: torch.Tensor, history: torch.Tensor | None = None,
                wrench: torch.Tensor | None = None) -> torch.Tensor:
        x = [self.obs_norm.normalize(obs), base_action_n]
        if self.history:
            if history is None:
                raise ValueError(f"this residual reads a history of {self.history} steps; none was given")
            x.append(self.history_norm(self.history_features(obs, history)))
        if self.wrench_dim:
            x.append(self.wrench_norm(self._check_wrench(wrench)))
        return self.net(torch.cat(x, -1))

    def dist(self, obs: torch.Tensor, base_action_n: torch.Tensor, history: torch.Tensor | None = None,
             wrench: torch.Tensor | None = None) -> torch.distributions.Normal:
        return torch.distributions.Normal(self(obs, base_action_n, history, wrench), self.log_std.exp())

    def compose(self, base_action_n: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Executed action in normalised space: ``clip(a_base + scale * r, -1, 1)``."""
        return (base_action_n + self.scale * r).clamp(-1.0, 1.0)

    def compose_raw(self, base_action: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """The executed raw action for the raw ``base_action``: ``unnormalize(compose(normalize(a_base), r))``,
        written as ``a_base + span * (compose - a_base_n)`` so that a zero residual returns the base action
        bit for bit (when it lies in the normalised box)."""
        an = self.act_norm.normalize(base_action)
        return base_action + (self.compose(an, r) - an) * self.act_norm.span

    def deterministic(self, obs: torch.Tensor, base_action: torch.Tensor, history: torch.Tensor | None = None,
                      wrench: torch.Tensor | None = None) -> torch.Tensor:
        """The deployed action: base plus the mean residual (raw units in and out; what the export traces)."""
        return self.compose_raw(base_action, self(obs, self.act_norm.normalize(base_action), history, wrench))


def _widen(layer: nn.Linear, extra: int) -> nn.Linear:
    """``layer`` with ``extra`` more inputs (at the end) whose weights are zero; no random draws."""
    with torch.random.fork_rng(devices=[]):
        wide = nn.Linear(layer.in_features + extra, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        wide.weight.zero_()
        wide.weight[:, :layer.in_features] = layer.weight
        if layer.bias is not None:
            wide.bias.copy_(layer.bias)
    return wide


def _copy(norm: MinMaxNormalizer) -> MinMaxNormalizer:
    out = MinMaxNormalizer.identity(norm.dim)
    out.load_state_dict(norm.state_dict())
    return out


class ResiP:
    """Update rule: clipped PPO on the residual with an asymmetric critic, value and advantage normalisation
    and a KL early stop. ``act`` samples residuals; ``update`` runs the epochs on one flattened rollout."""

    def __init__(self, cfg: ResiPConfig, base: FrozenChunkBase, critic_dim: int, generator: torch.Generator) -> None:
        self.cfg = cfg
        self.actor = ResidualActor(base.policy.obs_norm, base.policy.act_norm, cfg.actor_hidden, cfg.scale,
                                   cfg.log_std_init, cfg.learn_std, cfg.history, cfg.history_actions,
                                   WRENCH_DIM if cfg.wrench else 0)
        self.critic = nn.Sequential(EmpiricalNormalizer(critic_dim), _mlp(critic_dim, cfg.critic_hidden, 1))
        self.value_stats = EmpiricalNormalizer(1, eps=1e-4)
        self.actor_opt = torch.optim.Adam([p for p in self.actor.parameters() if p.requires_grad], lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.gen = generator

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic, "value_stats": self.value_stats}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_opt": self.actor_opt, "critic_opt": self.critic_opt}

    @torch.no_grad()
    def value(self, critic_obs: torch.Tensor) -> torch.Tensor:
        """Value in return units (the critic predicts normalised returns when ``value_norm``)."""
        v = self.critic(critic_obs).squeeze(-1)
        if self.cfg.value_norm:
            v = v * self.value_stats.std[0] + self.value_stats.mean[0]
        return v

    @torch.no_grad()
    def act(self, obs: torch.Tensor, base_action_n: torch.Tensor, history: torch.Tensor | None = None,
            wrench: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled residual ``r`` and its log-probability."""
        d = self.actor.dist(obs, base_action_n, history, wrench)
        r = d.mean + d.stddev * torch.randn(d.mean.shape, generator=self.gen)
        return r, d.log_prob(r).sum(-1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """``batch``: flattened ``obs, base_action, residual, logp, critic_obs, advantages, returns`` (and
        ``history`` for a history residual, ``wrench`` for one that reads the wrist wrench)."""
        c = self.cfg
        n = batch["residual"].shape[0]
        adv = batch["advantages"]
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        ret = batch["returns"]
        if c.value_norm:
            self.value_stats.update(ret[:, None])
            ret = (ret - self.value_stats.mean[0]) / self.value_stats.std[0]
        stats = {"policy_loss": 0.0, "value_loss": 0.0, "approx_kl": 0.0, "clip_fraction": 0.0}
        steps, epochs_run, stop = 0, 0, False
        for _ in range(c.epochs):
            epochs_run += 1
            for idx in torch.randperm(n, generator=self.gen).chunk(c.minibatches):
                hist = batch["history"][idx] if "history" in batch else None
                wr = batch["wrench"][idx] if "wrench" in batch else None
                d = self.actor.dist(batch["obs"][idx], batch["base_action"][idx], hist, wr)
                logp = d.log_prob(batch["residual"][idx]).sum(-1)
                log_ratio = logp - batch["logp"][idx]
                pl = clipped_surrogate(logp, batch["logp"][idx], adv[idx], c.clip)
                with torch.no_grad():
                    kl = ((log_ratio.exp() - 1) - log_ratio).mean().item()
                    clipped = ((log_ratio.exp() - 1).abs() > c.clip).float().mean().item()
                vl = (self.critic(batch["critic_obs"][idx]).squeeze(-1) - ret[idx]).pow(2).mean()
                for opt, loss, module in ((self.actor_opt, pl, self.actor), (self.critic_opt, vl, self.critic)):
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(module.parameters(), c.max_grad_norm)
                    opt.step()
                for k, v in zip(stats, (pl.item(), vl.item(), kl, clipped), strict=True):
                    stats[k] += v
                steps += 1
                if c.target_kl > 0 and kl > c.target_kl:
                    stop = True
                    break
            if stop:
                break
        out = {k: v / steps for k, v in stats.items()}
        out["epochs"] = float(epochs_run)
        out["std"] = float(self.actor.log_std.exp().mean())
        return out


class ResidualExecutor:
    """A batched ``obs -> action`` policy: the base on its chunk schedule plus the residual's mean (or, with
    ``residual=None``, the base alone). Every env starts its episode on the first call, as
    :func:`sim.evaluation.evaluate_success` runs them (only each env's first episode counts there); a history
    residual's window starts there too and takes each call's observation and returned action. A residual that reads
    the wrench declares ``obs_groups = ("policy", "wrench")``: each call then gets the two groups concatenated
    (:func:`sim.evaluation.policy_input`) and the base reads the policy group's columns only."""

    def __init__(self, base: FrozenChunkBase, actor: ResidualActor | None) -> None:
        self.base, self.actor = base, actor
        self.obs_groups = ("policy", "wrench") if actor is not None and actor.wrench_dim else ("policy",)
        self.started = False
        self.history = None
        if actor is not None and actor.history:
            self.history = ResidualHistory(base.num_envs, actor.history, base.obs_dim, base.action_dim)
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self) -> None:
        """Start afresh: the next call starts every env's episode, with the base's noise from its seed again (an
        evaluation calls it first, so every row of a robustness sweep sees the same noise)."""
        self.started = False
        self.base.generator.manual_seed(self.base.seed)
        self.base.candidate_generator.manual_seed(self.base.seed + 1)

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        obs = obs.detach().cpu().float()
        wrench = None
        if len(self.obs_groups) > 1:
            obs, wrench = obs[:, :self.base.obs_dim], obs[:, self.base.obs_dim:]
        if not self.started:
            self.base.reset(obs)
            if self.history is not None:
                self.history.reset(obs)
            self.started = True
        else:
            self.base.step(obs, torch.zeros(self.base.num_envs, dtype=torch.bool))
            if self.history is not None:
                self.history.push(*self._last)
        a = self.base.act()
        if self.actor is None:
            return a
        out = self.actor.deterministic(obs, a, None if self.history is None else self.history.window, wrench)
        self._last = (obs, out)
        return out
