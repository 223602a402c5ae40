"""``robot-rl eval RUN --vehicles N``: fly a quadrotor export on N vehicles drawn from published Crazyflie spans.

Each of the N episodes flies its own vehicle (``sim/quadrotor/vehicles.py``) from the run's initial states (the
paper's; within 30 deg of level for attitude-level runs), noise and disturbances; at the attitude/thrust level
the onboard controller model drives each vehicle (``sim/quadrotor/attitude_level.py``). The vehicles come from a
held-out seed and, by default, from a distribution wider than the one the robust presets train on. Writes
``eval_vehicles.json`` (overall and per-vehicle survival and settle), ``report_vehicles.md`` and
``vehicles_settle.png`` (settle and survival versus each parameter).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from robot_rl.commands.evaluate import resolve_policy
from robot_rl.io import atomic_write_json, atomic_write_text
from robot_rl.plotting import save_figure
from robot_rl.runs import load_config
from sim.quadrotor.evaluation import evaluate
from sim.quadrotor.vehicles import VEHICLE_EVAL_SEED, VEHICLE_KEYS, VehicleDistribution

EVAL_MARGIN = 0.2
"""Default widening of the published span for ``--vehicles`` (the robust preset trains on the span + 10 %)."""


def vehicle_distribution(seed: int = VEHICLE_EVAL_SEED, margin: float = EVAL_MARGIN) -> VehicleDistribution:
    """The evaluation distribution: the published span grown by ``margin`` of each range, on its own seed."""
    return replace(VehicleDistribution().widened(margin), seed=seed)


def fly_vehicles(policy, task, vehicles: int, dist: VehicleDistribution, settle_radius: float = 0.1,
                 episode_seed: int | None = None) -> dict:
    """Survival and settle over ``vehicles`` vehicles of ``dist`` (one episode each) for ``task``'s observation
    layout; ``policy`` maps actor observations to actions."""
    if vehicles < 1:
        raise ValueError(f"--vehicles must be >= 1, got {vehicles}")
    if not hasattr(task, "vehicles") or getattr(task, "action_level", "") not in ("motor_rpm", "attitude_thrust"):
        raise ValueError("--vehicles evaluates quadrotor-hover runs (action level motor_rpm or attitude_thrust)")
    seed = dist.seed if episode_seed is None else episode_seed
    return evaluate(policy, task, vehicles, settle_radius, seed=seed, vehicles=dist)


def _binned(x: np.ndarray, y: np.ndarray, bins: int = 8) -> tuple[np.ndarray, np.ndarray]:
    values = np.unique(x)
    if len(values) <= bins:  # a discrete parameter (latency steps): one point per value
        return values, np.array([y[x == v].mean() for v in values])
    edges = np.quantile(x, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    centre = np.array([x[idx == i].mean() if (idx == i).any() else np.nan for i in range(bins)])
    rate = np.array([y[idx == i].mean() if (idx == i).any() else np.nan for i in range(bins)])
    return centre, rate


def settle_plot(result: dict, path: Path, title: str) -> Path:
    """Settle (solid) and survival (dashed) rate per octile of each vehicle parameter."""
    v = {k: np.asarray(result["vehicles"][k]) for k in VEHICLE_KEYS}
    settled = np.asarray(result["episode_settled"], float)
    survived = np.asarray(result["episode_survived"], float)
    cols = 5
    rows = -(-len(VEHICLE_KEYS) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), sharey=True)
    for ax, name in zip(axes.flat, VEHICLE_KEYS, strict=False):
        x = v[name]
        if np.ptp(x) > 0:
            c, r = _binned(x, settled)
            ax.plot(c, r, "o-", label="settle")
            c, r = _binned(x, survived)
            ax.plot(c, r, "x--", alpha=0.6, label="survival")
        ax.set_xlabel(name, fontsize=8)
        ax.set_ylim(-0.05, 1.05)
    for ax in list(axes.flat)[len(VEHICLE_KEYS):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def run_vehicle_eval(run_dir: Path, vehicles: int, vehicle_seed: int = VEHICLE_EVAL_SEED,
                     margin: float = EVAL_MARGIN, source: str = "auto") -> dict:
    """Evaluate ``run_dir``'s policy over ``vehicles`` held-out vehicles and write the report (see module doc)."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    policy, used = resolve_policy(run_dir, source)
    dist = vehicle_distribution(vehicle_seed, margin)
    r = fly_vehicles(policy, cfg.task, vehicles, dist, cfg.evaluation.settle_radius)
    per = [{"vehicle": i, "survived": s, "settled": t, "final_error_m": e, "settle_step": st}
           | {k: r["vehicles"][k][i] for k in VEHICLE_KEYS}
           for i, (s, t, e, st) in enumerate(zip(r["episode_survived"], r["episode_settled"], r["final_errors_m"],
                                                 r["episode_settle_step"], strict=True))]
    summary = {"vehicles": vehicles, "vehicle_seed": vehicle_seed, "margin": margin, "policy": used,
               "survival": r["survival"], "settle": r["settle"], "median_final_error_m": r["median_final_error_m"],
               "distribution": {k: list(v) for k, v in dist.ranges().items()}, "per_vehicle": per}
    plot = settle_plot(r, run_dir / "vehicles_settle.png", f"{vehicles} vehicles (seed {vehicle_seed})")
    atomic_write_json(run_dir / "eval_vehicles.json", summary)
    lines = [f"# Evaluation of `{run_dir}` over {vehicles} vehicles", "",
             f"Preset `{cfg.preset}`, seed {cfg.seed}; policy: {used}. One episode per vehicle (paper initial "
             f"states, noise, disturbances), vehicles drawn with seed {vehicle_seed} from the published Crazyflie "
             f"span widened by {margin:.0%} of each range:", "",
             "| parameter | low | high |", "|---|---:|---:|"]
    lines += [f"| {k} | {lo:g} | {hi:g} |" for k, (lo, hi) in dist.ranges().items()]
    lines += ["", f"**survival {r['survival']:.1%}, settle {r['settle']:.1%}** (settle: survived and within "
              f"{cfg.evaluation.settle_radius} m at the end); per-vehicle outcomes in eval_vehicles.json.", "",
              "## settle versus each parameter", "", f"![vehicles_settle]({plot.name})", ""]
    atomic_write_text(run_dir / "report_vehicles.md", "\n".join(lines))
    summary["report"] = str(run_dir / "report_vehicles.md")
    return summary


def print_vehicle_summary(summary: dict) -> None:
    print(json.dumps({k: summary[k] for k in ("vehicles", "vehicle_seed", "margin", "survival", "settle")}))
