"""Behaviour-cloning runner for chunked policies (diffusion, MSE-BC) on a LeRobot-format demonstration set.

``BCRunner(cfg, run_dir).train()`` loads ``cfg.demos`` (written by :func:`robot_rl.data.write_dataset` or by
LeRobot), fits the min-max normalisers to the dataset statistics, trains with AdamW (warm-up + cosine) for
``cfg.steps`` optimiser steps, and writes ``config.json``, ``metrics.csv`` + TensorBoard events and an atomic
``checkpoint.safetensors``/``.json`` (weights, EMA weights, optimiser, RNG). :meth:`BCRunner.load` resumes
to exactly the numbers of an uninterrupted run; :func:`load_policy` rebuilds the trained policy for
evaluation and export.

Under ``torchrun`` every rank draws its own batches (and diffusion noise) from the whole dataset with a
generator of its own seed, gradients are averaged over the ranks (an effective batch of ``world_size x
batch_size`` windows), and only rank 0 writes the run directory; its checkpoint holds every rank's generator.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm import tqdm

from robot_rl import distributed
from robot_rl.checkpoint import load_checkpoint, load_optimizer, optimizer_tensors, save_checkpoint
from robot_rl.data import DatasetFormatError, load_dataset
from robot_rl.io import atomic_write_json
from robot_rl.logging import RunLogger
from robot_rl.policies.diffusion import DiffusionConfig, DiffusionPolicy, MinMaxNormalizer
from robot_rl.policies.mse_bc import MSEBCConfig, MSEBCPolicy
from robot_rl.policies.windows import chunk_windows


@dataclass
class BCTrainConfig:
    """Behaviour cloning of a chunked policy from demonstrations."""

    demos: str = ""
    """Dataset directory (LeRobot v3.0 layout, e.g. written by ``robot-rl demos``)."""
    task: str = ""
    """Registered task the demonstrations come from (export contract and evaluation; "" = none)."""
    preset: str = ""
    """Preset the run was started from (``dp-<task>`` / ``mse-<task>``), for reports."""
    policy: Literal["diffusion", "mse"] = "diffusion"
    """``diffusion`` (DDPM/DDIM) or ``mse`` (the MSE-BC baseline on the same data and observation)."""
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    """Diffusion policy settings (horizons, denoiser, schedule, EMA)."""
    mse: MSEBCConfig = field(default_factory=MSEBCConfig)
    """MSE-BC baseline settings."""
    obs_key: str = "observation.state"
    """Dataset feature the policy observes."""
    action_key: str = "action"
    """Dataset feature the policy imitates."""
    success_only: bool = True
    """Imitate only the episodes whose ``next.success`` is set at some frame (as diffusion_policy's and ResiP's
    demonstrations are successful ones; ``robot-rl demos`` also records the expert's failures). Datasets without
    a ``next.success`` feature are used whole, and the run's summary says how many episodes were used."""
    steps: int = 5000
    """Optimiser steps."""
    batch_size: int = 256
    """Windows per optimiser step."""
    lr: float = 1e-3
    """Peak learning rate (the reference's 1e-4 is tuned for 10^5+ GPU steps; short CPU runs need more)."""
    betas: tuple[float, float] = (0.95, 0.999)
    """AdamW betas."""
    weight_decay: float = 1e-6
    """AdamW weight decay."""
    warmup_steps: int = 200
    """Linear warm-up steps before the cosine decay."""
    seed: int = 0
    """Seed of initialisation and batch/noise sampling."""
    threads: int = 1
    """torch CPU threads."""
    log_every: int = 100
    """Optimiser steps between metrics rows."""
    checkpoint_every: int = 1000
    """Optimiser steps between checkpoints (0: only at the end)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BCTrainConfig:
        d = dict(d)
        diff = d.pop("diffusion", {})
        mse = d.pop("mse", {})
        diff = {k: tuple(v) if isinstance(v, list) else v for k, v in diff.items()}
        mse = {k: tuple(v) if isinstance(v, list) else v for k, v in mse.items()}
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d, diffusion=DiffusionConfig(**diff), mse=MSEBCConfig(**mse))

    @property
    def horizons(self) -> tuple[int, int, int]:
        c = self.diffusion if self.policy == "diffusion" else self.mse
        return c.n_obs_steps, c.horizon, c.n_action_steps


def build_policy(cfg: BCTrainConfig, obs_dim: int, act_dim: int, obs_norm: MinMaxNormalizer | None = None,
                 act_norm: MinMaxNormalizer | None = None) -> DiffusionPolicy | MSEBCPolicy:
    if cfg.policy == "diffusion":
        return DiffusionPolicy(cfg.diffusion, obs_dim, act_dim, obs_norm, act_norm)
    if cfg.policy == "mse":
        return MSEBCPolicy(cfg.mse, obs_dim, act_dim, obs_norm, act_norm)
    raise ValueError(f"unknown policy {cfg.policy!r} (diffusion or mse)")


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up to 1, then cosine to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


SUCCESS_KEY = "next.success"


def dataset_features(root: str | Path) -> set[str]:
    """Feature names in a dataset's ``meta/info.json`` (empty when it cannot be read: the loader then reports
    what is wrong with the dataset)."""
    try:
        return set(json.loads((Path(root) / "meta" / "info.json").read_text()).get("features", {}))
    except (OSError, ValueError, AttributeError):
        return set()


class BCRunner:
    """Trains one chunked policy; ``train(stop_at)`` stops early for resume tests."""

    def __init__(self, cfg: BCTrainConfig, run_dir: str | Path) -> None:
        if not cfg.demos:
            raise ValueError("BCTrainConfig.demos: give the demonstration dataset directory")
        torch.set_num_threads(cfg.threads)
        self.cfg, self.run_dir = cfg, Path(run_dir)
        keys = [cfg.obs_key, cfg.action_key]
        if cfg.success_only and SUCCESS_KEY in dataset_features(cfg.demos):
            keys.append(SUCCESS_KEY)
        data = load_dataset(cfg.demos, keys=keys)
        for key in (cfg.obs_key, cfg.action_key):
            if key not in data.stats or "min" not in data.stats[key]:
                raise DatasetFormatError(f"{Path(cfg.demos) / 'meta/stats.json'}: no min/max statistics for {key!r}")
        self.demos_total = len(data.episodes)
        if SUCCESS_KEY in keys:
            data.episodes = [ep for ep in data.episodes if bool(ep[SUCCESS_KEY].any())]
            if not data.episodes:
                raise DatasetFormatError(f"{cfg.demos}: no episode has {SUCCESS_KEY} set (train on all of them with "
                                         "--no-success-only)")
        n_obs, horizon, _ = cfg.horizons
        obs, act = chunk_windows([ep[cfg.obs_key] for ep in data.episodes],
                                 [ep[cfg.action_key] for ep in data.episodes], n_obs, horizon)
        self.obs, self.act = torch.as_tensor(obs), torch.as_tensor(act)
        self.obs_dim, self.act_dim = self.obs.shape[-1], self.act.shape[-1]
        self.episodes, self.fps = len(data.episodes), data.fps
        torch.manual_seed(cfg.seed)
        self.policy = build_policy(cfg, self.obs_dim, self.act_dim,
                                   MinMaxNormalizer.from_stats(data.stats[cfg.obs_key]),
                                   MinMaxNormalizer.from_stats(data.stats[cfg.action_key]))
        self.opt = torch.optim.AdamW(self.policy.parameters(), lr=cfg.lr, betas=cfg.betas,
                                     weight_decay=cfg.weight_decay)
        self.dist = distributed.info()
        self.gen = torch.Generator().manual_seed(distributed.rank_seed(cfg.seed, self.dist.rank) + 1)
        self.step = 0
        self.train_time = 0.0
        self.pending_losses: list[float] = []
        self.logger: RunLogger | None = None
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / "config.json", cfg.to_dict())

    def train(self, stop_at: int | None = None) -> dict[str, Any]:
        cfg = self.cfg
        total = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
        main = self.dist.is_main
        if main:
            self.logger = self.logger or RunLogger(self.run_dir)
            self.logger.truncate_after(self.step)
        distributed.broadcast_modules([self.policy])
        self.policy.train()
        losses = self.pending_losses  # losses since the last metrics row (kept across a resume)
        bar = tqdm(total=cfg.steps, initial=self.step, unit="step", dynamic_ncols=True, mininterval=1.0,
                   desc=f"{cfg.policy} seed {cfg.seed}", disable=not main)
        while self.step < total:
            t0 = time.perf_counter()
            for g in self.opt.param_groups:
                g["lr"] = cfg.lr * lr_factor(self.step, cfg.steps, cfg.warmup_steps)
            idx = torch.randint(0, len(self.obs), (cfg.batch_size,), generator=self.gen)
            loss = self.policy.compute_loss(self.obs[idx], self.act[idx], self.gen)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(self.policy.parameters())
            self.opt.step()
            self.policy.after_optimizer_step()
            self.step += 1
            self.train_time += time.perf_counter() - t0
            losses.append(loss.item())
            bar.update(1)
            if self.step % cfg.log_every == 0:
                mean = distributed.all_sum(torch.tensor([sum(losses), len(losses)], dtype=torch.float64)).tolist()
                row = {"loss": mean[0] / mean[1], "lr": self.opt.param_groups[0]["lr"],
                       "train_time_s": self.train_time}
                if main:
                    self.logger.log(self.step, row)
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
                losses.clear()
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save()
        bar.close()
        self.save()
        return {"steps": self.step, "train_time_s": self.train_time, "checkpoint": str(self.run_dir / "checkpoint")}

    def save(self) -> Path:
        """Write ``checkpoint`` (every rank takes part: rank 0 gathers the others' generators and writes)."""
        path = self.run_dir / "checkpoint"
        own = {"runner.gen": self.gen.get_state()}
        if distributed.active():  # a rank's losses since the last metrics row (rank 0's: in the JSON)
            own["runner.pending_losses"] = torch.tensor(self.pending_losses, dtype=torch.float64)
            own = distributed.gather_rank_state(own)
            if own is None:
                distributed.barrier()  # until rank 0 has written the checkpoint
                return path
        tensors = dict(self.policy.state_tensors())
        t, opt_meta = optimizer_tensors("opt", self.opt)
        tensors.update(t)
        tensors.update(own)
        ema = getattr(self.policy, "ema", None)
        meta = {"step": self.step, "train_time_s": self.train_time, "optimizer": opt_meta,
                "ema_step": ema.step if ema is not None else 0, "pending_losses": self.pending_losses,
                "config": self.cfg.to_dict(), "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "episodes": self.episodes, "episodes_in_dataset": self.demos_total, "fps": self.fps}
        if self.dist.world_size > 1:
            meta["world_size"] = self.dist.world_size
        save_checkpoint(path, tensors, meta)
        distributed.barrier()  # the checkpoint is on disk before any rank goes on
        return path

    def load(self, path: str | Path) -> None:
        """Resume from ``path`` (a checkpoint written by :meth:`save`; same config and dataset)."""
        tensors, meta = load_checkpoint(Path(path))
        if (meta["obs_dim"], meta["act_dim"]) != (self.obs_dim, self.act_dim):
            raise ValueError(f"{path}: checkpoint has obs/action dims {meta['obs_dim']}/{meta['act_dim']}, "
                             f"the dataset {self.obs_dim}/{self.act_dim}")
        self.policy.load_state_tensors(tensors, meta["ema_step"])
        load_optimizer("opt", self.opt, tensors, meta["optimizer"])
        self.step, self.train_time = meta["step"], meta["train_time_s"]
        self.pending_losses = list(meta["pending_losses"])
        own = distributed.select_rank_state(tensors, self.dist.rank)
        if own is not None:
            self.gen.set_state(own["runner.gen"])
            if self.dist.rank > 0:
                self.pending_losses = own["runner.pending_losses"].tolist()
        else:
            print(f"rank {self.dist.rank}: {path} holds no state of this rank; its batches start afresh")


def load_policy(path: str | Path) -> tuple[DiffusionPolicy | MSEBCPolicy, dict[str, Any]]:
    """The trained policy (eval mode, EMA weights where used) and the checkpoint metadata from ``path``
    (a run directory or its ``checkpoint`` file stem)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint"
    tensors, meta = load_checkpoint(path)
    cfg = BCTrainConfig.from_dict(meta["config"])
    policy = build_policy(cfg, meta["obs_dim"], meta["act_dim"])
    policy.load_state_tensors(tensors, meta["ema_step"])
    return policy.eval(), meta
