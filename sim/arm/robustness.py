"""Robustness sweep of the Panda tasks' success protocol: object mass, object friction, servo gains and latency.

Each row re-runs the success evaluation (:func:`sim.evaluation.evaluate_success`) on the held-out episode seed with
one parameter off, expressed through the task config's own domain randomisation (:class:`sim.arm.config.
ArmDomainRandomization`), so every backend (MuJoCo, PyBullet: :mod:`sim.arm.physics`) applies it the way it
applies the randomisation. A factor scales both ends of the parameter's randomisation range: the same seed draws
the same uniform variates, so episode ``i`` of the ``object_mass ×0.8`` row is episode ``i`` of the ``nominal`` row
with the object 20 % lighter (same start pose, object placement, noise and latency draws). A parameter is swept
where the task randomises it (range not ``(1, 1)``: no object mass for the held peg, no object for the reaches).
The latency row adds ``sweep_latency`` seconds to ``dr.extra_latency`` (sub-step: at 50 Hz, +10 ms holds the
previous servo targets for the first 5 of 10 physics steps).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sim.evaluation import SuccessEvalConfig, evaluate_success

if TYPE_CHECKING:
    from sim.registry import Policy, TaskSpec

#: Sweep parameter name -> its field of :class:`sim.arm.config.ArmDomainRandomization` (a range of factors).
SCALED_FIELDS = {"object_mass": "object_mass_scale", "object_friction": "object_friction",
                 "servo_gains": "gain_scale"}


@dataclass
class ArmEvalConfig(SuccessEvalConfig):
    """Success protocol of the Panda tasks with its robustness sweep (``robot-rl eval``; issue 16 and 13)."""

    sweep_episodes: int = 50
    """Episodes per sweep row (the sweep runs ``1 + 2 len(sweep_scales) + 1`` rows: ~8 evaluations)."""
    sweep_scales: tuple[float, ...] = (0.8, 1.2)
    """Factors on object mass, object friction and servo gains (each where the task randomises it)."""
    sweep_latency: float = 0.01
    """Extra action latency (s) of the latency row (0: no latency row); a multiple of ``sim.physics_dt``."""


def sweep_cases(task_cfg: Any, cfg: ArmEvalConfig) -> list[tuple[dict, Any]]:
    """``(row label, task config)`` of every sweep row: the nominal config first, then one parameter off each."""
    if cfg.sweep_episodes < 1:
        raise ValueError(f"sweep_episodes must be >= 1, got {cfg.sweep_episodes}")
    dr = task_cfg.dr
    cases = [({"parameter": "nominal", "error": 0.0, "setting": "as configured"}, task_cfg)]
    for name, field in SCALED_FIELDS.items():
        lo, hi = getattr(dr, field)
        if (lo, hi) == (1.0, 1.0):
            continue
        for scale in cfg.sweep_scales:
            if scale <= 0:
                raise ValueError(f"sweep_scales must be positive, got {scale}")
            changed = replace(dr, **{field: (lo * scale, hi * scale)})
            cases.append(({"parameter": name, "error": round(scale - 1.0, 9), "setting": f"×{scale:g}"},
                          replace(task_cfg, dr=changed)))
    if cfg.sweep_latency:
        if cfg.sweep_latency < 0:
            raise ValueError(f"sweep_latency must be >= 0 s, got {cfg.sweep_latency}")
        changed = replace(dr, extra_latency=dr.extra_latency + cfg.sweep_latency)
        cases.append(({"parameter": "action_latency", "error": cfg.sweep_latency, "unit": "s",
                       "setting": f"+{cfg.sweep_latency * 1000:g} ms"}, replace(task_cfg, dr=changed)))
    return cases


def arm_sweep(spec: TaskSpec, policy: Policy, task_cfg: Any, cfg: ArmEvalConfig, seed: int,
              impl: str | None = None) -> list[dict]:
    """Success rate (and mean episode length) of ``policy`` in every row of :func:`sweep_cases`, ``sweep_episodes``
    episodes from ``seed`` each, in backend ``impl`` (None: the reference). A stateful policy is reset per row."""
    rows = []
    for label, case_cfg in sweep_cases(task_cfg, cfg):
        r = evaluate_success(spec, policy, case_cfg, cfg, cfg.sweep_episodes, seed, impl=impl)
        rows.append(label | {"success": r["success"], "mean_episode_length": r["mean_episode_length"],
                             "episodes": r["episodes"]})
    return rows
