"""Sim-to-sim transfer: one export flown in several simulator backends of its task (``robot-rl eval --sim``).

``ours`` is the task's reference backend (quadrotor-hover: our RK4 simulator); any other name is a registered
backend of the task (quadrotor-hover: ``mujoco``, ``pybullet``). Every backend flies the same held-out episodes
(same initial states, disturbances and observation-noise draws), with the robustness sweep in each.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from robot_rl.plotting import plot_trajectories
from sim.registry import Policy, TaskSpec

OURS = "ours"


def resolve_sims(task: TaskSpec, sims: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(label, backend)`` pairs for ``--sim`` names; a one-line error names the task's backends."""
    if not sims:
        raise ValueError("--sim needs at least one simulator")
    out = []
    for name in sims:
        backend = task.backends[0] if name == OURS else name
        if backend not in task.backends:
            raise ValueError(f"task {task.name!r} has no simulator backend {name!r}; choose from "
                             f"{', '.join((OURS,) + task.backends[1:])}")
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


def transfer_plot(results: dict[str, dict], path: Path, episodes: int = 3) -> Path | None:
    """The same first ``episodes`` initial states flown in each backend (one line per backend and episode)."""
    traces, labels = [], []
    for label, r in results.items():
        tr = r["result"].get("traces")
        if tr is None:
            return None
        for i in range(min(episodes, len(tr))):
            traces.append(tr[i])
            labels.append(f"{label} ep {i}")
    return plot_trajectories(traces, labels, results[next(iter(results))]["result"]["dt"],
                             f"same initial states in {', '.join(results)}", path)


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
    if sweeps:
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
