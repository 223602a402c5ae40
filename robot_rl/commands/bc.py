"""Behaviour-cloning runs from the CLI: ``robot-rl train dp-<task>|mse-<task> --demos DIR``, their export and
``robot-rl eval RUN``.

A BC run directory holds ``config.json`` (a :class:`~robot_rl.runners.bc.BCTrainConfig`), ``metrics.csv`` +
TensorBoard events, ``checkpoint.safetensors``/``.json``, ``export/`` (diffusion runs: the chunked ONNX sampler,
verified against torch when written) and, after evaluation, ``report.md``, ``eval.json``, ``loss.png`` and
``eval.mp4``. Evaluation executes chunks as :class:`deploy.chunked_runtime.ChunkedPolicyRunner` does in its
synchronous mode: the observation history starts filled with the first observation, a chunk is sampled from
it and its first ``execute`` actions run, one per control step, before the next query.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import tyro

from robot_rl import distributed
from robot_rl.commands.run_flags import split_run_flags
from robot_rl.commands.transfer import (
    OURS,
    TRACE_EPISODES,
    resolve_sims,
    sweep_config,
    sweep_lines,
    transfer_eval,
    transfer_lines,
    transfer_plot,
)
from robot_rl.commands.transfer_signals import signal_lines, signal_summary
from robot_rl.io import atomic_write_json, atomic_write_text
from robot_rl.logging import read_metrics
from robot_rl.plotting import save_figure
from robot_rl.policies.presets import bc_preset, bc_presets
from robot_rl.runners.bc import BCRunner, BCTrainConfig, load_policy
from sim.registry import get_task

_RUN_FLAGS = {"--out": str, "--eval-episodes": int, "--video-episodes": int}


def is_bc_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a behaviour-cloning run (its config names a demonstration set)."""
    path = Path(run_dir) / "config.json"
    return path.is_file() and "demos" in json.loads(path.read_text())


def load_bc_config(run_dir: str | Path) -> BCTrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (not a run directory)")
    return BCTrainConfig.from_dict(json.loads(path.read_text()))



def bc_train_main(name: str | None, argv: list[str], resume: Path | None = None) -> None:
    """``robot-rl train NAME [--demos DIR] [--seed S] [--out RUN] [config overrides]`` or ``--resume RUN``."""
    argv, flags = split_run_flags(argv, _RUN_FLAGS)
    if resume is not None:
        if argv:
            raise ValueError(f"--resume continues the saved config; it takes only --eval-episodes/--video-episodes, "
                             f"not {argv[0]!r}")
        cfg, run_dir = load_bc_config(resume), Path(resume)
        resuming = (run_dir / "checkpoint.json").is_file()
    else:
        default = bc_preset(name)
        cfg = tyro.cli(BCTrainConfig, default=default, args=argv, prog=f"robot-rl train {name}")
        if not cfg.demos:
            raise ValueError(f"{name} needs --demos DIR (write one with `robot-rl demos {cfg.task} --out DIR`)")
        cfg.demos = str(Path(cfg.demos).resolve())  # a resume from another directory finds it
        run_dir = Path(flags.get("out") or Path("runs") / name / f"seed{cfg.seed}")
        if (run_dir / "checkpoint.json").is_file():
            raise ValueError(f"{run_dir} already holds a run; continue it with `robot-rl train --resume {run_dir}` "
                             "or choose another --out")
        resuming = False
    try:
        out = run_bc_training(cfg, run_dir, resuming, flags.get("eval_episodes"), flags.get("video_episodes", 4))
        main = distributed.info().is_main
    finally:
        distributed.shutdown()
    if not main:
        return
    print(f"run directory : {run_dir}")
    print(f"  checkpoint  : {run_dir / 'checkpoint.safetensors'} (+ .json)")
    print(f"  metrics     : {run_dir / 'metrics.csv'}, TensorBoard: {run_dir / 'tb'}")
    if "export" in out:
        print(f"  export      : {out['export']} (policy.onnx + policy.json)")
    if "report" in out:
        print(f"  report      : {out['report']}")
    print(json.dumps({k: v for k, v in out.items() if k not in ("export", "report", "checkpoint")}))


def run_bc_training(cfg: BCTrainConfig, run_dir: Path, resume: bool = False, eval_episodes: int | None = None,
                    video_episodes: int = 4) -> dict[str, Any]:
    """Train (or continue) ``cfg`` in ``run_dir``, export (diffusion) and evaluate (``eval_episodes`` 0: skip).
    Under ``torchrun`` (CPU ranks, gloo) every rank trains and rank 0 alone exports and evaluates."""
    distributed.init("cpu")
    runner = BCRunner(cfg, run_dir)
    if resume:
        runner.load(run_dir / "checkpoint")
        if runner.dist.is_main:
            print(f"resuming {run_dir} at step {runner.step}")
    out = runner.train()
    if runner.logger:
        runner.logger.close()
    if not runner.dist.is_main:
        return out
    if cfg.policy == "diffusion" and cfg.task:
        doc = export_bc_run(run_dir)
        v = doc["verification"]
        out["export"] = str(run_dir / "export")
        out["export_max_abs_error"] = max(v["max_abs_error_random"], v["max_abs_error_on_distribution"])
    if cfg.task and eval_episodes != 0:
        summary = run_bc_eval(run_dir, eval_episodes, video_episodes)
        out["eval"] = summary["headline"]
        out["report"] = summary["report"]
    return out


def export_bc_run(run_dir: Path, out_dir: Path | None = None) -> dict[str, Any]:
    """Export a diffusion run's sampler with its task's contract to ``RUN/export``; returns ``policy.json``."""
    from deploy.export.chunked import export_chunked_policy
    from robot_rl.data import load_dataset

    cfg = load_bc_config(run_dir)
    if cfg.policy != "diffusion":
        raise ValueError(f"{run_dir}: only diffusion runs export a chunked sampler (this is {cfg.policy!r})")
    if not cfg.task:
        raise ValueError(f"{run_dir}: the run names no task, so there is no observation/action contract")
    policy, meta = load_policy(run_dir)
    task = get_task(cfg.task)
    spec = task.export_spec()
    metadata = {"robot": spec.pop("robot", task.name), "task": cfg.preset or cfg.task}
    if "model" in spec:
        metadata["model"] = spec.pop("model")
    metadata["training"] = {"algorithm": "diffusion-bc", "seed": cfg.seed, "task": task.name, "steps": meta["step"],
                            "train_time_s": meta["train_time_s"], "demos": cfg.demos, "config": cfg.to_dict()}
    data = load_dataset(cfg.demos, keys=[cfg.obs_key])
    on_dist = np.concatenate([ep[cfg.obs_key] for ep in data.episodes])
    return export_chunked_policy(out_dir or Path(run_dir) / "export", policy, spec, on_dist, metadata, seed=cfg.seed)


class ChunkExecutor:
    """A batched ``obs -> action`` policy that executes action chunks on the runtime's synchronous schedule.

    ``sample(history [N, observation_steps, obs_dim]) -> chunk [N, horizon, act_dim]``. Every env of the batch
    starts its episode on the first call (as :func:`sim.evaluation.evaluate_success` and the arm video hook run
    them); only each env's first episode is meaningful. :meth:`reset` (called by ``evaluate_success`` before every
    evaluation) starts afresh, with ``restart`` putting the sampler's noise generator back to its seed.
    """

    def __init__(self, sample: Any, observation_steps: int, execute: int, restart: Any = None) -> None:
        self.sample, self.observation_steps, self.execute = sample, observation_steps, execute
        self.restart = restart
        self.reset()

    def reset(self) -> None:
        """Forget the history and the current chunk; restart the sampler's noise (the same draws again)."""
        self.hist: np.ndarray | None = None
        self.chunk: np.ndarray | None = None
        self.t = 0
        if self.restart is not None:
            self.restart()

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        o = obs.detach().cpu().numpy().astype(np.float32)
        if self.hist is None:
            self.hist = np.repeat(o[:, None], self.observation_steps, axis=1)
        else:
            self.hist = np.concatenate((self.hist[:, 1:], o[:, None]), axis=1)
        if self.t % self.execute == 0:
            self.chunk = self.sample(self.hist)
        action = self.chunk[:, self.t % self.execute]
        self.t += 1
        return torch.from_numpy(np.ascontiguousarray(action, dtype=np.float32))


def onnx_chunk_sampler(export_dir: Path, noise_seed: int) -> tuple[Any, int, int, Any]:
    """The exported sampler in onnxruntime with its own noise generator (the deployed computation), after
    checking ``policy.json``'s test vector; returns ``(sample, observation_steps, execute, restart)``."""
    from deploy import contract
    from deploy.onnx_io import onnx_session

    spec = contract.load(export_dir)
    sess = onnx_session(export_dir / "policy.onnx")
    tv = spec["test_vector"]
    got = sess.run(["action"], {"obs": np.asarray(tv["example_input"], np.float32),
                                "noise": np.asarray(tv["example_noise"], np.float32)})[0]
    err = float(np.abs(got - np.asarray(tv["example_output"], np.float32)).max())
    if not err <= float(tv["atol"]):
        raise ValueError(f"{export_dir}: policy.onnx fails its test vector (max abs error {err:.3g})")
    ch = spec["chunk"]
    rng = np.random.default_rng(noise_seed)
    start = rng.bit_generator.state
    shape = (int(ch["horizon"]), int(spec["action"]["size"]))

    def sample(hist: np.ndarray) -> np.ndarray:
        noise = rng.standard_normal((len(hist), *shape), dtype=np.float32)
        return sess.run(["action"], {"obs": hist, "noise": noise})[0]

    def restart() -> None:
        rng.bit_generator.state = start

    return sample, int(ch["observation_steps"]), int(ch["execute"]), restart


def torch_chunk_sampler(run_dir: Path, noise_seed: int) -> tuple[Any, int, int, Any]:
    """The checkpoint's policy in torch (runs without an export: the MSE-BC baseline)."""
    policy, _ = load_policy(run_dir)
    gen = torch.Generator().manual_seed(noise_seed)

    @torch.no_grad()
    def sample(hist: np.ndarray) -> np.ndarray:
        return policy.predict_chunk(torch.from_numpy(hist), gen).numpy()

    return sample, policy.n_obs_steps, policy.n_action_steps, lambda: gen.manual_seed(noise_seed)


def run_bc_eval(run_dir: Path, episodes: int | None = None, video_episodes: int = 4,
                source: str = "auto", sims: tuple[str, ...] = (OURS,), sweep: bool = True,
                sweep_episodes: int | None = None) -> dict[str, Any]:
    """Evaluate a BC run on its task's held-out episodes (the protocol's ``seed``; ``episodes`` None: the
    protocol's count, 100 for the arm tasks) through the exported ONNX sampler where there is one, and write
    ``report.md``, ``eval.json``, ``loss.png`` and ``eval.mp4`` (the first ``video_episodes`` episodes).
    ``sims``: simulator backends to fly the same episodes in (:mod:`robot_rl.commands.transfer`; each gets a fresh
    sampler with the same noise seed); with several, ``report_transfer.md`` adds the transfer table and the plot of
    the first episodes' traces in each (``transfer_trajectories_transfer.png`` + ``.npz``). ``sweep``: the
    task's robustness sweep in every simulator (Panda tasks: :mod:`sim.arm.robustness`, ``sweep_episodes`` per
    row, default the protocol's, at most ``episodes``)."""
    run_dir = Path(run_dir)
    cfg = load_bc_config(run_dir)
    if not cfg.task:
        raise ValueError(f"{run_dir}: the run names no task to evaluate on")
    task = get_task(cfg.task)
    ecfg = task.evaluation.config_cls()
    ecfg = sweep_config(replace(ecfg, episodes=ecfg.episodes if episodes is None else episodes), sweep_episodes)
    task_cfg = task.config_cls()
    export_dir = run_dir / "export"
    use_onnx = source == "onnx" or (source == "auto" and (export_dir / "policy.onnx").is_file())
    if source not in ("auto", "onnx", "checkpoint"):
        raise ValueError(f"a BC run evaluates from auto, onnx or checkpoint, not {source!r}")

    def executor(noise_seed: int) -> ChunkExecutor:
        sampler = onnx_chunk_sampler(export_dir, noise_seed) if use_onnx else torch_chunk_sampler(run_dir, noise_seed)
        return ChunkExecutor(*sampler)

    used = ("export/policy.onnx (onnxruntime, chunks on the runtime's synchronous schedule)" if use_onnx
            else "checkpoint (torch, chunks on the runtime's synchronous schedule)")
    sims, suffix, transfer = tuple(sims), "", {}
    if sims == (OURS,):
        policy = executor(cfg.seed)
        result = task.evaluate(policy, task_cfg, ecfg, seed=ecfg.seed)
        rows = task.evaluation.sweep(task, policy, task_cfg, ecfg, ecfg.seed) if sweep and task.evaluation.sweep \
            else []
    else:
        pairs = resolve_sims(task, sims)
        suffix = "_transfer" if len(sims) > 1 else f"_{sims[0]}"
        for pair in pairs:
            transfer |= transfer_eval(task, executor(cfg.seed), task_cfg, ecfg, [pair], sweep,
                                      TRACE_EPISODES if len(pairs) > 1 else 0)
        result, rows = transfer[sims[0]]["result"], transfer[sims[0]]["robustness"]
        used += f"; simulator {sims[0]} (backend {pairs[0][1]})"
    ok = task.evaluation.passes(result, ecfg)
    video = None
    if task.video is not None and video_episodes > 0:
        video = task.video(task, task_cfg, video_episodes, ecfg.seed, run_dir / f"eval{suffix}.mp4",
                           policy=executor(cfg.seed))
    plot = _loss_plot(run_dir)
    traced = transfer_plot(transfer, run_dir / f"transfer_trajectories{suffix}.png") if len(transfer) > 1 else None
    summary = {k: v for k, v in result.items() if k not in ("traces", "signals")} | {
        "passed": ok, "policy": used, "preset": cfg.preset, "kind": cfg.policy, "robustness": rows}
    if video is not None:
        summary["video"] = video["video"]
    if transfer:
        summary["transfer"] = {k: {r: v["result"][r] for r in ("success", "mean_return", "episodes")}
                               | {"backend": v["backend"], "passed": v["passed"], "robustness": v["robustness"]}
                               for k, v in transfer.items()}
        if (traced_summary := signal_summary(transfer, traced)) is not None:
            summary["transfer_traces"] = traced_summary
    atomic_write_json(run_dir / f"eval{suffix}.json", summary)
    n, k = len(result["episode_success"]), int(sum(result["episode_success"]))
    lines = [f"# Evaluation of `{run_dir}`", "",
             f"Preset `{cfg.preset}` (task `{task.name}`), {cfg.policy} behaviour cloning from `{cfg.demos}`, "
             f"seed {cfg.seed}; policy: {used}; {n} held-out episodes from seed {ecfg.seed}.", "",
             f"**{task.evaluation.summary(result)}** — bar success ≥ {ecfg.success_bar:.0%}: "
             f"{'PASSED' if ok else 'not passed'}.", "",
             "| episodes | successes | success rate | mean length |", "|---:|---:|---:|---:|",
             f"| {n} | {k} | {k / n:.1%} | {result['mean_episode_length']:.1f} steps |", ""]
    lines += sweep_lines(rows, task.evaluation.rates)
    if len(transfer) > 1:
        lines += transfer_lines(transfer, task.evaluation.rates, f"success ≥ {ecfg.success_bar:.0%}")
        lines += signal_lines(transfer, traced)
        if traced is not None:
            lines += [f"![transfer trajectories]({traced.name})", ""]
    if plot is not None:
        lines += ["## training loss", "", f"![loss]({plot.name})", ""]
    if video is not None:
        name = Path(video["video"]).name
        outcome = ", ".join(f"{'success' if s else 'failure'} ({m} steps)"
                            for s, m in zip(video["episode_success"], video["episode_length"], strict=True))
        lines += ["## video", "", f"[{name}]({name}): the first {video_episodes} held-out episodes (MuJoCo): "
                  f"{outcome}.", ""]
    atomic_write_text(run_dir / f"report{suffix}.md", "\n".join(lines))
    summary["report"] = str(run_dir / f"report{suffix}.md")
    summary["headline"] = {"success": result["success"], "mean_return": result["mean_return"], "passed": ok}
    return summary


def _loss_plot(run_dir: Path) -> Path | None:
    m = read_metrics(run_dir)
    if not m or "loss" not in m:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(m["env_steps"], m["loss"])
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss")
    return Path(save_figure(fig, run_dir / "loss.png"))


def bc_usage_lines() -> list[str]:
    """``robot-rl train --help`` lines of the behaviour-cloning presets."""
    return [f"  {name:26s} {'diffusion policy' if name.startswith('dp-') else 'MSE-BC baseline'} from "
            f"--demos DIR [task {name.partition('-')[2]}]" for name in bc_presets()]
