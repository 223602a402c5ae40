"""EXPO on a frozen chunked base: collect with the on-the-fly argmax-Q policy, learn Q + edits off-policy.

``EXPORunner(cfg, run_dir).train()`` freezes the behaviour-cloning run ``cfg.base`` in a
:class:`~robot_rl.residual.base_policy.FrozenChunkBase`, fills the demonstration buffer from ``cfg.demos``
(default: the base's own dataset), pre-trains Q and the edit policy on it for ``pretrain_steps`` (no env
steps), then alternates one vectorised env step with ``updates_per_step`` gradient steps on half demonstration,
half online batches. Every ``eval_every`` env steps the deterministic policy (mean edits, argmax Q) runs the
task's in-training evaluation episodes (selection seed); training stops early once it reaches
``target_success``. Checkpoints hold the agent, optimisers, replay, base executor, env and generators, so a
resumed run reproduces an uninterrupted one.

With ``expo.base_bc_every`` > 0 the base keeps training on its imitation loss over the demonstrations and the
online episodes that succeeded (EXPO's base update, :mod:`robot_rl.residual.base_bc`): candidates, evaluation and
the export then use the updated base, which the checkpoint holds; otherwise it stays the BC run's policy.

The agent's shapes and the deterministic policy (:func:`make_agent`, :class:`CandidatePolicy`, shared with
evaluation and export) live in :mod:`robot_rl.runners.expo_policy` and are importable from here too.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm import tqdm

from robot_rl.checkpoint import load_checkpoint, load_optimizer, optimizer_tensors, save_checkpoint
from robot_rl.io import atomic_write_json
from robot_rl.logging import RunLogger
from robot_rl.residual.base_bc import load_trained_base, make_base_imitation
from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.expo import EXPOAgent, EXPOConfig, commit, commit_chunk, propose, propose_chunks
from robot_rl.residual.expo_inputs import WRENCH_DIM, agent_obs
from robot_rl.residual.expo_replay import ExpoReplay, PendingChunks, demo_transitions, transition_dims
from robot_rl.residual.reward import learner_reward
from robot_rl.runners.expo_policy import CandidatePolicy, make_agent, obs_norm_of, q_steps
from robot_rl.runners.resip import task_config, train_task_config
from sim.registry import get_task


@dataclass
class EXPOTrainConfig:
    """EXPO refinement of a behaviour-cloning run."""

    base: str = ""
    """Behaviour-cloning run directory (``robot-rl train dp-<task>|mse-<task>``) whose policy is the frozen base."""
    demos: str = ""
    """Demonstration dataset for the replay ("": the one the base was trained on; "none": no demonstrations)."""
    seed: int = 0
    """Seed of the envs, networks and sampling."""
    num_envs: int = 16
    """Parallel training envs."""
    env_steps: int = 100_000
    """Environment steps (summed over envs) to train for."""
    expo: EXPOConfig = field(default_factory=EXPOConfig)
    """Update-rule settings."""
    reward: Literal["sparse", "dense"] = "sparse"
    """``sparse``: 1 on the step that succeeds (TD targets clipped to [0, 1] unless ``expo.target_range`` is set);
    ``dense``: the task's shaped reward."""
    batch_size: int = 256
    """Transitions per gradient step."""
    demo_fraction: float = 0.5
    """Share of each batch drawn from the demonstrations (RLPD's symmetric sampling)."""
    updates_per_step: int = 1
    """Gradient steps per vectorised env step (num_envs transitions)."""
    pretrain_steps: int = 1000
    """Gradient steps on the demonstrations before the first env step."""
    replay_capacity: int = 300_000
    """Online transitions kept."""
    eval_every: int = 8_000
    """Env steps between in-training evaluations (selection seed; 0: none)."""
    selection_episodes: int = 100
    """Episodes per in-training evaluation (selection seed)."""
    target_success: float = 0.0
    """Stop once an in-training evaluation reaches this success rate (0: run all env_steps)."""
    passes_in_a_row: int = 1
    """In-training evaluations that must reach ``target_success`` in a row before the run stops (its
    ``env_steps_to_target`` is the last of them). 2 keeps a curve that swings between evaluations from stopping on
    one high draw."""
    checkpoint_every: int = 20_000
    """Env steps between checkpoints (0: only at the end)."""
    threads: int = 1
    """torch CPU threads."""
    wrench: bool = False
    """Q and the edit policy also read the env's ``wrench`` group (the wrist force/torque sensor, scaled by
    :data:`~robot_rl.residual.expo_inputs.WRENCH_SPAN`); the base keeps reading the policy group. The
    demonstrations hold no wrench, so it needs ``--demos none``."""
    train_task: dict[str, float] = field(default_factory=dict)
    """Fields of the task's config set for the training envs only (``--train-task NAME VALUE``, as ResiP's;
    evaluation and export keep the task as registered), e.g. ``beside_ring_fail_depth 0.01`` on panda-peg-insert."""
    fail_penalty: float = 0.0
    """Subtracted from the reward in the step an episode ends as a failure (terminated without success); with the
    sparse reward the TD targets are then clipped to ``[-fail_penalty, 1]``."""
    task: str = ""
    """Filled from the base run (the task its demonstrations come from)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EXPOTrainConfig:
        d = dict(d)
        e = {k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("expo", {}).items()}
        return cls(**d, expo=EXPOConfig(**e))


class EXPORunner:
    """Trains one EXPO agent; ``train(stop_at)`` stops early (resume tests)."""

    def __init__(self, cfg: EXPOTrainConfig, run_dir: str | Path) -> None:
        if not cfg.base:
            raise ValueError("EXPOTrainConfig.base: give the behaviour-cloning run to refine (--base RUN)")
        torch.set_num_threads(cfg.threads)
        base_cfg = json.loads((Path(cfg.base) / "config.json").read_text())
        cfg.task = cfg.task or base_cfg.get("task", "")
        if not cfg.task:
            raise ValueError(f"{cfg.base}: the base run names no task")
        demos = base_cfg.get("demos", "") if cfg.demos == "" else ("" if cfg.demos == "none" else cfg.demos)
        if cfg.wrench and demos:
            raise ValueError("--wrench: the demonstrations hold no wrench reading; give --demos none")
        if cfg.wrench and cfg.expo.q_level != "step":
            raise ValueError("--wrench is implemented for --expo.q-level step only")
        if cfg.fail_penalty < 0:
            raise ValueError(f"--fail-penalty is subtracted at a failure and must be >= 0, got {cfg.fail_penalty}")
        if cfg.passes_in_a_row < 1:
            raise ValueError(f"--passes-in-a-row: need >= 1, got {cfg.passes_in_a_row}")
        self.cfg, self.run_dir = cfg, Path(run_dir)
        torch.manual_seed(cfg.seed)
        self.base = FrozenChunkBase.from_run(cfg.base, cfg.num_envs, cfg.seed)
        self.task = get_task(cfg.task)
        self.task_cfg = task_config(cfg.task, cfg.wrench)  # evaluation: the task as registered (+ the sensor)
        self.env = self.task.make_env(train_task_config(cfg), seed=cfg.seed)
        first = self.env.reset(seed=cfg.seed)
        obs = first["policy"]
        self.wrench = first["wrench"].float().cpu().clone() if cfg.wrench else None
        if obs.shape[1] != self.base.obs_dim:
            raise ValueError(f"{cfg.task} observes {obs.shape[1]} dims, the base {self.base.obs_dim}")
        self.base.reset(obs)
        k, n_q = cfg.expo.num_candidates, q_steps(cfg.expo, self.base.policy)
        a = n_q * self.base.action_dim
        obs_dim = self.base.n_obs_steps * self.base.obs_dim + (WRENCH_DIM if cfg.wrench else 0)
        if cfg.reward == "sparse" and cfg.expo.target_range is None:
            cfg.expo.target_range = (-cfg.fail_penalty, 1.0)
        self.agent = make_agent(cfg.expo, self.base.policy, obs_norm_of(self.base, cfg.wrench), cfg.wrench)
        self.gen = torch.Generator().manual_seed(cfg.seed + 2)
        demo = (demo_transitions(demos, self.base, k, cfg.reward, torch.Generator().manual_seed(cfg.seed + 3),
                                 chunk_steps=n_q, gamma=cfg.expo.gamma) if demos else None)
        self.chunks = (PendingChunks(cfg.num_envs, obs_dim, a, k, cfg.expo.gamma) if cfg.expo.q_level == "chunk"
                       else None)
        n_demo = 0 if demo is None else len(demo["obs"])
        self.replay = ExpoReplay(transition_dims(obs_dim, a, k), cfg.replay_capacity, n_demo)
        if demo is not None:
            self.replay.demo.add(**demo)
        self.demos_used, self.demo_transitions = demos, n_demo
        self.base_bc = make_base_imitation(cfg.expo, cfg.num_envs, cfg.seed, base_cfg, self.base.policy, demos)
        self.bc_losses: list[float] = []
        self.env_steps = self.updates = self.episodes = self.successes = 0
        self.pretrained = False
        self.pending: dict[str, torch.Tensor] | None = None
        self.train_time = 0.0
        self.first_pass: int | None = None
        self.passes_in_a_row = 0  # in-training evaluations at or above target_success in a row, up to the latest
        self.last_eval: dict[str, float] = {}
        self.logger: RunLogger | None = None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.run_dir / "config.json", cfg.to_dict())

    # ------------------------------------------------------------------ collection
    @torch.no_grad()
    def collect_step(self) -> None:
        """One control step of every env with the stochastic on-the-fly policy; the previous step's transition
        is stored once this step's candidates (its next-state candidates) are known."""
        if self.chunks is not None:
            return self._collect_chunk_step()
        base = self.base
        obs = agent_obs(base.history, self.wrench)
        cands, due, chunks = propose(base, self.cfg.expo.num_candidates)
        if self.pending is not None:
            self.replay.online.add(**self.pending, next_cands=cands.flatten(1))
        action, idx, _ = self.agent.select(obs, cands, stochastic=True, generator=self.gen)
        commit(base, due, chunks, idx)
        executed = base.unnormalize_action(action)
        nxt, reward, terminated, truncated, info = self.env.step(executed)
        done, success = info["done_mask"].cpu(), info["success"].cpu()
        self._record(executed, done, success)
        final = info["final_obs"]["policy"].float().cpu()
        next_hist = torch.cat((base.history[:, 1:], final[:, None]), dim=1)
        final_wrench = info["final_obs"]["wrench"].float().cpu() if self.cfg.wrench else None
        r = self._reward(reward, terminated, success)
        self.pending = {"obs": obs, "action": action, "cands": cands.flatten(1), "reward": r,
                        "terminated": terminated.float().cpu(), "next_obs": agent_obs(next_hist, final_wrench),
                        "valid": (~truncated.cpu()).float()[:, None]}
        base.step(nxt["policy"].float().cpu(), done)
        if self.cfg.wrench:
            self.wrench = nxt["wrench"].float().cpu().clone()
        self.env_steps += self.cfg.num_envs
        self.episodes += int(done.sum())
        self.successes += int((done & success).sum())

    def _reward(self, reward: torch.Tensor, terminated: torch.Tensor, success: torch.Tensor) -> torch.Tensor:
        """The step's reward under this run's ``reward`` and ``fail_penalty`` (:func:`learner_reward`)."""
        return learner_reward(self.cfg.reward, reward, terminated, success, self.cfg.fail_penalty)

    @torch.no_grad()
    def _collect_chunk_step(self) -> None:
        """:meth:`collect_step` with a chunk-level Q: envs due a chunk close their previous chunk's transition
        (this state and its candidates are its next ones) and choose the next chunk; every env runs its chunk."""
        base, pend = self.base, self.chunks
        assert pend is not None
        obs = base.history.flatten(1)
        cands, due, chunks = propose_chunks(base, self.cfg.expo.num_candidates)
        if len(due):
            self._store(pend.close(due, obs[due], cands.flatten(1)))
            action, idx, _ = self.agent.select(obs[due], cands, stochastic=True, generator=self.gen)
            commit_chunk(base, due, chunks, idx, action)
            pend.start(due, obs[due], action, cands.flatten(1))
        executed = base.act()
        nxt, reward, terminated, truncated, info = self.env.step(executed)
        done, success = info["done_mask"].cpu(), info["success"].cpu()
        self._record(executed, done, success)
        pend.add_reward(self._reward(reward, terminated, success))
        self._store(pend.end(done, terminated.cpu().bool(), truncated.cpu().bool()))
        base.step(nxt["policy"].float().cpu(), done)
        self.env_steps += self.cfg.num_envs
        self.episodes += int(done.sum())
        self.successes += int((done & success).sum())

    def _record(self, executed: torch.Tensor, done: torch.Tensor, success: torch.Tensor) -> None:
        """The step's observation and executed raw action join the envs' episodes for the base's imitation."""
        if self.base_bc is not None:
            self.base_bc.pool.record(self.base.history[:, -1], executed, done, success)

    def _store(self, transitions: dict[str, torch.Tensor] | None) -> None:
        if transitions is not None:
            self.replay.online.add(**transitions)

    def update(self) -> dict[str, float]:
        self.updates += 1
        batch = self.replay.sample(self.cfg.batch_size, self.cfg.demo_fraction, self.gen)
        return self.agent.update(batch, self.gen)

    def evaluate(self, episodes: int, selection: bool = True) -> dict[str, Any]:
        """The deterministic policy on the task's evaluation episodes (selection or held-out seed)."""
        ecfg = self.task.evaluation.config_cls()
        policy = CandidatePolicy(self.base.policy, self.agent, self.cfg.seed, self.cfg.wrench)
        return self.task.evaluate(policy, self.task_cfg, ecfg, episodes=episodes, selection=selection)

    # ------------------------------------------------------------------ loop
    def train(self, stop_at: int | None = None) -> dict[str, Any]:
        cfg = self.cfg
        total = cfg.env_steps if stop_at is None else min(stop_at, cfg.env_steps)
        self.logger = self.logger or RunLogger(self.run_dir)
        self.logger.truncate_after(self.env_steps)
        t0 = time.perf_counter()
        if not self.pretrained:
            for _ in tqdm(range(cfg.pretrain_steps if self.replay.demo.size else 0), desc="pretrain on demos",
                          mininterval=1.0):
                self.update()
            self.pretrained = True
        bar = tqdm(total=cfg.env_steps, initial=self.env_steps, unit="step", mininterval=1.0, desc="expo")
        stats: list[dict[str, float]] = []
        while self.env_steps < total and self.first_pass is None:
            self.collect_step()
            if self.replay.online.size or self.replay.demo.size:  # without demonstrations, the first step stores none
                stats += [self.update() for _ in range(cfg.updates_per_step)]
            if self.base_bc is not None and (self.env_steps // cfg.num_envs) % cfg.expo.base_bc_every == 0:
                for _ in range(cfg.expo.base_bc_steps):
                    loss = self.base_bc.step()
                    self.bc_losses += [] if loss is None else [loss]
            bar.update(cfg.num_envs)
            if cfg.eval_every and self.env_steps % cfg.eval_every < cfg.num_envs:
                self._log(stats, self._eval_row())
                stats = []
            if cfg.checkpoint_every and self.env_steps % cfg.checkpoint_every < cfg.num_envs:
                self.train_time += time.perf_counter() - t0
                t0 = time.perf_counter()
                self.save()
        bar.close()
        self.train_time += time.perf_counter() - t0
        self.save()
        return {"env_steps": self.env_steps, "updates": self.updates, "train_time_s": self.train_time,
                "env_steps_to_target": self.first_pass, "last_eval": self.last_eval}

    def _eval_row(self) -> dict[str, float]:
        res = self.evaluate(self.cfg.selection_episodes)
        self.last_eval = {"env_steps": self.env_steps, "success": res["success"],
                          "mean_episode_length": res["mean_episode_length"]}
        passed = bool(self.cfg.target_success) and res["success"] >= self.cfg.target_success
        self.passes_in_a_row = self.passes_in_a_row + 1 if passed else 0
        if self.first_pass is None and self.passes_in_a_row >= self.cfg.passes_in_a_row:
            self.first_pass = self.env_steps
        return {"eval_success": res["success"], "eval_length": res["mean_episode_length"]}

    def _log(self, stats: list[dict[str, float]], extra: dict[str, float]) -> None:
        row = {k: sum(s[k] for s in stats) / len(stats) for k in stats[0]} if stats else {}
        row.update(extra)
        row["train_success"] = self.successes / max(self.episodes, 1)
        if self.base_bc is not None:
            row.update(base_bc_loss=sum(self.bc_losses) / max(len(self.bc_losses), 1),
                       base_bc_windows=self.base_bc.pool.size)
            self.bc_losses = []
        if self.logger:
            self.logger.log(self.env_steps, row)

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> Path:
        tensors = {f"agent.{k}": v for k, v in self.agent.state_dict().items()}
        opt_meta = {}
        for name, opt in self.agent.optimizers().items():
            t, opt_meta[name] = optimizer_tensors(name, opt)
            tensors.update(t)
        tensors.update({f"replay.{k}": v for k, v in self.replay.state_dict().items()})
        tensors.update({f"base.{k}": v for k, v in self.base.state_dict().items()})
        tensors.update(self.env.state_dict())
        tensors["runner.gen"] = self.gen.get_state()
        if self.wrench is not None:
            tensors["runner.wrench"] = self.wrench
        if self.pending is not None:
            tensors.update({f"pending.{k}": v for k, v in self.pending.items()})
        if self.chunks is not None:
            tensors.update({f"chunks.{k}": v for k, v in self.chunks.state_dict().items()})
        bc_meta = None
        if self.base_bc is not None:
            bc_tensors, bc_meta = self.base_bc.state()
            tensors.update({f"base_bc.{k}": v for k, v in bc_tensors.items()})
        meta = {"env_steps": self.env_steps, "updates": self.updates, "episodes": self.episodes,
                "successes": self.successes, "pretrained": self.pretrained, "train_time_s": self.train_time,
                "first_pass": self.first_pass, "passes_in_a_row": self.passes_in_a_row,
                "last_eval": self.last_eval, "optimizers": opt_meta,
                "config": self.cfg.to_dict(), "demos": self.demos_used, "demo_transitions": self.demo_transitions,
                "base_bc": bc_meta}
        path = self.run_dir / "checkpoint"
        save_checkpoint(path, tensors, meta)
        return path

    def load(self, path: str | Path, extend: bool = False) -> None:
        """Resume from a checkpoint written by :meth:`save` (same config). ``extend``: this run's config may also
        raise ``env_steps`` and ``passes_in_a_row``, so a run stopped at its target goes on under the stricter rule
        exactly as an uninterrupted run with it would."""
        tensors, meta = load_checkpoint(Path(path))
        check_resume_config(meta["config"], self.cfg.to_dict(), extend)
        self.agent.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("agent.")})
        for name, opt in self.agent.optimizers().items():
            load_optimizer(name, opt, tensors, meta["optimizers"][name])
        self.replay.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("replay.")})
        self.base.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("base.")})
        self.env.load_state_dict({k: v for k, v in tensors.items() if k.startswith("env.")})
        self.gen.set_state(tensors["runner.gen"])
        if self.cfg.wrench:
            self.wrench = tensors["runner.wrench"].clone()
        pending = {k[8:]: v for k, v in tensors.items() if k.startswith("pending.")}
        self.pending = pending or None
        if self.chunks is not None:
            self.chunks.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("chunks.")})
        if self.base_bc is not None:
            self.base_bc.load({k[8:]: v for k, v in tensors.items() if k.startswith("base_bc.")}, meta["base_bc"])
        for key in ("env_steps", "updates", "episodes", "successes", "pretrained", "train_time"):
            setattr(self, key, meta[key if key != "train_time" else "train_time_s"])
        self.last_eval = meta["last_eval"]
        # Checkpoints from before passes_in_a_row stopped at the first pass, so their count is 1 there, else 0.
        self.passes_in_a_row = meta.get("passes_in_a_row", int(meta["first_pass"] is not None))
        passed = self.passes_in_a_row >= self.cfg.passes_in_a_row
        self.first_pass = meta["first_pass"] if passed else None


def check_resume_config(saved: dict[str, Any], now: dict[str, Any], extend: bool) -> None:
    """Raise unless a checkpoint saved under ``saved`` can continue under ``now``: the same config (``threads`` and
    ``checkpoint_every`` may differ), or with ``extend`` one that also raises ``env_steps`` and ``passes_in_a_row``
    (a stricter stop, same target)."""
    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out |= flat(v, f"{prefix}{k}.") if isinstance(v, dict) and k != "train_task" else {prefix + k: v}
        return out

    now, saved = (flat(json.loads(json.dumps(d))) for d in (now, saved))  # tuples as the JSON holds them
    may_rise = ("env_steps", "passes_in_a_row") if extend else ()
    saved = {"passes_in_a_row": 1} | saved  # checkpoints from before the field stopped at the first pass
    # A field the saved config lacks did not exist then: its default keeps the old behaviour.
    for key in sorted(set(saved) - {"threads", "checkpoint_every"}):  # how it runs, not what it learns
        a, b = saved[key], now.get(key)
        if a != b and not (key in may_rise and b > a):
            raise ValueError(f"the checkpoint was saved with {key}={a!r}, this run has {key}={b!r}"
                             + ("" if key in may_rise else " (a resume keeps the saved config)"))


def load_expo(run_dir: str | Path) -> tuple[EXPOTrainConfig, Any, EXPOAgent, dict[str, Any]]:
    """``(config, base policy, agent in eval mode, checkpoint metadata)`` of an EXPO run; the base is the BC run's
    policy, or the one trained on successful data where ``expo.base_bc_every`` > 0."""
    from robot_rl.runners.bc import load_policy

    run_dir = Path(run_dir)
    tensors, meta = load_checkpoint(run_dir / "checkpoint")
    cfg = EXPOTrainConfig.from_dict(meta["config"])
    policy, _ = load_policy(cfg.base)
    if meta.get("base_bc"):
        load_trained_base(policy, {k[8:]: v for k, v in tensors.items() if k.startswith("base_bc.")}, meta["base_bc"])
    agent = make_agent(cfg.expo, policy, wrench=cfg.wrench)
    agent.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("agent.")})
    return cfg, policy, agent.eval(), meta
