"""Residual RL runs from the CLI: ``robot-rl train resip --base RUN [--task T] [overrides]``, their evaluation
(``robot-rl eval RUN``: base alone and base + residual on the same held-out episodes) and export.

A ResiP run directory holds ``config.json`` (a :class:`~robot_rl.residual.resip.ResiPConfig`, with
``"algorithm": "resip"``), ``metrics.csv`` + TensorBoard events, ``checkpoint.safetensors``/``.json``,
``export/`` (diffusion bases: the chunked sampler + the residual actor, ``composition.kind = "residual"``) and,
after evaluation, ``eval.json`` and ``report.md``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import tyro

from robot_rl.checkpoint import load_checkpoint
from robot_rl.commands.run_flags import split_run_flags
from robot_rl.commands.transfer import OURS, TRACE_EPISODES, resolve_sims, sweep_config, sweep_lines, transfer_plot
from robot_rl.commands.transfer_signals import signal_lines, signal_summary
from robot_rl.io import atomic_write_json, atomic_write_text
from robot_rl.residual.base_policy import FrozenChunkBase
from robot_rl.residual.resip import WRENCH_DIM, ResidualActor, ResidualExecutor, ResiPConfig
from robot_rl.runners.resip import ResiPRunner, evaluate_residual, task_config
from sim.registry import get_task

_RUN_FLAGS = {"--out": str, "--eval-episodes": int}


def is_resip_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a ResiP run."""
    path = Path(run_dir) / "config.json"
    return path.is_file() and json.loads(path.read_text()).get("algorithm") == "resip"


def load_resip_config(run_dir: str | Path) -> ResiPConfig:
    return ResiPConfig.from_dict(json.loads((Path(run_dir) / "config.json").read_text()))


def load_resip(run_dir: str | Path) -> tuple[ResiPConfig, Any, ResidualActor, dict[str, Any]]:
    """``(config, frozen base policy, trained residual actor, checkpoint metadata)`` of a ResiP run; a
    ``keep_best`` run's actor is that of its best in-training evaluation (``meta["best"]`` says which)."""
    from robot_rl.runners.bc import load_policy

    cfg = load_resip_config(run_dir)
    policy, _ = load_policy(cfg.base)
    tensors, meta = load_checkpoint(Path(run_dir) / "checkpoint")
    actor = ResidualActor(policy.obs_norm, policy.act_norm, cfg.actor_hidden, cfg.scale, cfg.log_std_init,
                          cfg.learn_std, cfg.history, cfg.history_actions, WRENCH_DIM if cfg.wrench else 0)
    prefix = "best_actor." if any(k.startswith("best_actor.") for k in tensors) else "actor."
    actor.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    return cfg, policy.eval(), actor.eval(), meta



def resip_train_main(argv: list[str], resume: Path | None = None) -> None:
    """``robot-rl train resip --base RUN [--task T] [--seed S] [--out RUN] [overrides]`` or ``--resume RUN``."""
    argv, flags = split_run_flags(argv, _RUN_FLAGS)
    if resume is not None:
        if argv:
            raise ValueError(f"--resume continues the saved config; it takes only --eval-episodes, not {argv[0]!r}")
        cfg, run_dir = load_resip_config(resume), Path(resume)
        resuming = (run_dir / "checkpoint.json").is_file()
    else:
        cfg = tyro.cli(ResiPConfig, args=argv, prog="robot-rl train resip",
                       description="Residual PPO (ResiP) on a frozen behaviour-cloning base. Run flags: --out RUN "
                       "(default runs/resip-<task>/seed<S>), --eval-episodes N (0: no evaluation after training)."
                       ).check()
        cfg.base = str(Path(cfg.base).resolve())
        if not (Path(cfg.base) / "checkpoint.json").is_file():
            raise FileNotFoundError(f"{cfg.base}: no behaviour-cloning checkpoint (train one with `robot-rl train "
                                    "dp-<task> --demos DIR`)")
        if not cfg.task:
            from robot_rl.runners.resip import base_task

            cfg.task = base_task(cfg.base)
        run_dir = Path(flags.get("out") or Path("runs") / f"resip-{cfg.task}" / f"seed{cfg.seed}")
        if (run_dir / "checkpoint.json").is_file():
            raise ValueError(f"{run_dir} already holds a run; continue it with `robot-rl train --resume {run_dir}` "
                             "or choose another --out")
        resuming = False
    out = run_resip_training(cfg, run_dir, resuming, flags.get("eval_episodes"))
    print(f"run directory : {run_dir}")
    print(f"  checkpoint  : {run_dir / 'checkpoint.safetensors'} (+ .json)")
    print(f"  metrics     : {run_dir / 'metrics.csv'}, TensorBoard: {run_dir / 'tb'}")
    for key, what in (("export", "export     "), ("report", "report     ")):
        if key in out:
            print(f"  {what} : {out[key]}")
    print(json.dumps({k: v for k, v in out.items() if k not in ("export", "report")}))


def run_resip_training(cfg: ResiPConfig, run_dir: Path, resume: bool = False,
                       eval_episodes: int | None = None) -> dict[str, Any]:
    """Train (or continue) ``cfg`` in ``run_dir``, export (diffusion bases) and evaluate (``eval_episodes`` 0:
    skip)."""
    runner = ResiPRunner(cfg, run_dir)
    if resume:
        runner.load(run_dir / "checkpoint")
        print(f"resuming {run_dir} at {runner.env_steps} env steps")
    out = runner.train()
    if runner.logger:
        runner.logger.close()
    if getattr(runner.base.policy, "sample", None) is not None:
        doc = export_resip_run(run_dir)
        out["export"] = str(run_dir / "export")
        out["export_max_abs_error"] = doc["composition"]["verification"]["max_abs_error"]
    if eval_episodes != 0:
        summary = run_resip_eval(run_dir, eval_episodes)
        out["eval"] = {k: summary[k] for k in ("base_success", "resip_success", "episodes")}
        out["report"] = summary["report"]
    return out


def export_resip_run(run_dir: Path, out_dir: Path | None = None) -> dict[str, Any]:
    """Export base sampler + residual actor to ``RUN/export`` (``composition.kind = "residual"``)."""
    from deploy.export.residual import export_residual_policy
    from robot_rl.commands.bc import load_bc_config
    from robot_rl.data import load_dataset

    cfg, policy, actor, meta = load_resip(run_dir)
    if getattr(policy, "sample", None) is None:
        raise ValueError(f"{run_dir}: only a diffusion/flow base exports a chunked sampler")
    bc = load_bc_config(cfg.base)
    task = get_task(cfg.task)
    spec = task.export_spec()
    metadata = {"robot": spec.pop("robot", task.name), "task": f"resip-{cfg.task}"}
    metadata["training"] = {"algorithm": "resip", "seed": cfg.seed, "task": task.name, "env_steps": meta["env_steps"],
                            "train_time_s": meta["train_time_s"], "base": cfg.base, "config": cfg.to_dict(),
                            "kept": meta.get("best")}
    data = load_dataset(bc.demos, keys=[bc.obs_key])
    import numpy as np

    on_dist = np.concatenate([ep[bc.obs_key] for ep in data.episodes])
    wrench = None
    if cfg.wrench:
        from sim.arm.wrench import wrench_contract

        wrench = wrench_contract(task.config_cls().ft_sensor, spec["control_rate_hz"])
    return export_residual_policy(out_dir or Path(run_dir) / "export", policy, actor, spec, on_dist, metadata,
                                  seed=cfg.seed, wrench=wrench)


def run_resip_eval(run_dir: Path, episodes: int | None = None, sims: tuple[str, ...] = (OURS,), sweep: bool = False,
                   sweep_episodes: int | None = None) -> dict[str, Any]:
    """Success of the base alone and of base + residual (mean) on the task's held-out episodes (the same
    episodes and base noise for both), in each simulator backend of ``sims`` (``ours``: the task's reference
    backend); writes ``eval.json`` and ``report.md``. The headline figures are the first simulator's. With several
    simulators, the first episodes of base + residual are traced in each (``transfer_trajectories.png`` + ``.npz``).
    ``sweep``: the task's robustness sweep of base + residual in each simulator (``sweep_episodes`` per row, default
    the protocol's, at most ``episodes``; the same base noise in every row)."""
    run_dir = Path(run_dir)
    cfg, policy, actor, meta = load_resip(run_dir)
    task = get_task(cfg.task)
    ecfg = task.evaluation.config_cls()
    n = ecfg.episodes if episodes is None else episodes
    ecfg = sweep_config(replace(ecfg, episodes=n), sweep_episodes)
    rows, pairs, sweeps = [], resolve_sims(task, tuple(sims)), {}
    record = TRACE_EPISODES if len(pairs) > 1 else 0
    for label, backend in pairs:
        impl = None if label == OURS else backend
        base = evaluate_residual(cfg.task, policy, None, n, noise_seed=cfg.seed, impl=impl)
        res = evaluate_residual(cfg.task, policy, actor, n, noise_seed=cfg.seed, impl=impl, record=record)
        rows.append((label, backend, base, res))
        if sweep and task.evaluation.sweep:  # a fresh executor, reset (same base noise) before every row
            executor = ResidualExecutor(FrozenChunkBase(policy, ecfg.sweep_episodes, cfg.seed), actor)
            sweeps[label] = task.evaluation.sweep(task, executor, task_config(cfg.task, cfg.wrench), ecfg, ecfg.seed,
                                                  impl=impl)
    # the deployed policy (base + residual) traced in each simulator
    traced_runs = {label: {"backend": b, "result": rs} for label, b, _, rs in rows}
    traced = transfer_plot(traced_runs, run_dir / "transfer_trajectories.png") if record else None
    _, _, base, res = rows[0]
    summary = {"episodes": n, "seed": res["seed"], "base_success": base["success"], "resip_success": res["success"],
               "base_mean_length": base["mean_episode_length"], "resip_mean_length": res["mean_episode_length"],
               "env_steps": meta["env_steps"], "train_time_s": meta["train_time_s"], "task": cfg.task,
               "policy": "checkpoint (torch): base on the runtime's synchronous chunk schedule + mean residual",
               "kept": meta.get("best")}
    if len(rows) > 1:
        summary["simulators"] = {label: {"backend": b, "base_success": bs["success"], "resip_success": rs["success"]}
                                 for label, b, bs, rs in rows}
        for label, s in summary["simulators"].items():
            s["robustness"] = sweeps.get(label, [])
        if (traced_summary := signal_summary(traced_runs, traced)) is not None:
            summary["transfer_traces"] = traced_summary
    summary["robustness"] = sweeps.get(pairs[0][0], [])
    atomic_write_json(run_dir / "eval.json", summary)
    lines = [f"# Evaluation of `{run_dir}`", "",
             f"ResiP on task `{cfg.task}` over the frozen base `{cfg.base}`; seed {cfg.seed}, "
             f"{meta['env_steps']} env steps ({meta['train_time_s']:.0f} s). {n} held-out episodes from seed "
             f"{res['seed']}, the same episodes and base noise for both rows in every simulator.", ""]
    if (kept := meta.get("best")) is not None:
        lines += [f"The residual is the actor kept at {kept['env_steps']} env steps, the best in-training evaluation "
                  f"({kept['success']:.1%} of {kept['episodes']} selection episodes, seed {kept['seed']}).", ""]
    lines += ["| simulator | policy | success | mean length |", "|---|---|---:|---:|"]
    for label, backend, bs, rs in rows:
        sim = f"{label} ({backend})" if label == OURS else label
        lines += [f"| {sim} | base alone | {bs['success']:.1%} | {bs['mean_episode_length']:.1f} |",
                  f"| {sim} | base + residual | {rs['success']:.1%} | {rs['mean_episode_length']:.1f} |"]
    lines.append("")
    for label, sweep_rows in sweeps.items():
        table = sweep_lines(sweep_rows, task.evaluation.rates)
        lines += [f"## Robustness sweep of base + residual in {label}"] + table[1:]
    lines += signal_lines(traced_runs, traced) if record else []
    if traced is not None:
        lines += [f"![transfer trajectories: base + residual]({traced.name})"]
    atomic_write_text(run_dir / "report.md", "\n".join(lines + [""]))
    summary["report"] = str(run_dir / "report.md")
    return summary


def resip_usage_line() -> str:
    """``robot-rl train --help`` line of the residual trainer."""
    return (f"  {'resip':26s} residual PPO on a frozen BC base: --base RUN [--task T] (robot-rl train resip "
            "--help)")
