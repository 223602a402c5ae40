"""The sim-to-sim plot of tasks that trace named signals (the Panda tasks): the same initial states in each backend.

The success protocol records the first episodes' trace components and progress distances in every backend
(:class:`sim.traces.TraceRecorder`, ``result["signals"]``); this module draws them one row per episode and one
panel per signal, one line style per simulator, marks each simulator's success step, writes the traces to an
``.npz`` beside the plot, and says in the report how far apart the initial states are and when the backends part.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from robot_rl.io import atomic_write_bytes
from robot_rl.plotting import save_figure

STYLES = ("-", "--", ":", "-.")
DIVERGE_M = 0.01
"""Two backends have parted once a traced distance differs by more than this (m) between them."""


def _signals(results: dict[str, dict]) -> dict[str, dict] | None:
    sig = {label: r["result"].get("signals") for label, r in results.items()}
    return None if any(s is None for s in sig.values()) else sig


def signal_figure(results: dict[str, dict], episodes: int = 4) -> Figure | None:
    """One row per episode (the first ``episodes`` recorded), one panel per traced signal; colour: element (x y z),
    line style: simulator; a vertical line where each simulator's episode succeeded (None: no signals)."""
    sig = _signals(results)
    if sig is None:
        return None
    first = next(iter(sig.values()))
    names = list(first["values"])
    rows = min([episodes] + [len(s["episode_length"]) for s in sig.values()])
    fig, axes = plt.subplots(rows, len(names), figsize=(3.4 * len(names), 2.0 * rows + 0.8), sharex="row",
                             squeeze=False)
    for k, s in enumerate(sig.values()):
        ls, dt = STYLES[k % len(STYLES)], s["dt"]
        for i in range(rows):
            for j, name in enumerate(names):
                v = s["values"][name][i]
                t = np.arange(len(v)) * dt
                for e in range(v.shape[1]):
                    axes[i, j].plot(t, v[:, e], color=f"C{e}", ls=ls, lw=1.0)
                step = s["success_step"][i]
                if step is not None:
                    axes[i, j].axvline(step * dt, color="g", ls=ls, lw=0.8)
    for i in range(rows):
        outcome = "; ".join(f"{label}: " + (f"success at {s['success_step'][i] * s['dt']:.2f} s"
                                            if s["success_step"][i] is not None
                                            else f"no success in {s['episode_length'][i] * s['dt']:.2f} s")
                            for label, s in sig.items())
        axes[i, 0].text(0.02, 0.97, outcome, transform=axes[i, 0].transAxes, va="top", fontsize=6)
        axes[i, 0].set_ylabel(f"episode {i}")
        for j in range(len(names)):
            axes[i, j].grid(alpha=0.3)
    for j, name in enumerate(names):
        axes[0, j].set_title(name, fontsize=8)
        axes[-1, j].set_xlabel("time [s]")
    handles = [Line2D([], [], color="k", ls=STYLES[k % len(STYLES)], label=label) for k, label in enumerate(sig)]
    handles += [Line2D([], [], color=f"C{e}", label=c) for e, c in enumerate("xyz")]
    handles.append(Line2D([], [], color="g", label="success"))
    fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=7)
    fig.suptitle(f"the same initial states in {', '.join(sig)} (style: simulator; colour: x y z)", x=0.02,
                 ha="left", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def signal_plot(results: dict[str, dict], path: Path, episodes: int = 4) -> Path | None:
    """:func:`signal_figure` saved as ``path`` (PNG), and its traces as ``path`` with suffix ``.npz`` (keys
    ``<simulator>/<signal>``, ``<simulator>/success``, ``<simulator>/episode_length``); None: no signals."""
    fig = signal_figure(results, episodes)
    if fig is None:
        return None
    buf, arrays, sig = io.BytesIO(), {}, _signals(results)
    for label, s in sig.items():
        arrays |= {f"{label}/{k}": v for k, v in s["values"].items()}
        arrays[f"{label}/success"] = s["success"]
        arrays[f"{label}/episode_length"] = np.asarray(s["episode_length"])
    np.savez_compressed(buf, dt=next(iter(sig.values()))["dt"], **arrays)
    atomic_write_bytes(Path(path).with_suffix(".npz"), buf.getvalue())
    return save_figure(fig, path)


def initial_gap(results: dict[str, dict]) -> float:
    """Largest difference between the first simulator's and any other's initial frame, over every traced signal
    and recorded episode (0 where they start from the same state)."""
    sig = _signals(results)
    ref, *others = sig.values()
    return max((float(np.nanmax(np.abs(o["values"][k][:, 0] - ref["values"][k][:, 0]))) for o in others
                for k in ref["values"]), default=0.0)


def parting_times(results: dict[str, dict]) -> dict[str, list[float | None]]:
    """Per other simulator and recorded episode: the first time (s) a traced distance differs from the first
    simulator's by more than :data:`DIVERGE_M` (None: never, while both episodes ran)."""
    sig = _signals(results)
    (_, ref), *others = sig.items()
    dists = [k for k in ref["values"] if k.startswith("|")]
    out = {}
    for label, o in others:
        times = []
        for i in range(len(ref["episode_length"])):
            gap = np.zeros(0)
            for k in dists:
                a, b = ref["values"][k][i, :, 0], o["values"][k][i, :, 0]
                n = min(len(a), len(b))
                gap = np.abs(a[:n] - b[:n]) if not len(gap) else np.fmax(gap, np.abs(a[:n] - b[:n]))
            hit = np.flatnonzero(gap > DIVERGE_M)
            times.append(float(hit[0] * ref["dt"]) if len(hit) else None)
        out[label] = times
    return out


def signal_lines(results: dict[str, dict], plot: Path | None) -> list[str]:
    """The report's paragraph on the traced episodes (empty: no signals)."""
    sig = _signals(results)
    if sig is None and all(r["result"].get("traces") is None for r in results.values()):
        return ["No traced episodes: the task declares no trace components (`BatchedEnv.trace_components`).", ""]
    if sig is None or plot is None:
        return []
    ref = next(iter(sig))
    n = len(sig[ref]["episode_length"])
    parting = parting_times(results)
    dists = ", ".join(k for k in sig[ref]["values"] if k.startswith("|"))

    def outcome(s: dict, i: int) -> str:
        step = s["success_step"][i]
        return f"success at {step * s['dt']:.2f} s" if step is not None else \
            f"no success ({s['episode_length'][i] * s['dt']:.2f} s)"

    others = [label for label in sig if label != ref]
    lines = ["## Traces in each simulator", "",
             f"The first {n} held-out episodes from the same initial states in {', '.join(sig)} "
             f"([{Path(plot).name}]({Path(plot).name}); traces in `{Path(plot).with_suffix('.npz').name}`): the "
             f"initial frames differ by at most {initial_gap(results):.1e} (largest difference over every traced "
             f"signal). Parted: the first time {dists} differs from {ref}'s by more than {DIVERGE_M * 100:.0f} cm "
             "while both episodes run (—: never).", "",
             "| episode | " + " | ".join(sig) + " | " + " | ".join(f"parted ({o})" for o in others) + " |",
             "|---:|" + "---|" * (len(sig) + len(others))]
    for i in range(n):
        cells = [outcome(s, i) for s in sig.values()]
        cells += ["—" if parting[o][i] is None else f"{parting[o][i]:.2f} s" for o in others]
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    return lines + [""]


def signal_summary(results: dict[str, dict], plot: Path | None) -> dict | None:
    """What ``eval*.json`` keeps of the traced episodes: the plot, its ``.npz``, the initial gap, the parting times."""
    if _signals(results) is None or plot is None:
        return None
    return {"plot": str(plot), "traces": str(Path(plot).with_suffix(".npz")), "initial_gap": initial_gap(results),
            "parting_times_s": parting_times(results), "parting_threshold_m": DIVERGE_M}
