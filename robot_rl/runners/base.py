"""What every runner shares: run directory, env, logging, evaluation, checkpoints."""

from __future__ import annotations

import copy
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from robot_rl import distributed
from robot_rl.checkpoint import load_checkpoint, load_optimizer, optimizer_tensors, save_checkpoint
from robot_rl.config import TrainConfig
from robot_rl.curriculum import Curriculum
from robot_rl.io import atomic_write_text
from robot_rl.logging import RunLogger
from robot_rl.models.recurrent import GRUActor, StatefulPolicy
from sim.core import BatchedEnv
from sim.registry import get_task


def make_env(cfg: TrainConfig, seed: int | None = None) -> BatchedEnv:
    """The training env of ``cfg``'s task (apg differentiates through the simulator: a differentiable env),
    seeded ``seed`` (default ``cfg.seed``; a rank of a distributed run passes its own). ``apg.episode_length``
    > 0 truncates its episodes there (training only)."""
    task = replace(cfg.task, device=cfg.device)
    if cfg.algorithm == "apg" and cfg.apg.episode_length:
        if cfg.apg.episode_length < 0 or not hasattr(task, "episode_length"):
            raise ValueError(f"apg.episode_length: need >= 0 and a task with episodes, got {cfg.apg.episode_length}")
        task = replace(task, episode_length=cfg.apg.episode_length)
    return get_task(cfg.task_name).make_env(task,
                                            seed=cfg.seed if seed is None else seed,
                                            impl=cfg.env_impl, differentiable=cfg.algorithm == "apg")


def selection_bars(evaluation: Any, margin: float) -> Any:
    """``evaluation`` with every ``*_bar`` field raised by ``margin`` (the bars an in-training evaluation must pass;
    ``TrainConfig.selection_margin``)."""
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"selection_margin: need 0 <= margin < 1, got {margin}")
    bars = [f.name for f in fields(evaluation) if f.name.endswith("_bar")]
    if margin and not bars:
        raise ValueError(f"selection_margin: {type(evaluation).__name__} has no *_bar field to raise")
    return replace(evaluation, **{name: getattr(evaluation, name) + margin for name in bars})


class Runner:
    """Base class; subclasses implement ``_iteration`` (collect + update once) and, if they keep more state
    than the networks, ``_extra_state``/``_load_extra_state``.

    Under ``torchrun`` (:mod:`robot_rl.distributed`) every rank runs one runner on envs of its own seed;
    ``env_steps`` counts the steps of all ranks (so ``total_env_steps``, logging, evaluation and checkpoint
    intervals are the group's), only rank 0 writes the run directory, and its checkpoint holds every rank's
    envs, generators and buffers."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, env: BatchedEnv | None = None) -> None:
        if cfg.evaluation.seed == cfg.evaluation.selection_seed:
            raise ValueError(f"evaluation.seed and evaluation.selection_seed are both {cfg.evaluation.seed}: the "
                             "held-out episodes must differ from those that select the policy")
        if cfg.passes_in_a_row < 1:
            raise ValueError(f"passes_in_a_row: need >= 1, got {cfg.passes_in_a_row}")
        self.selection_bars = selection_bars(cfg.evaluation, cfg.selection_margin)
        if cfg.actor_average_halflife < 0:
            raise ValueError(f"actor_average_halflife: need >= 0 env steps (0: off), got {cfg.actor_average_halflife}")
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)  # network initialisation
        self.cfg = cfg
        self.dist = distributed.info()
        self.world = self.dist.world_size
        self.run_dir = Path(run_dir)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        seed = distributed.rank_seed(cfg.seed, self.dist.rank)
        self.gen = torch.Generator(device=cfg.device).manual_seed(seed + 1)
        self.env = env if env is not None else make_env(cfg, seed)
        self.task = get_task(cfg.task_name)
        weights = self.env.reward_weights
        if cfg.curriculum.every > 0 and weights is None:
            raise self.env.unsupported("reward weights, which the curriculum changes (set --curriculum.every 0)")
        self.curriculum = Curriculum(cfg.curriculum, weights)
        self.obs = {k: v.clone() for k, v in self.env.reset(seed=seed).items()}
        self.env_steps = 0
        self.iteration_limit = 0
        """Env steps an ``_iteration`` may reach (the train loop's next log, evaluation, checkpoint or stop); a
        runner that takes several steps per iteration stops at the first step at or past it."""
        self.train_time = 0.0
        self.eval_time = 0.0
        self.first_pass: dict[str, Any] | None = None
        self.passes_in_a_row = 0  # passing in-training evaluations in a row, up to the latest
        self.best: dict[str, Any] | None = None  # keep_best: the best in-training evaluation so far
        self.best_actor: dict[str, torch.Tensor] = {}
        self.actor_average: torch.nn.Module | None = None
        """``actor_average_halflife``: the moving average of the actor's weights (built at the first iteration)."""
        self.ep_return = torch.zeros(self.env.num_envs, device=self.env.device)
        self.ep_length = torch.zeros(self.env.num_envs, device=self.env.device)
        self.recent: dict[str, list[float]] = {"return": [], "length": []}
        self.logger: RunLogger | None = None
        if self.dist.is_main:
            atomic_write_text(self.run_dir / "config.json", cfg.to_json())

    # subclasses ---------------------------------------------------------------
    algo: Any

    def _iteration(self) -> dict[str, float]:
        raise NotImplementedError

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {}

    def _load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        pass

    # shared -------------------------------------------------------------------
    @property
    def actor(self) -> torch.nn.Module:
        return self.algo.actor

    def _track_episodes(self, reward: torch.Tensor, done: torch.Tensor) -> None:
        if (self.ep_return.device.type == "cpu" and reward.device.type == "cpu" and not reward.requires_grad
                and reward.dtype == self.ep_return.dtype):  # numpy on the same memory: same sums, no dispatch
            ret, length, d = self.ep_return.numpy(), self.ep_length.numpy(), done.numpy()
            ret += reward.numpy()
            length += 1
            if d.any():
                self.recent["return"] += ret[d].tolist()
                self.recent["length"] += length[d].tolist()
                ret[d] = 0
                length[d] = 0
            return
        self.ep_return += reward
        self.ep_length += 1
        if bool(done.any()):
            self.recent["return"] += self.ep_return[done].tolist()
            self.recent["length"] += self.ep_length[done].tolist()
            self.ep_return[done] = 0
            self.ep_length[done] = 0

    def _apply_curriculum(self, buffer_recompute=None) -> None:
        weights = self.curriculum.update(self.env_steps)
        if weights is not None:
            self.env.set_reward_weights(weights)
            if buffer_recompute is not None:
                buffer_recompute(self.env.reward_from_terms)

    @property
    def policy_actor(self) -> torch.nn.Module:
        """The actor the run evaluates, keeps and saves as its policy: the weight average with
        ``actor_average_halflife``, else the learning actor."""
        return self.actor_average if self.actor_average is not None else self.actor

    def _start_average(self) -> None:
        if self.cfg.actor_average_halflife and self.actor_average is None:
            # a copy, not a new actor: building one would draw from torch's generator
            self.actor_average = copy.deepcopy(self.actor).requires_grad_(False)

    @torch.no_grad()
    def _update_average(self, steps: int) -> None:
        """Fold the actor into the average after an iteration of ``steps`` env steps (decay per env step, so the
        same half-life whatever the update-to-data ratio or the steps an iteration takes)."""
        if self.actor_average is None or steps <= 0:
            return
        weight = 1.0 - 0.5 ** (steps / self.cfg.actor_average_halflife)
        current = self.actor.state_dict()
        for k, avg in self.actor_average.state_dict().items():
            if avg.is_floating_point():
                avg.lerp_(current[k], weight)
            else:
                avg.copy_(current[k])

    def _average_limit(self) -> int | None:
        """The next env step at which a runner that fuses many steps into one iteration stops so that the average
        sees the actor at least 32 times per half-life (None: averaging off)."""
        every = max(1, self.cfg.actor_average_halflife // 32)
        return (self.env_steps // every + 1) * every if self.actor_average is not None else None

    def policy_fn(self, best: bool = False):
        """The deterministic policy (CPU in, CPU out): the run's actor (``policy_actor``), or with ``best`` and
        ``keep_best`` the actor of the best in-training evaluation (the run's actor if there was none)."""
        actor = self.policy_actor
        if best and self.best_actor:
            actor = copy.deepcopy(actor)
            actor.load_state_dict(self.best_actor)
        if isinstance(actor, GRUActor):  # a fresh state per batch of episodes (each evaluation asks anew)
            return StatefulPolicy(actor)

        @torch.no_grad()
        def fn(obs: torch.Tensor) -> torch.Tensor:
            return actor(obs.to(self.cfg.device)).cpu()

        return fn

    def evaluate_now(self, episodes: int) -> dict:
        t0 = time.perf_counter()
        # the selection episodes: the held-out ``evaluation.seed`` is left for confirming the chosen policy
        result = self.task.evaluate(self.policy_fn(), self.cfg.task, self.cfg.evaluation, episodes, selection=True)
        self.eval_time += time.perf_counter() - t0
        return result

    def train(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train until ``total_env_steps`` (or ``stop_at`` env steps, for tests of resuming)."""
        cfg = self.cfg
        total = cfg.total_env_steps if stop_at is None else min(stop_at, cfg.total_env_steps)
        main = self.dist.is_main
        if main:
            self.logger = self.logger or RunLogger(self.run_dir)
            self.logger.truncate_after(self.env_steps)
        distributed.broadcast_modules(self.algo.modules().values())
        self._start_average()

        def next_multiple(every: int) -> int | None:
            return (self.env_steps // every + 1) * every if every else None

        next_log = next_multiple(cfg.log_every)
        next_eval = next_multiple(cfg.eval_every)
        next_ckpt = next_multiple(cfg.checkpoint_every)
        losses: dict[str, list[float]] = {}
        bar = tqdm(total=total, initial=self.env_steps, unit="step", unit_scale=True, dynamic_ncols=True,
                   desc=f"{cfg.preset} seed {cfg.seed}", mininterval=1.0, disable=not main)
        while self.env_steps < total:
            self.iteration_limit = min(x for x in (total, next_log, next_eval, next_ckpt, self._average_limit())
                                       if x is not None)
            t0 = time.perf_counter()
            before = self.env_steps
            for k, v in self._iteration().items():  # a value per update, or a list (several cycles in one call)
                if isinstance(v, list):
                    losses.setdefault(k, []).extend(v)
                else:
                    losses.setdefault(k, []).append(float(v))
            self.train_time += time.perf_counter() - t0
            self._update_average(self.env_steps - before)
            bar.update(self.env_steps - before)
            if self.env_steps >= next_log:
                next_log += cfg.log_every
                row = self._log_row(losses)
                if main:
                    self.logger.log(self.env_steps, row)
                    bar.set_postfix(ep_len=f"{row.get('episode_length', 0):.0f}")
                losses, self.recent = {}, {"return": [], "length": []}
            if next_eval is not None and self.env_steps >= next_eval:
                next_eval += cfg.eval_every
                passed_now = False
                if main:  # rank 0 evaluates; the others learn its verdict (they must stop together)
                    r = self.evaluate_now(cfg.eval_episodes_during_training)
                    protocol = self.task.evaluation
                    self.logger.log(self.env_steps, {column: r[key] for key, column in protocol.headline.items()}
                                    | {"train_time_s": self.train_time})
                    passed = protocol.passes(r, self.selection_bars)
                    self.passes_in_a_row = self.passes_in_a_row + 1 if passed else 0
                    if self.first_pass is None and self.passes_in_a_row >= cfg.passes_in_a_row:
                        self.first_pass = {"env_steps": self.env_steps, "train_time_s": self.train_time,
                                           **{k: r[k] for k in protocol.headline}, "episodes": r["episodes"],
                                           "seed": r["seed"]}
                        passed_now = True
                    if cfg.keep_best:
                        self._keep_if_best(r, passed, protocol.rates)
                self.first_pass, passed_now = distributed.broadcast_object((self.first_pass, passed_now))
                if passed_now and cfg.stop_when_passed:
                    break
            if next_ckpt is not None and self.env_steps >= next_ckpt:
                next_ckpt += cfg.checkpoint_every
                self.save()
        bar.close()
        self.save()
        return {"env_steps": self.env_steps, "train_time_s": self.train_time, "eval_time_s": self.eval_time,
                "first_pass": self.first_pass, "best": self.best}

    def _keep_if_best(self, result: dict, passed: bool, rates: tuple[str, ...]) -> None:
        """Remember the actor if this evaluation beats the best so far (passing first, then its lowest rate, then
        the sum of its rates: a run whose settle stays 0 keeps its best-surviving actor, not its first)."""
        score = [float(passed), min(float(result[k]) for k in rates), sum(float(result[k]) for k in rates)]
        if self.best is not None and score <= self.best["score"]:
            return
        self.best = {"score": score, "env_steps": self.env_steps, "train_time_s": self.train_time,
                     "passed": passed, **{k: float(result[k]) for k in rates}}
        self.best_actor = {k: v.detach().clone() for k, v in self.policy_actor.state_dict().items()}

    def _log_row(self, losses: dict[str, list[float]]) -> dict[str, float]:
        """One metrics row: mean losses and finished episodes since the last row (over all ranks)."""
        row = {k: sum(v) / len(v) for k, v in losses.items()}
        ret, length = self.recent["return"], self.recent["length"]
        if distributed.active():
            keys = sorted(row)
            sums = torch.tensor([row[k] for k in keys] + [sum(ret), sum(length), len(ret)], dtype=torch.float64)
            sums = distributed.all_sum(sums).tolist()
            row = {k: v / self.world for k, v in zip(keys, sums, strict=False)}
            if sums[-1]:
                row["episode_return"], row["episode_length"] = sums[-3] / sums[-1], sums[-2] / sums[-1]
        elif ret:
            row["episode_return"], row["episode_length"] = sum(ret) / len(ret), sum(length) / len(length)
        row["train_time_s"] = self.train_time
        return row

    # checkpoints ----------------------------------------------------------------
    def _rank_state(self) -> dict[str, torch.Tensor]:
        """What each rank holds of its own: envs, observations, generator, episode counters, buffers."""
        tensors = dict(self.env.state_dict())
        tensors.update({f"obs.{k}": v for k, v in self.obs.items()})
        tensors["runner.gen"] = self.gen.get_state()
        tensors["runner.ep"] = torch.stack((self.ep_return, self.ep_length))
        tensors.update(self._extra_state())
        return tensors

    def save(self) -> Path:
        """Write ``checkpoint`` (every rank takes part: rank 0 gathers the others' own state and writes)."""
        path = self.run_dir / "checkpoint"
        own = distributed.gather_rank_state(self._rank_state()) if distributed.active() else self._rank_state()
        if own is not None:
            self._write_checkpoint(path, own)
        distributed.barrier()  # the checkpoint is on disk before any rank goes on (and may --resume from it)
        return path

    def _write_checkpoint(self, path: Path, own: dict[str, torch.Tensor]) -> None:
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {"env_steps": self.env_steps, "train_time_s": self.train_time,
                                "eval_time_s": self.eval_time, "curriculum_stage": self.curriculum.stage,
                                "first_pass": self.first_pass, "passes_in_a_row": self.passes_in_a_row,
                                "best": self.best, "optimizers": {},
                                "config": self.cfg.to_dict()}
        tensors.update({f"best_actor.{k}": v for k, v in self.best_actor.items()})
        if self.actor_average is not None:
            tensors.update({f"actor_average.{k}": v for k, v in self.actor_average.state_dict().items()})
        for name, module in self.algo.modules().items():
            tensors.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
        for name, opt in self.algo.optimizers().items():
            t, m = optimizer_tensors(name, opt)
            tensors.update(t)
            meta["optimizers"][name] = m
        tensors.update(own)
        meta["num_updates"] = getattr(self.algo, "num_updates", 0)
        if self.world > 1:
            meta["world_size"] = self.world
        save_checkpoint(path, tensors, meta)

    def load(self, path: Path) -> None:
        """Continue from ``path``: networks and optimisers on every rank; each rank's own envs, generator and
        buffers where the checkpoint holds them (a rank beyond the saving group's size starts fresh ones)."""
        tensors, meta = load_checkpoint(path)
        for name, module in self.algo.modules().items():
            prefix = f"{name}."
            module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        for name, opt in self.algo.optimizers().items():
            load_optimizer(name, opt, tensors, meta["optimizers"][name])
        own = distributed.select_rank_state(tensors, self.dist.rank)
        if own is not None:
            self.env.load_state_dict(own)
            self.obs = {k[4:]: v.clone() for k, v in own.items() if k.startswith("obs.")}
            self.gen.set_state(own["runner.gen"])
            self.ep_return, self.ep_length = own["runner.ep"].clone()
            self._load_extra_state(own)
        else:
            print(f"rank {self.dist.rank}: {path} holds the state of {distributed.world_size_of(tensors)} ranks; "
                  "this rank's envs start afresh")
        self.env_steps = meta["env_steps"]
        self.train_time = meta["train_time_s"]
        self.eval_time = meta["eval_time_s"]
        self.curriculum.stage = meta["curriculum_stage"]
        self.first_pass = meta["first_pass"]
        self.passes_in_a_row = meta.get("passes_in_a_row", 0)
        self.best = meta.get("best")
        self.best_actor = {k[len("best_actor."):]: v.clone() for k, v in tensors.items() if k.startswith("best_actor.")}
        average = {k[len("actor_average."):]: v for k, v in tensors.items() if k.startswith("actor_average.")}
        if average and self.cfg.actor_average_halflife:
            self.actor_average = None
            self._start_average()
            self.actor_average.load_state_dict(average)
        elif self.cfg.actor_average_halflife and self.env_steps:
            raise ValueError(f"{path} holds no actor average: resume it with actor_average_halflife 0 (it was "
                             "trained without one), or start a new run")
        elif average:
            raise ValueError(f"{path} holds an actor average: resume it with the actor_average_halflife it was "
                             "trained with (its config.json), or start a new run")
        if hasattr(self.algo, "num_updates"):
            self.algo.num_updates = meta["num_updates"]
