"""``robot-rl eval DIR``: evaluate a run's exported policy and write ``report.md`` with plots."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from deploy import contract
from deploy.export.policy import onnx_session
from robot_rl.config import EvalConfig
from robot_rl.evaluation import evaluate, passes, robustness_sweep, summary_line
from robot_rl.io import atomic_write_json, atomic_write_text
from robot_rl.logging import read_metrics
from robot_rl.plotting import plot_trajectories, save_figure
from robot_rl.runs import load_actor, load_config


def onnx_policy(export_dir: Path):
    """A batched ``obs -> action`` function that runs ``policy.onnx`` in onnxruntime (what deploys)."""
    contract.load(export_dir)
    sess = onnx_session(export_dir / "policy.onnx")

    def fn(obs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(sess.run(["action"], {"obs": obs.cpu().numpy().astype(np.float32)})[0])

    return fn


def int8_policy(export_dir: Path):
    """The int8 variant of the export through its bit-exact NumPy reference (what ``--quantize int8`` flashes)."""
    from deploy.export.int8_reference import Int8Policy

    contract.load(export_dir)
    policy = Int8Policy(export_dir)  # cached c_int8/int8_params.npz only if quantised from this policy.onnx
    print(f"int8 parameters: {policy.origin}")

    def fn(obs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(policy(obs.cpu().numpy().astype(np.float32)), dtype=np.float32))

    return fn


def _learning_curve(run_dir: Path, path: Path) -> Path | None:
    m = read_metrics(run_dir)
    if not m or "episode_length" not in m:
        return None
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
    x = np.asarray(m["env_steps"])
    for key, a in (("episode_length", ax[0]), ("episode_return", ax[0].twinx())):
        y = np.asarray(m.get(key, []))
        ok = ~np.isnan(y)
        a.plot(x[ok], y[ok], label=key, color="C0" if key == "episode_length" else "C1")
        a.set_ylabel(key)
    ax[0].set_xlabel("env steps")
    for key in ("eval_survival", "eval_settle"):
        y = np.asarray(m.get(key, [np.nan] * len(x)))
        ok = ~np.isnan(y)
        ax[1].plot(x[ok], y[ok], "o-", label=key)
    ax[1].set_xlabel("env steps")
    ax[1].set_ylim(-0.05, 1.05)
    ax[1].legend()
    fig.suptitle("learning curve")
    return save_figure(fig, path)


def _sweep_plot(rows: list[dict], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, name in enumerate(sorted({r["parameter"] for r in rows})):
        sel = [r for r in rows if r["parameter"] == name]
        err = [r["error"] * 100 for r in sel]
        ax.plot(err, [r["settle"] for r in sel], "o-", label=f"{name} settle", color=f"C{i}")
        ax.plot(err, [r["survival"] for r in sel], "x--", color=f"C{i}", alpha=0.6)
    ax.set_xlabel("parameter error [%]")
    ax.set_ylabel("rate (o settle, x survival)")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def run_eval(run_dir: Path, episodes: int = 256, sweep: bool = True, source: str = "auto") -> dict:
    """Evaluate ``run_dir`` (its exported ONNX when present, else the checkpoint) and write the report."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    export_dir = run_dir / "export"
    if source == "int8":
        policy, used = int8_policy(export_dir), "int8 C variant (deploy.export.int8_reference, bit-exact with the C)"
    elif source == "onnx" or (source == "auto" and (export_dir / "policy.onnx").is_file()):
        policy, used = onnx_policy(export_dir), "export/policy.onnx (onnxruntime)"
    else:
        _, actor, _ = load_actor(run_dir)
        policy, used = (lambda o: actor(o)), "checkpoint (torch)"
    suffix = "" if source != "int8" else "_int8"
    ecfg = EvalConfig(**{**cfg.evaluation.__dict__, "episodes": episodes})
    # the held-out episodes: never seen by the in-training evaluations (``selection_seed``) that stop training
    result = evaluate(policy, cfg.task, episodes, ecfg.settle_radius, seed=ecfg.seed, record=8)
    rows = robustness_sweep(policy, cfg.task, ecfg, seed=ecfg.seed) if sweep else []
    labels = [f"episode {i}" for i in range(8)]
    plots = {"trajectories": plot_trajectories(list(result["traces"][:, :, :7]), labels, result["dt"],
                                               "8 evaluation episodes", run_dir / f"eval_trajectories{suffix}.png")}
    curve = _learning_curve(run_dir, run_dir / "learning_curve.png")
    if curve:
        plots["learning_curve"] = curve
    if rows:
        plots["robustness"] = _sweep_plot(rows, run_dir / f"robustness{suffix}.png")
    ok = passes(result, ecfg)
    summary = {k: v for k, v in result.items() if k != "traces"} | {"passed": ok, "policy": used, "robustness": rows}
    atomic_write_json(run_dir / f"eval{suffix}.json", summary)
    lines = [f"# Evaluation of `{run_dir}`", "", f"Preset `{cfg.preset}`, algorithm {cfg.algorithm}, seed {cfg.seed}; "
             f"policy: {used}.", "",
             f"**{summary_line(result)}** — bar (survival ≥ {ecfg.survival_bar:.0%}, settle ≥ {ecfg.settle_bar:.0%}): "
             f"{'PASSED' if ok else 'not passed'}.", "",
             f"Mean return {result['mean_return']:.1f}. Paper initial states, observation noise and disturbances "
             f"(episode seed {ecfg.seed}, held out from the in-training evaluations); "
             f"settle = survived and within {ecfg.settle_radius} m of the target at {cfg.task.episode_length} steps.",
             ""]
    if rows:
        lines += ["## Robustness sweep", "", "| parameter | error | survival | settle | median final error |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['parameter']} | {r['error']:+.0%} | {r['survival']:.1%} | {r['settle']:.1%} | "
                  f"{r['median_final_error_m'] * 100:.1f} cm |" for r in rows]
        lines.append("")
    for title, p in plots.items():
        lines += [f"## {title.replace('_', ' ')}", "", f"![{title}]({Path(p).name})", ""]
    atomic_write_text(run_dir / f"report{suffix}.md", "\n".join(lines))
    summary["report"] = str(run_dir / f"report{suffix}.md")
    return summary


def print_summary(summary: dict) -> None:
    print(json.dumps({k: summary[k] for k in ("survival", "settle", "median_final_error_m", "passed")}))
