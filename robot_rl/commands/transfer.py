"""Sim-to-sim transfer: one export flown in several simulator backends of its task (``robot-rl eval --sim``).

``ours`` is the task's reference backend (quadrotor-hover: our RK4 simulator; the Panda tasks: MuJoCo); any other
name is a registered backend of the task (quadrotor-hover and the Panda tasks: ``mujoco``, ``pybullet``). Every
backend flies the same held-out episodes (same initial states, disturbances and observation-noise draws), with the
robustness sweep in each, and the first episodes are traced in each for the transfer plot.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from robot_rl.commands.transfer_signals import signal_plot
from robot_rl.plotting import quat_to_euler_deg, save_figure
from sim.registry import Policy, TaskSpec

OURS = "ours"
STYLES = ("-", "--", ":", "-.")
TRACE_EPISODES = 4
"""Episodes whose traces a multi-simulator evaluation records and plots, where the protocol does not record its own."""


def resolve_sims(task: TaskSpec, sims: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(label, backend)`` pairs for ``--sim`` names; a one-line error names the task's backends."""
    if not sims:
        raise ValueError("--sim needs at least one simulator")
    out = []
    for name in sims:
        backend = task.backends[0] if name == OURS else name
        if backend not in task.backends:
            raise ValueError(f"task {task.name!r} has no simulator backend {name!r}; choose from "
                             f"{', '.join((OURS,) + task.backends)} ({OURS} = {task.backends[0]})")
        if backend != task.backends[0] and "impl" not in inspect.signature(task.evaluation.evaluate).parameters:
            raise ValueError(f"task {task.name!r}: its evaluation protocol flies only its reference backend")
        out.append((name, backend))
    return out


def transfer_eval(task: TaskSpec, policy: Policy, task_cfg: Any, eval_cfg: Any, sims: list[tuple[str, str]],
                  sweep: bool, record: int) -> dict[str, dict]:
    """Evaluate ``policy`` in each backend of ``sims``: ``{label: {"result", "robustness"}}``."""
    protocol, out = task.evaluation, {}
    for label, backend in sims:
        result = protocol.evaluate(task, policy, task_cfg, eval_cfg, eval_cfg.episodes, eval_cfg.seed, record,
                                   impl=backend)
        rows = (protocol.sweep(task, policy, task_cfg, eval_cfg, eval_cfg.seed, impl=backend)
                if sweep and protocol.sweep else [])
        out[label] = {"backend": backend, "result": result, "robustness": rows, "passed": protocol.passes(result,
                                                                                                           eval_cfg)}
    return out


def transfer_plot(results: dict[str, dict], path: Path, episodes: int = TRACE_EPISODES) -> Path | None:
    """The same first ``episodes`` initial states flown in each backend: pose traces (the quadrotor: position and
    attitude over time, one colour per episode, one line style per simulator) or the task's traced signals
    (:func:`robot_rl.commands.transfer_signals.signal_plot`); None: the evaluation recorded neither."""
    if any(r["result"].get("traces") is None for r in results.values()):
        return signal_plot(results, path, episodes)
    fig, axes = plt.subplots(2, 3, figsize=(13, 6), sharex=True)
    dt = next(iter(results.values()))["result"]["dt"]
    for k, (label, r) in enumerate(results.items()):
        traces = np.asarray(r["result"]["traces"], dtype=np.float64)
        for i in range(min(episodes, len(traces))):
            s, t = traces[i], np.arange(len(traces[i])) * dt
            euler = quat_to_euler_deg(s[:, 3:7])
            for j in range(3):
                kw = {"color": f"C{i}", "ls": STYLES[k % len(STYLES)], "lw": 1.0,
                      "label": f"{label} ep {i}" if j == 0 else None}
                axes[0, j].plot(t, s[:, j], **kw)
                axes[1, j].plot(t, euler[:, j], **kw)
    for j, (pos, ang) in enumerate(zip("xyz", ("roll", "pitch", "yaw"), strict=True)):
        axes[0, j].set_ylabel(f"{pos} [m]")
        axes[1, j].set_ylabel(f"{ang} [deg]")
        axes[1, j].set_xlabel("time [s]")
        for row in (0, 1):
            axes[row, j].grid(alpha=0.3)
    axes[0, 0].legend(fontsize=6, ncol=len(results))
    fig.suptitle(f"the same initial states flown in {', '.join(results)} (colour: episode, style: simulator)")
    return save_figure(fig, path)


def transfer_lines(results: dict[str, dict], rates: tuple[str, ...], bars: str) -> list[str]:
    """The report section: the transfer table, then each backend's robustness sweep as min/max per parameter."""
    lines = ["## Sim-to-sim transfer", "", f"The same export and held-out episodes in each simulator (bar: {bars}).",
             "", "| simulator | backend | " + " | ".join(rates) + " | median final error | passed | sweep: worst "
             + " / worst ".join(rates) + " |", "|---|---|" + "---|" * (len(rates) + 3)]
    for label, r in results.items():
        res, rows = r["result"], r["robustness"]
        worst = [f"{min(row[k] for row in rows):.1%}" if rows else "—" for k in rates]
        err = res.get("median_final_error_m")
        lines.append(f"| {label} | {r['backend']} | " + " | ".join(f"{res[k]:.1%}" for k in rates)
                     + f" | {'—' if err is None else f'{err * 100:.1f} cm'} | {'yes' if r['passed'] else 'no'} | "
                     + " / ".join(worst) + " |")
    sweeps = [(label, r["robustness"]) for label, r in results.items() if r["robustness"]]
    if sweeps and "setting" in sweeps[0][1][0]:  # named settings (the Panda tasks): one column per row of the sweep
        cols = list(dict.fromkeys(_column(row) for row in sweeps[0][1]))
        lines += ["", f"Robustness sweep per simulator ({' / '.join(rates)}; {sweeps[0][1][0]['episodes']} episodes "
                  "per cell, the same in every column):", "", "| simulator | " + " | ".join(cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for label, rows in sweeps:
            cells = {_column(row): " / ".join(f"{row[k]:.0%}" for k in rates) for row in rows}
            lines.append(f"| {label} | " + " | ".join(cells.get(c, "—") for c in cols) + " |")
    elif sweeps:
        params = list(dict.fromkeys(row["parameter"] for row in sweeps[0][1]))
        errors = list(dict.fromkeys(row["error"] for row in sweeps[0][1]))
        lines += ["", f"Robustness sweep per simulator ({' / '.join(rates)}):", "",
                  "| simulator | parameter | " + " | ".join(f"{e:+.0%}" for e in errors) + " |",
                  "|---|---|" + "---|" * len(errors)]
        for label, rows in sweeps:
            for prm in params:
                cells = {row["error"]: " / ".join(f"{row[k]:.0%}" for k in rates) for row in rows
                         if row["parameter"] == prm}
                lines.append(f"| {label} | {prm} | " + " | ".join(cells.get(e, "—") for e in errors) + " |")
    return lines + [""]


def sweep_setting(row: dict) -> str:
    """How a sweep row's parameter is off: its named setting (``×0.8``, ``+10 ms``) or the relative error."""
    return row.get("setting") or f"{row['error']:+.0%}"


def _column(row: dict) -> str:
    return "nominal" if row["parameter"] == "nominal" else f"{row['parameter'].replace('_', ' ')} {sweep_setting(row)}"


def sweep_lines(rows: list[dict], rates: tuple[str, ...]) -> list[str]:
    """The report's robustness-sweep table: one line per row, its rates in %, lengths in steps, ``*_m`` in cm."""
    if not rows:
        return []
    cols = [k for k in rows[0] if k not in ("parameter", "error", "setting", "unit", "episodes")]
    names = " | ".join(c.removesuffix("_m").replace("_", " ") for c in cols)
    head = ["## Robustness sweep", ""]
    if "episodes" in rows[0]:
        head += [f"{rows[0]['episodes']} held-out episodes per row (the same initial states in every row; one "
                 "parameter off each).", ""]

    def cell(key: str, value: float) -> str:
        if key in rates:
            return f"{value:.1%}"
        return f"{value * 100:.1f} cm" if key.endswith("_m") else f"{value:.1f}"

    level = "setting" if "setting" in rows[0] else "error"
    return head + [f"| parameter | {level} | {names} |", "|---|---|" + "---|" * len(cols)] + [
        f"| {r['parameter']} | {sweep_setting(r)} | " + " | ".join(cell(c, r[c]) for c in cols) + " |"
        for r in rows] + [""]


def sweep_config(ecfg: Any, sweep_episodes: int | None) -> Any:
    """``ecfg`` with ``sweep_episodes`` set (None: its own) and capped at its ``episodes`` (protocols that have one)."""
    if not hasattr(ecfg, "sweep_episodes"):
        if sweep_episodes is not None:
            raise ValueError(f"{type(ecfg).__name__} has no sweep_episodes: its sweep flies --episodes episodes")
        return ecfg
    want = ecfg.sweep_episodes if sweep_episodes is None else sweep_episodes
    return replace(ecfg, sweep_episodes=min(want, ecfg.episodes))


def sweep_digest(summary: dict) -> list[str]:
    """One line per simulator with its robustness sweep's rates (what ``robot-rl eval`` prints)."""
    per = {k: v.get("robustness") or [] for k, v in summary.get("transfer", {}).items()}
    per = per or {"": summary.get("robustness") or []}
    lines = []
    for label, rows in per.items():
        if not rows:
            continue
        rates = [k for k, v in rows[0].items() if k not in ("parameter", "error", "setting", "unit", "episodes")
                 and isinstance(v, float) and not k.endswith(("_m", "_length"))]
        cells = ", ".join(f"{_column(r)} " + "/".join(f"{r[k]:.0%}" for k in rates) for r in rows)
        where = f" in {label}" if label else ""
        lines.append(f"robustness sweep{where} ({'/'.join(rates)}, {rows[0].get('episodes', 'all')} episodes per "
                     f"row): {cells}")
    return lines
