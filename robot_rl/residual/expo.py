"""EXPO-style off-policy refinement of a frozen base (Dong et al., ICLR 2026): update rules and the on-the-fly
policy.

The base is a chunked diffusion policy, so the on-the-fly policy chooses among whole chunks and executes the chosen
one for ``n_action_steps`` (:func:`propose` / :func:`commit`). Candidates, in the base's normalised action space:

* where a chunk is due, the first actions of ``k`` chunks sampled from the observation history (chunk 0 with the
  noise the base alone would draw, chunks 1..k-1 from the base's candidate generator);
* elsewhere, the action the executing chunk runs now, repeated ``k`` times;

each with its edited version from :class:`EditPolicy`. :meth:`EXPOAgent.select` executes the candidate of highest
ensemble-mean Q and, where a chunk is due, commits the chunk whose first action (or its edit) won. It is the one
selection both acting and the TD backup use (the backup's candidates are those proposed when the next state was
acted in, stored in the replay), and no value gradient ever reaches the denoising chain: only the edit policy and
the Q ensemble learn. With ``k = 1`` and a zero edit the policy executes the base's actions exactly.

Why chunks and not per-step candidates (the first version chose every control step among the executing action and
the first actions of k - 1 fresh chunks): a diffusion chunk is a consistent plan, and switching between samples
of different chunks every step broke it. On the 10-demonstration ``panda-pick-cube`` base (0.635 held-out success)
an untrained agent with 4 per-step candidates scored 0.47, the trained one 0.51; see ``benchmarks/README.md``.

Options measured on that base (``benchmarks/README.md``): ``q_level = "chunk"`` scores the ``n_action_steps``
actions a chunk executes instead of one step's action (:func:`propose_chunks` / :func:`commit_chunk`, Q-chunking's
backup over the chunk); ``pessimism`` scores by the ensemble's lower confidence bound; ``learn_alpha = False``
keeps the temperature fixed (the bounded edit sits at its entropy ceiling, :func:`max_edit_entropy`, far above
the default target, so a tuned temperature only decays).

Q and the edit policy read the policy group's observation history (what the robot measures), not the critic
group: the Q ensemble chooses the executed action at deployment too, where no privileged state exists, and a
selector trained on privileged state would make training-time success unreachable for the deployed policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.edit_policy import EditPolicy
from robot_rl.residual.q_ensemble import QEnsemble, QWithTarget, ensemble_score, redq_min


@dataclass
class EXPOConfig:
    """Hyper-parameters of the EXPO update (RLPD's critic recipe, SAC's temperature)."""

    num_q: int = 5
    """Q ensemble members."""
    target_subset: int = 2
    """Members in REDQ's random-subset minimum of the TD target."""
    hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the Q members and the edit policy (RLPD uses 256; 128 halves a CPU update)."""
    edit_scale: float = 0.2
    """Largest edit per dimension, normalised action units."""
    num_candidates: int = 4
    """Base chunks sampled where a chunk is due (elsewhere the executing action, repeated); each is also edited."""
    gamma: float = 0.99
    """Discount."""
    tau: float = 0.005
    """Polyak rate of the target ensemble."""
    q_lr: float = 3e-4
    """Q ensemble learning rate (Adam)."""
    edit_lr: float = 3e-4
    """Edit policy learning rate (Adam)."""
    alpha_lr: float = 3e-4
    """Temperature learning rate."""
    init_alpha: float = 0.1
    """Initial entropy temperature of the edit policy."""
    target_range: tuple[float, float] | None = None
    """Clip TD targets to this range (the values a return can take: [0, 1] for a sparse success reward that ends
    the episode), so the pessimistic subset minimum cannot drag unvisited values below it; None: no clip."""
    target_entropy: float | None = None
    """Edit entropy target (nats); None: ``act_dim * (log(edit_scale) - 1)``, SAC's ``-act_dim`` for the tanh
    variable expressed for the scaled edit. The most a bounded edit can have is ``act_dim * log(2 edit_scale)``
    (uniform on the bound); see :func:`max_edit_entropy`."""
    learn_alpha: bool = True
    """Tune the temperature toward ``target_entropy`` (SAC); False: it stays at ``init_alpha``."""
    pessimism: float = 0.0
    """Score candidates, and the edit's actor loss, by the ensemble mean less this many member standard deviations
    (a lower confidence bound); 0: the ensemble mean (EXPO's)."""
    select_margin: float = 0.0
    """0: execute the argmax of the score (EXPO's). > 0: a candidate replaces candidate 0 (the base's own chunk, or
    the action the executing chunk runs now) only where its advantage over it, member by member, has a mean above
    ``select_margin`` standard deviations over the members: the members must agree that it is better (their
    common offsets cancel in the difference, so this tells a ranking from the ensemble's noise). The backup
    uses the same rule."""
    q_level: Literal["step", "chunk"] = "step"
    """``step``: Q on one control step's action (candidates: first actions of chunks, the winner's later steps
    choose between its action and its edit); ``chunk``: Q on the ``n_action_steps`` actions a chunk executes, the
    edit edits them all, one choice per chunk, and the backup spans the chunk (rewards summed with discount,
    ``gamma ** n_action_steps`` on the next chunk's value: Q-chunking's SMDP backup)."""
    base_bc_every: int = 0
    """Vector env steps between optimiser steps of the base on its own imitation loss over successful data (the
    demonstrations + online episodes that succeeded, :mod:`robot_rl.residual.base_bc`); the candidates are then
    sampled from the updated base. 0: the base stays frozen."""
    base_bc_steps: int = 1
    """Optimiser steps of the base each time (EXPO's public port takes one per env step, i.e. ``num_envs`` per
    vector step)."""
    base_bc_lr: float = 1e-4
    """Learning rate (AdamW, constant) of the base's imitation steps."""
    base_bc_batch: int = 256
    """Windows (observation history, action chunk) per imitation step."""
    base_bc_capacity: int = 50_000
    """Online windows of successful episodes kept for the base (oldest dropped first)."""


@torch.no_grad()
def propose(base: FrozenChunkBase, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The candidates of this step (see the module docstring): ``(cands [N, k, A] normalised, due [D] env indices,
    chunks [D, k, horizon, A] raw)`` where ``chunks`` are the fresh chunks of the envs whose chunk is due. Draws the
    base's own noise exactly as :meth:`FrozenChunkBase.act` would for chunk 0; nothing else of ``base`` changes
    until :func:`commit`."""
    due, chunks = base.candidate_chunks(k)
    now = base.chunk[torch.arange(base.num_envs), base.phase]
    cands = base.normalize_action(now)[:, None].repeat(1, k, 1)
    if len(due):
        cands[due] = base.normalize_action(chunks[:, :, 0])
    return cands, due, chunks


@torch.no_grad()
def propose_chunks(base: FrozenChunkBase, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``q_level = "chunk"`` candidates: ``(cands [D, k, n_action_steps * A] normalised, due [D], chunks [D, k,
    horizon, A] raw)``, the executed part of ``k`` fresh chunks of the envs whose chunk is due (none elsewhere:
    one choice per chunk). Chunk 0 draws the base's own noise, as in :func:`propose`."""
    due, chunks = base.candidate_chunks(k)
    n = base.n_action_steps
    return base.normalize_action(chunks[:, :, :n]).flatten(2), due, chunks


def commit_chunk(base: FrozenChunkBase, due: torch.Tensor, chunks: torch.Tensor, index: torch.Tensor,
                 action: torch.Tensor) -> None:
    """Start, in the envs ``due``, the chunk whose candidate won (``index`` ``[D]``, ``action`` ``[D, n * A]``
    normalised from :meth:`EXPOAgent.select` on :func:`propose_chunks`' candidates): an unedited winner runs as
    sampled (bit for bit), an edited one runs its edited ``n_action_steps`` actions."""
    if len(due):
        n, d = base.n_action_steps, len(due)
        chosen = chunks[torch.arange(d), index % chunks.shape[1]].clone()
        edited = index >= chunks.shape[1]
        chosen[edited, :n] = base.unnormalize_action(action[edited].view(-1, n, base.action_dim))
        full = base.chunk.clone()
        full[due] = chosen
        base.act(full)


def max_edit_entropy(act_dim: int, scale: float) -> float:
    """The largest differential entropy (nats) of an edit bounded by ``scale`` per dimension: uniform on
    ``[-scale, scale]``, ``act_dim * log(2 scale)``. An edit entropy target above it cannot be reached, and a
    temperature tuned toward it only grows."""
    return act_dim * float(torch.tensor(2.0 * scale).log())


def margin_score(q: torch.Tensor, score: torch.Tensor, margin: float) -> torch.Tensor:
    """``score`` ``[B, C]`` with every candidate but 0 set to -inf where the members' advantages over candidate 0
    (``q`` ``[n, B, C]``) do not have a mean above ``margin`` standard deviations (see
    :attr:`EXPOConfig.select_margin`)."""
    adv = q - q[:, :, :1]
    agree = adv.mean(0) > margin * adv.std(0)
    agree[:, 0] = True
    return score.masked_fill(~agree, float("-inf"))


def commit(base: FrozenChunkBase, due: torch.Tensor, chunks: torch.Tensor, index: torch.Tensor) -> None:
    """Start, in the envs ``due``, the chunk whose candidate won (``index`` ``[N]`` from :meth:`EXPOAgent.select`:
    candidate ``index mod k``, edited or not), so that the base runs it for its ``n_action_steps``."""
    if len(due):
        full = base.chunk.clone()
        full[due] = chunks[torch.arange(len(due)), index[due] % chunks.shape[1]]
        base.act(full)


class EXPOAgent(nn.Module):
    """Q ensemble + edit policy + temperature, all reading ``obs`` ``[B, obs_dim]`` (raw; normalised inside by
    ``obs_norm = (mid, span)``) and normalised actions."""

    def __init__(self, cfg: EXPOConfig, obs_dim: int, act_dim: int,
                 obs_norm: tuple[torch.Tensor, torch.Tensor] | None = None, chunk_steps: int = 1) -> None:
        super().__init__()
        self.cfg, self.obs_dim, self.act_dim = cfg, obs_dim, act_dim
        self.discount = cfg.gamma ** chunk_steps  # a chunk-level Q backs up over the chunk's control steps
        norm = obs_norm or (None, None)
        self.critic = QWithTarget(QEnsemble(cfg.num_q, obs_dim, act_dim, cfg.hidden, *norm))
        self.edit = EditPolicy(obs_dim, act_dim, cfg.edit_scale, cfg.hidden, *norm)
        self.log_alpha = nn.Parameter(torch.tensor(float(torch.tensor(cfg.init_alpha).log())))
        self.target_entropy = (cfg.target_entropy if cfg.target_entropy is not None
                               else act_dim * (float(torch.tensor(cfg.edit_scale).log()) - 1.0))
        self.q_opt = torch.optim.Adam(self.critic.q.parameters(), lr=cfg.q_lr)
        self.edit_opt = torch.optim.Adam(self.edit.parameters(), lr=cfg.edit_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)

    # ------------------------------------------------------------------ the on-the-fly policy
    @torch.no_grad()
    def select(self, obs: torch.Tensor, base: torch.Tensor, stochastic: bool,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pick the argmax-Q action among ``base`` ``[B, k, A]`` and their edits.

        Returns ``(action [B, A], index [B], candidates [B, 2k, A])``: index < k is an unedited base candidate,
        index k + j the edit of candidate j. Edits are sampled (``stochastic``) or the mean edit. Ties go to the
        lowest index, so a constant Q executes the base action.
        """
        b, k, a = base.shape
        flat = base.reshape(b * k, a)
        eo = obs.repeat_interleave(k, dim=0)
        edited = self.edit.sample(eo, flat, generator)[0] if stochastic else self.edit(eo, flat)
        cands = torch.cat((base, edited.view(b, k, a)), dim=1)
        q = self.critic.q(obs.repeat_interleave(2 * k, dim=0), cands.reshape(b * 2 * k, a))
        score = ensemble_score(q, self.cfg.pessimism).view(b, 2 * k)
        if self.cfg.select_margin > 0:
            score = margin_score(q.view(-1, b, 2 * k), score, self.cfg.select_margin)
        idx = score.argmax(dim=1)
        return cands[torch.arange(b), idx], idx, cands

    # ------------------------------------------------------------------ updates
    @torch.no_grad()
    def td_target(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """``r + gamma (1 - terminated) Q_target(s', select(s'))`` with REDQ's subset minimum, ``[B]`` (``gamma **
        n_action_steps`` for a chunk-level Q, whose ``r`` is the chunk's discounted reward sum)."""
        k = self.cfg.num_candidates
        nxt = batch["next_cands"].view(-1, k, self.act_dim)
        a_next, _, _ = self.select(batch["next_obs"], nxt, True, generator)
        q_next = redq_min(self.critic.target(batch["next_obs"], a_next), self.cfg.target_subset, generator)
        y = batch["reward"] + self.discount * (1.0 - batch["terminated"]) * q_next
        return y if self.cfg.target_range is None else y.clamp(*self.cfg.target_range)

    def update(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, float]:
        """One critic, edit-policy and temperature step on ``batch`` (transitions with ``valid`` = 1 count)."""
        y = self.td_target(batch, generator)
        valid = batch["valid"].view(-1)
        q = self.critic.q(batch["obs"], batch["action"])
        q_loss = (((q - y) ** 2).mean(0) * valid).sum() / valid.sum().clamp(min=1.0)
        self.q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_opt.step()
        self.critic.update_target(self.cfg.tau)

        # the edit policy learns on one stored base candidate per state (a random one: cheaper than all k)
        cands = batch["cands"].view(len(y), self.cfg.num_candidates, self.act_dim)
        pick = torch.randint(0, self.cfg.num_candidates, (len(y),), generator=generator)
        edited, logp = self.edit.sample(batch["obs"], cands[torch.arange(len(y)), pick], generator)
        q_edit = ensemble_score(self.critic.q(batch["obs"], edited), self.cfg.pessimism)
        alpha = self.log_alpha.exp().detach()
        edit_loss = (alpha * logp - q_edit).mean()
        self.edit_opt.zero_grad(set_to_none=True)
        edit_loss.backward()
        self.edit_opt.step()
        if self.cfg.learn_alpha:
            alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
        self.critic.q.zero_grad(set_to_none=True)  # the edit loss reached Q's parameters; drop it
        return {"q_loss": q_loss.item(), "edit_loss": edit_loss.item(), "alpha": alpha.item(),
                "q_mean": q.mean().item(), "edit_logp": logp.mean().item()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"q_opt": self.q_opt, "edit_opt": self.edit_opt, "alpha_opt": self.alpha_opt}


def lift(task: str, base_run: Path, episodes: int, seed: int, work: Path, env_steps: int = 40_000,
         target_success: float = 0.95, eval_every: int = 4000, resume: bool = False,
         **overrides: Any) -> dict[str, Any]:
    """``benchmarks/residual_lift.py``'s EXPO figures: train on ``base_run`` until the in-training evaluation
    (selection seed, every ``eval_every`` env steps) reaches ``target_success`` or ``env_steps`` run out, then
    the held-out episodes. ``overrides``: further :class:`~robot_rl.runners.expo.EXPOTrainConfig` fields (``expo``
    as a dict of :class:`EXPOConfig` fields). ``resume``: continue the run ``work`` holds (its config, with
    ``env_steps`` and ``passes_in_a_row`` allowed to rise: :meth:`EXPORunner.load` ``extend``). ``env_steps``: env
    steps used (to the target when reached); ``train_wall_s``: the run's training time, a resumed run's included;
    ``make_policy``: a fresh evaluation policy of the trained agent (robustness rows)."""

    from robot_rl.runners.expo import CandidatePolicy, EXPORunner, EXPOTrainConfig
    from robot_rl.runners.resip import task_config
    from sim.registry import get_task

    expo_cfg = EXPOConfig(**{k: tuple(v) if isinstance(v, list) else v
                             for k, v in overrides.pop("expo", {}).items()})
    cfg = EXPOTrainConfig(base=str(base_run), seed=seed, env_steps=env_steps, eval_every=eval_every,
                          target_success=target_success, checkpoint_every=0, expo=expo_cfg, **overrides)
    checkpoint = work / "checkpoint"
    if resume and not checkpoint.with_suffix(".json").is_file():
        raise FileNotFoundError(f"{work}: no EXPO checkpoint to resume")
    runner = EXPORunner(cfg, work)
    resumed_at = None
    if resume:
        runner.load(checkpoint, extend=True)
        resumed_at = runner.env_steps
    out = runner.train()
    spec = get_task(task)
    def make_policy() -> CandidatePolicy:
        return CandidatePolicy(runner.base.policy, runner.agent, seed, cfg.wrench)

    res = spec.evaluate(make_policy(), task_config(task, cfg.wrench), spec.evaluation.config_cls(), episodes)
    return {"success": res["success"], "env_steps": out["env_steps"], "train_wall_s": round(out["train_time_s"], 1),
            "reached_target": out["env_steps_to_target"] is not None, "resumed_at": resumed_at,
            "make_policy": make_policy}
