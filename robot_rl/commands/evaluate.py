"""``robot-rl eval DIR``: evaluate a run's exported policy and write ``report.md`` with plots."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from deploy import contract
from deploy.onnx_io import onnx_session
from robot_rl.commands.transfer import (
    OURS,
    TRACE_EPISODES,
    resolve_sims,
    sweep_config,
    sweep_digest,
    sweep_lines,
    sweep_setting,
    transfer_eval,
    transfer_lines,
    transfer_plot,
)
from robot_rl.commands.transfer_signals import signal_lines, signal_summary
from robot_rl.io import atomic_write_json, atomic_write_text
from robot_rl.logging import read_metrics
from robot_rl.models.recurrent import GRUActor, StatefulPolicy
from robot_rl.plotting import plot_trajectories, save_figure
from robot_rl.runs import load_actor, load_config
from sim.registry import EvalProtocol, get_task


def onnx_policy(export_dir: Path):
    """A batched ``obs -> action`` function that runs ``policy.onnx`` in onnxruntime (what deploys)."""
    spec = contract.load(export_dir)
    sess = onnx_session(export_dir / "policy.onnx")
    if contract.is_recurrent(spec):
        return RecurrentOnnxPolicy(sess, spec["recurrent"]["state_size"])

    def fn(obs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(sess.run(["action"], {"obs": obs.cpu().numpy().astype(np.float32)})[0])

    return fn


class RecurrentOnnxPolicy:
    """A recurrent export in onnxruntime as a policy with memory (``begin_episodes`` zeroes the state)."""

    def __init__(self, session, state_size: int) -> None:
        self.session, self.size, self.state = session, state_size, None

    def begin_episodes(self, n: int) -> None:
        self.state = np.zeros((n, self.size), np.float32)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        if self.state is None or self.state.shape[0] != obs.shape[0]:
            raise ValueError(f"a recurrent policy needs begin_episodes({obs.shape[0]}) before its first step")
        action, self.state = self.session.run(["action", "state_out"], {"obs": obs.cpu().numpy().astype(np.float32),
                                                                        "state_in": self.state})
        return torch.from_numpy(action)


def int8_policy(export_dir: Path):
    """The int8 variant of the export through its bit-exact NumPy reference (what ``--quantize int8`` flashes)."""
    from deploy.export.int8_reference import Int8Policy

    contract.load(export_dir)
    policy = Int8Policy(export_dir)  # cached c_int8/int8_params.npz only if quantised from this policy.onnx
    print(f"int8 parameters: {policy.origin}")

    def fn(obs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(policy(obs.cpu().numpy().astype(np.float32)), dtype=np.float32))

    return fn


def resolve_policy(run_dir: Path, source: str = "auto"):
    """``(obs -> action, description)`` of a run: its export (``auto``: when present; ``onnx``; ``int8``: the C
    variant's reference) or its checkpoint."""
    export_dir = Path(run_dir) / "export"
    if source == "int8":
        return int8_policy(export_dir), "int8 C variant (deploy.export.int8_reference, bit-exact with the C)"
    if source == "onnx" or (source == "auto" and (export_dir / "policy.onnx").is_file()):
        return onnx_policy(export_dir), "export/policy.onnx (onnxruntime)"
    _, actor, _ = load_actor(run_dir)
    if isinstance(actor, GRUActor):
        return StatefulPolicy(actor), "checkpoint (torch, recurrent)"
    return (lambda o: actor(o)), "checkpoint (torch)"


def _learning_curve(run_dir: Path, path: Path, protocol: EvalProtocol) -> Path | None:
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
    for key in (protocol.headline[k] for k in protocol.rates if k in protocol.headline):
        y = np.asarray(m.get(key, [np.nan] * len(x)))
        ok = ~np.isnan(y)
        ax[1].plot(x[ok], y[ok], "o-", label=key)
    ax[1].set_xlabel("env steps")
    ax[1].set_ylim(-0.05, 1.05)
    ax[1].legend()
    fig.suptitle("learning curve")
    return save_figure(fig, path)


def _sweep_plot(rows: list[dict], rates: tuple[str, ...], path: Path) -> Path:
    """Rates over the relative error of each parameter; rows with a unit (latency) and the nominal row are
    horizontal lines."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    main, *others = reversed(rates)  # the last rate (quadrotor-hover: settle) is the solid line
    flat = [r for r in rows if "unit" in r or r["parameter"] == "nominal"]
    for j, r in enumerate(flat):
        ax.axhline(r[main], color="k", ls=(":", "--", "-.")[j % 3], lw=1,
                   label=f"{r['parameter']} {sweep_setting(r)}: {r[main]:.0%}")
    swept = [r for r in rows if r not in flat]
    for i, name in enumerate(sorted({r["parameter"] for r in swept})):
        sel = [r for r in swept if r["parameter"] == name]
        err = [r["error"] * 100 for r in sel]
        ax.plot(err, [r[main] for r in sel], "o-", label=f"{name} {main}", color=f"C{i}")
        for key in others:
            ax.plot(err, [r[key] for r in sel], "x--", color=f"C{i}", alpha=0.6)
    ax.set_xlabel("parameter error [%]")
    ax.set_ylabel(f"rate (o {main}" + "".join(f", x {k}" for k in others) + ")")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def run_eval(run_dir: Path, episodes: int | None = None, sweep: bool = True, source: str = "auto",
             video_episodes: int = 4, sims: tuple[str, ...] = ("ours",), sweep_episodes: int | None = None) -> dict:
    """Evaluate ``run_dir`` (its exported ONNX when present, else the checkpoint) with its task's protocol on the
    held-out episodes (``evaluation.seed``, never flown by the in-training evaluations that stop training;
    ``episodes`` None: the protocol's count) and write the report. A task that renders videos also gets
    ``eval.mp4``: the first ``video_episodes`` held-out episodes (0: no video). ``sims``: the simulator backends
    to fly in (``ours``: the task's reference; others: :mod:`robot_rl.commands.transfer`); the headline is the
    first one's, and with more than one the report (``report_transfer.md``) adds the transfer table and plot.
    ``sweep_episodes``: episodes per robustness-sweep row where the protocol has that option (the Panda tasks)."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    task = get_task(cfg.task_name)
    protocol = task.evaluation
    policy, used = resolve_policy(run_dir, source)
    suffix = "" if source != "int8" else "_int8"
    sims = tuple(sims)
    if sims != (OURS,):
        pairs = resolve_sims(task, sims)
        suffix += "_transfer" if len(sims) > 1 else f"_{sims[0]}"
    ecfg = sweep_config(replace(cfg.evaluation, episodes=cfg.evaluation.episodes if episodes is None else episodes),
                        sweep_episodes)
    seed = ecfg.seed  # held out: the in-training evaluations fly ``ecfg.selection_seed``
    record = 8 if protocol.records else (TRACE_EPISODES if len(sims) > 1 else 0)  # success protocol: signals
    transfer = {}
    if sims == (OURS,):
        result = task.evaluate(policy, cfg.task, ecfg, seed=seed, record=record)
        rows = protocol.sweep(task, policy, cfg.task, ecfg, seed) if sweep and protocol.sweep else []
    else:
        transfer = transfer_eval(task, policy, cfg.task, ecfg, pairs, sweep, record)
        result, rows = transfer[sims[0]]["result"], transfer[sims[0]]["robustness"]
        used += f"; simulator {sims[0]} (backend {pairs[0][1]})"
    plots = {}
    if result.get("traces") is not None:
        labels = [f"episode {i}" for i in range(len(result["traces"]))]
        plots["trajectories"] = plot_trajectories(list(result["traces"][:, :, :7]), labels, result["dt"],
                                                  f"{len(labels)} evaluation episodes",
                                                  run_dir / f"eval_trajectories{suffix}.png")
    curve = _learning_curve(run_dir, run_dir / "learning_curve.png", protocol)
    if curve:
        plots["learning_curve"] = curve
    if rows:
        plots["robustness"] = _sweep_plot(rows, protocol.rates, run_dir / f"robustness{suffix}.png")
    traced = transfer_plot(transfer, run_dir / f"transfer_trajectories{suffix}.png") if len(transfer) > 1 else None
    if traced is not None:
        plots["transfer_trajectories"] = traced
    video = None
    if task.video is not None and video_episodes > 0:
        video = task.video(task, cfg.task, video_episodes, seed, run_dir / f"eval{suffix}.mp4", policy=policy)
    ok = protocol.passes(result, ecfg)
    summary = {k: v for k, v in result.items() if k not in ("traces", "signals")} | {"passed": ok, "policy": used,
                                                                                   "robustness": rows}
    if video is not None:
        summary["video"] = video["video"]
    if transfer:
        summary["transfer"] = {k: {r: v["result"][r] for r in (*protocol.headline, "episodes")}
                               | {"backend": v["backend"], "passed": v["passed"], "robustness": v["robustness"]}
                               for k, v in transfer.items()}
        if (traced_summary := signal_summary(transfer, traced)) is not None:
            summary["transfer_traces"] = traced_summary
    atomic_write_json(run_dir / f"eval{suffix}.json", summary)
    bars = ", ".join(f"{k} ≥ {getattr(ecfg, k + '_bar'):.0%}" for k in protocol.rates if hasattr(ecfg, k + "_bar"))
    lines = [f"# Evaluation of `{run_dir}`", "", f"Preset `{cfg.preset}` (task `{task.name}`), algorithm "
             f"{cfg.algorithm}, seed {cfg.seed}; policy: {used}; episode seed {seed} (held out from the in-training "
             f"evaluations, which fly seed {ecfg.selection_seed}).", "",
             f"**{protocol.summary(result)}** — bar ({bars}): {'PASSED' if ok else 'not passed'}.", "",
             f"Mean return {result['mean_return']:.1f}. {protocol.describe(cfg.task, ecfg)}", ""]
    lines += sweep_lines(rows, protocol.rates)
    if "episode_success" in result:
        lines += _success_table(result)
    if len(transfer) > 1:
        lines += transfer_lines(transfer, protocol.rates, bars) + signal_lines(transfer, traced)
    for title, p in plots.items():
        lines += [f"## {title.replace('_', ' ')}", "", f"![{title}]({Path(p).name})", ""]
    if video is not None:
        outcome = ", ".join(f"{'success' if s else 'failure'} ({n} steps)"
                            for s, n in zip(video["episode_success"], video["episode_length"], strict=True))
        lines += ["## video", "", f"[{Path(video['video']).name}]({Path(video['video']).name}): the first "
                  f"{video_episodes} held-out episodes, one after another: {outcome}.", ""]
    atomic_write_text(run_dir / f"report{suffix}.md", "\n".join(lines))
    summary["report"] = str(run_dir / f"report{suffix}.md")
    summary["headline"] = {k: summary[k] for k in protocol.headline} | {"passed": ok}
    return summary


def _success_table(result: dict) -> list[str]:
    """Markdown table of the success protocol's outcome: rate with a 95 % Wilson interval, episode counts."""
    ok = np.asarray(result["episode_success"], dtype=bool)
    n, k = len(ok), int(ok.sum())
    z = 1.96
    centre = (k + z * z / 2) / (n + z * z)
    half = z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return ["## Success", "", "| episodes | successes | failures | success rate | 95 % interval | mean length |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {n} | {k} | {n - k} | {k / n:.1%} | {max(0.0, centre - half):.1%} – {min(1.0, centre + half):.1%} | "
            f"{result['mean_episode_length']:.1f} steps |", ""]


def print_summary(summary: dict) -> None:
    """The robustness sweep (one line per simulator), then the headline as the last line (JSON)."""
    for line in sweep_digest(summary):
        print(line)
    print(json.dumps(summary["headline"]))
