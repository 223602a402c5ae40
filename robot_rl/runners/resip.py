"""The ResiP loop: roll out base + residual in the batched env, GAE, PPO update, log, checkpoint, evaluate.

``ResiPRunner(cfg, run_dir).train()`` writes ``config.json``, ``metrics.csv`` + TensorBoard events and an atomic
``checkpoint.safetensors``/``.json`` (networks, optimisers, env, base executor and RNG state; with ``keep_best``
the actor of the best in-training evaluation as ``best_actor.*``); :meth:`ResiPRunner.load` continues to exactly
the numbers of an uninterrupted run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from robot_rl.algorithms.ppo import compute_gae
from robot_rl.checkpoint import load_checkpoint, load_optimizer, optimizer_tensors, save_checkpoint
from robot_rl.io import atomic_write_json
from robot_rl.logging import RunLogger
from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.history import ResidualHistory
from robot_rl.residual.resip import WRENCH_DIM, ResidualExecutor, ResiP, ResiPConfig
from robot_rl.residual.reward import learner_reward
from sim.core import BatchedEnv
from sim.registry import get_task


def base_task(base_run: str | Path) -> str:
    """The task a behaviour-cloning run was trained for ("" if it names none)."""
    path = Path(base_run) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (--base must be a behaviour-cloning run directory)")
    return json.loads(path.read_text()).get("task", "")


class ResiPRunner:
    """Trains one residual actor on a frozen base; ``env``/``base`` given: tests and custom tasks."""

    def __init__(self, cfg: ResiPConfig, run_dir: str | Path, env: BatchedEnv | None = None,
                 base: FrozenChunkBase | None = None) -> None:
        cfg.check()
        torch.set_num_threads(cfg.threads)
        self.cfg, self.run_dir = cfg, Path(run_dir)
        if not cfg.task and env is None:
            cfg.task = base_task(cfg.base)
            if not cfg.task:
                raise ValueError(f"{cfg.base}: the base run names no task; give --task")
        self.base = base if base is not None else FrozenChunkBase.from_run(cfg.base, cfg.num_envs, cfg.seed)
        if env is None:
            spec = get_task(cfg.task)
            env = spec.make_env(train_task_config(cfg), seed=cfg.seed)
        self.env = env
        if cfg.wrench and env.obs_dims.get("wrench") != WRENCH_DIM:
            raise ValueError(f"--wrench needs an env with a [{WRENCH_DIM}] 'wrench' observation group; this one has "
                             f"groups {env.obs_dims}")
        if (env.num_envs, env.obs_dims["policy"], env.action_dim) != (self.base.num_envs, self.base.obs_dim,
                                                                       self.base.action_dim):
            raise ValueError(f"the env has {env.num_envs} envs, policy observation {env.obs_dims['policy']} and action "
                             f"{env.action_dim}; the base executor {self.base.num_envs}, {self.base.obs_dim} and "
                             f"{self.base.action_dim}")
        torch.manual_seed(cfg.seed)  # network initialisation
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.algo = ResiP(cfg, self.base, env.obs_dims["critic"], self.gen)
        self.obs = {k: v.detach().cpu().clone() for k, v in env.reset(seed=cfg.seed).items()}
        self.base.reset(self.obs["policy"])
        self.history = None
        if cfg.history:
            self.history = ResidualHistory(cfg.num_envs, cfg.history, self.base.obs_dim, self.base.action_dim)
            self.history.reset(self.obs["policy"])
        self.env_steps = self.iterations = 0
        self.train_time = self.eval_time = 0.0
        self.episodes = torch.zeros(2, dtype=torch.float64)  # ended episodes, successes since the last log row
        self.best: dict[str, Any] | None = None  # keep_best: the best in-training evaluation so far
        self.best_actor: dict[str, torch.Tensor] | None = None
        self.logger: RunLogger | None = None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.run_dir / "config.json", cfg.to_dict())

    @property
    def actor(self):
        return self.algo.actor

    def kept_actor(self):
        """The run's residual: with ``keep_best`` a copy of the actor of the best in-training evaluation (the
        training actor itself if none ran), else the training actor."""
        if self.best_actor is None:
            return self.actor
        actor = copy.deepcopy(self.actor)
        actor.load_state_dict(self.best_actor)
        return actor

    def _iteration(self) -> dict[str, float]:
        env, algo, base, cfg = self.env, self.algo, self.base, self.cfg
        keys = ("obs", "base_action", "residual", "logp", "critic_obs", "values", "rewards", "dones", "bootstrap")
        buf: dict[str, list[torch.Tensor]] = {k: [] for k in keys + ("history", "wrench")}
        for _ in range(cfg.steps_per_env):
            pol, cri = self.obs["policy"], self.obs["critic"]
            hist = None if self.history is None else self.history.window
            algo.critic[0].update(cri)
            wrench = self.obs["wrench"] if cfg.wrench else None
            algo.actor.update_input_stats(pol, hist, wrench)
            a_base = base.act()
            a_base_n = base.normalize_action(a_base)
            r, logp = algo.act(pol, a_base_n, hist, wrench)
            action = algo.actor.compose_raw(a_base, r)
            value = algo.value(cri)
            obs, reward, terminated, truncated, info = env.step(action)
            obs = {k: v.detach().cpu().clone() for k, v in obs.items()}
            done = (terminated | truncated).cpu()
            success = info["success"].cpu().bool() if "success" in info else torch.zeros_like(done)
            rew = learner_reward(cfg.reward, reward, terminated, success, cfg.fail_penalty)
            final_v = algo.value(info["final_obs"]["critic"].cpu()) if bool(truncated.any()) else torch.zeros_like(rew)
            base.step(obs["policy"], done)
            if self.history is not None:
                self.history.push(pol, action)
                self.history.reset(obs["policy"], done)
                buf["history"].append(hist.clone())
            if wrench is not None:
                buf["wrench"].append(wrench)
            for k, v in zip(keys, (pol, a_base_n, r, logp, cri, value, rew, done.float(),
                                   torch.where(truncated.cpu(), final_v, 0.0)), strict=True):
                buf[k].append(v)
            self.episodes += torch.tensor([float(done.sum()), float((done & success).sum())], dtype=torch.float64)
            self.obs = obs
            self.env_steps += env.num_envs
        data = {k: torch.stack(v) for k, v in buf.items() if v}
        adv, ret = compute_gae(data["rewards"], data["values"], algo.value(self.obs["critic"]), data["dones"],
                               data["bootstrap"], cfg.gamma, cfg.lam)
        flat = {k: data[k].flatten(0, 1) for k in ("obs", "base_action", "residual", "logp", "critic_obs", "history",
                                                   "wrench") if k in data}
        flat.update(advantages=adv.flatten(), returns=ret.flatten())
        out = algo.update(flat)
        out["reward"] = float(data["rewards"].mean())
        self.iterations += 1
        return out

    def train(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train until ``total_env_steps`` (or ``stop_at`` env steps, for resume tests)."""
        cfg = self.cfg
        total = cfg.total_env_steps if stop_at is None else min(stop_at, cfg.total_env_steps)
        self.logger = self.logger or RunLogger(self.run_dir)
        self.logger.truncate_after(self.env_steps)

        def next_multiple(every: int) -> int | None:
            return (self.env_steps // every + 1) * every if every else None

        next_log, next_eval, next_ckpt = (next_multiple(e) for e in (cfg.log_every, cfg.eval_every,
                                                                      cfg.checkpoint_every))
        losses: dict[str, list[float]] = {}
        bar = tqdm(total=total, initial=self.env_steps, unit="step", unit_scale=True, dynamic_ncols=True,
                   desc=f"resip {cfg.task or 'env'} seed {cfg.seed}", mininterval=1.0)
        while self.env_steps < total:
            t0, before = time.perf_counter(), self.env_steps
            for k, v in self._iteration().items():
                losses.setdefault(k, []).append(v)
            self.train_time += time.perf_counter() - t0
            bar.update(self.env_steps - before)
            if next_log is not None and self.env_steps >= next_log:
                next_log += cfg.log_every
                row = {k: sum(v) / len(v) for k, v in losses.items()} | {"train_time_s": self.train_time}
                if self.episodes[0] > 0:
                    row["train_success"] = float(self.episodes[1] / self.episodes[0])
                self.logger.log(self.env_steps, row)
                bar.set_postfix(success=f"{row.get('train_success', float('nan')):.2f}")
                losses, self.episodes = {}, torch.zeros(2, dtype=torch.float64)
            if next_eval is not None and self.env_steps >= next_eval and cfg.task:
                next_eval += cfg.eval_every
                t1 = time.perf_counter()
                r = self.evaluate(cfg.eval_episodes, selection=True)
                self.eval_time += time.perf_counter() - t1
                self.logger.log(self.env_steps, {"eval_success": r["success"], "train_time_s": self.train_time})
                if cfg.keep_best and (self.best is None or r["success"] > self.best["success"]):
                    self.best = {"success": float(r["success"]), "episodes": r["episodes"], "seed": r["seed"],
                                 "env_steps": self.env_steps, "train_time_s": self.train_time}
                    self.best_actor = {k: v.detach().clone() for k, v in self.actor.state_dict().items()}
            if next_ckpt is not None and self.env_steps >= next_ckpt:
                next_ckpt += cfg.checkpoint_every
                self.save()
        bar.close()
        self.save()
        return {"env_steps": self.env_steps, "train_time_s": self.train_time, "eval_time_s": self.eval_time,
                "best": self.best}

    def evaluate(self, episodes: int, selection: bool = False, seed: int | None = None, residual: bool = True,
                 noise_seed: int | None = None) -> dict[str, Any]:
        """Success of base + residual (``residual=False``: the base alone) on the task's held-out episodes
        (``selection``: the in-training evaluation episodes), the base's noise from ``noise_seed``."""
        return evaluate_residual(self.cfg.task, self.base.policy, self.actor if residual else None, episodes,
                                 selection, seed, self.cfg.seed if noise_seed is None else noise_seed)

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> Path:
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {"env_steps": self.env_steps, "iterations": self.iterations,
                                "train_time_s": self.train_time, "eval_time_s": self.eval_time, "optimizers": {},
                                "config": self.cfg.to_dict(), "best": self.best}
        for name, module in self.algo.modules().items():
            tensors.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
        for name, opt in self.algo.optimizers().items():
            t, m = optimizer_tensors(name, opt)
            tensors.update(t)
            meta["optimizers"][name] = m
        tensors.update(self.env.state_dict())
        tensors.update({f"obs.{k}": v for k, v in self.obs.items()})
        tensors.update({f"base.{k}": v for k, v in self.base.state_dict().items()})
        if self.history is not None:
            tensors.update({f"history.{k}": v for k, v in self.history.state_dict().items()})
        if self.best_actor is not None:
            tensors.update({f"best_actor.{k}": v for k, v in self.best_actor.items()})
        tensors["runner.gen"] = self.gen.get_state()
        tensors["runner.episodes"] = self.episodes.clone()
        path = self.run_dir / "checkpoint"
        save_checkpoint(path, tensors, meta)
        return path

    def load(self, path: str | Path) -> None:
        """Continue from a checkpoint written by :meth:`save` (same config)."""
        tensors, meta = load_checkpoint(Path(path))
        for name, module in self.algo.modules().items():
            p = f"{name}."
            module.load_state_dict({k[len(p):]: v for k, v in tensors.items() if k.startswith(p)})
        for name, opt in self.algo.optimizers().items():
            load_optimizer(name, opt, tensors, meta["optimizers"][name])
        self.env.load_state_dict(tensors)
        self.obs = {k[4:]: v.clone() for k, v in tensors.items() if k.startswith("obs.")}
        self.base.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("base.")})
        if self.history is not None:
            self.history.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("history.")})
        self.best = meta.get("best")
        self.best_actor = {k[11:]: v.clone() for k, v in tensors.items() if k.startswith("best_actor.")} or None
        self.gen.set_state(tensors["runner.gen"])
        self.episodes = tensors["runner.episodes"].clone()
        self.env_steps, self.iterations = meta["env_steps"], meta["iterations"]
        self.train_time, self.eval_time = meta["train_time_s"], meta["eval_time_s"]


def evaluate_residual(task: str, policy: Any, actor: Any, episodes: int, selection: bool = False,
                      seed: int | None = None, noise_seed: int = 0, impl: str | None = None,
                      record: int = 0) -> dict[str, Any]:
    """Success protocol of ``task`` for the frozen ``policy`` plus ``actor``'s mean residual (None: base only);
    one episode per env, the base sampled on its chunk schedule with noise from ``noise_seed``; ``impl``: the
    simulator backend (None: the task's reference backend); ``record``: trace the first episodes
    (``result["signals"]``)."""
    spec = get_task(task)
    ecfg = spec.evaluation.config_cls()
    base = FrozenChunkBase(policy, episodes, noise_seed)
    task_cfg = task_config(task, actor is not None and actor.wrench_dim > 0)
    return spec.evaluate(ResidualExecutor(base, actor), task_cfg, ecfg, episodes, selection=selection,
                         seed=seed, impl=impl, record=record)


def train_task_config(cfg: Any) -> Any:
    """The config of ``cfg``'s training envs (a :class:`ResiPConfig` or an EXPO run's config: ``task``, ``wrench``,
    ``num_envs``, ``train_task``): the task's, with the wrist sensor if the learner reads it and the fields of
    ``cfg.train_task``."""
    fields = {f.name for f in dataclasses.fields(get_task(cfg.task).config_cls)}
    unknown = sorted(set(cfg.train_task) - fields)
    if unknown:
        raise ValueError(f"--train-task: {cfg.task} has no config field {unknown[0]!r}")
    return task_config(cfg.task, cfg.wrench, num_envs=cfg.num_envs, device="cpu", **cfg.train_task)


def task_config(task: str, wrench: bool, **overrides: Any) -> Any:
    """The task's default config with ``overrides``; ``wrench``: with the wrist force/torque sensor enabled."""
    cfg = replace(get_task(task).config_cls(), **overrides)
    if not wrench:
        return cfg
    from sim.arm.config import with_wrist_ft

    return with_wrist_ft(cfg)
