"""Robust hover: a quadrotor export over held-out Crazyflie vehicles, beside the ``crazyflie-hover`` baseline.

Flies RUN_DIR's export (default ``runs/crazyflie-hover-robust/seed0``) and the baseline's (the ``crazyflie-hover``
preset's export, ``--baseline``; trained with the preset and seed 0 if it does not exist) on the same ``--vehicles``
vehicles, drawn with the held-out ``--vehicle-seed`` from the published Crazyflie span (``--margin`` widens each
range by that fraction on each side; 0 = the span of issue 14), one episode each (paper initial states, noise and
disturbances). Also: both on the nominal (paper) model over the 256 held-out episodes of ``robot-rl eval``, and the
adaptation time on a far-from-nominal vehicle (:func:`sim.quadrotor.vehicles.far_vehicle`: control steps after
take-over until the position error stays below 0.1 m, median over 64 episodes that settle). Last line: JSON
``{"preset", "vehicles", "survival", "settle", "nominal_survival", "nominal_settle", "baseline_survival",
"baseline_settle", ...}``.

``--attitude``: the same at the attitude/thrust level (Crazyswarm2 ``cmd_vel_legacy`` setpoints through the
onboard PID model, which drives each vehicle): RUN_DIR defaults to ``runs/crazyflie-hover-attitude-robust/seed0``
and the baseline to the ``crazyflie-hover-attitude`` export (``runs/crazyflie-hover-attitude/seed0``); episodes
start within 30 deg of level as that preset's evaluation does.

Each export flies its own run's starts; the rotors start at the paper's 10,851 RPM on every vehicle unless the
run trained with ``task.init_rpm_relative`` or ``task.init_rpm_hover``. ``--init-rpm-relative`` starts both at the
speed action 0 commands on each vehicle instead (as the paper's code does on its env's own model; the same on the
paper's model); ``--init-rpm-hover`` at each vehicle's hover speed (as a policy that takes over a vehicle in flight
finds its rotors; the nominal figures then start at the paper model's 14,476 RPM too).

``--span NAME=LO:HI`` (repeatable; ``NAME=VALUE`` holds it at one value) redraws one vehicle parameter of
:data:`sim.quadrotor.vehicles.VEHICLE_KEYS` over another range, on each of the ``--vehicles`` vehicles (the far
vehicle stays as defined). Each vehicle keeps its other parameters, its start and its disturbance, because every
parameter is drawn from its own uniform numbers in a fixed order whatever its range; the changed one keeps its
quantile. So a respanned run isolates one parameter's share of the crashes (e.g. ``--span latency_steps=0
--span obs_noise_scale=1``: the paper's sensing on every vehicle; ``--span thrust_to_weight=1.5:2.3``: a higher
floor).

``--raptor`` also flies RAPTOR's published foundation policy (:mod:`benchmarks.raptor_policy`, the issue's
reference) on RUN_DIR's task: the same vehicles, starts, noise and latency. Every row also reports the vehicles
inside RAPTOR's training domain (no observation delay, thrust-to-weight >= 1.5); the JSON line gains
``"raptor_*"`` keys.

    python benchmarks/robust_hover.py [RUN_DIR] [--vehicles 1000] [--baseline runs/crazyflie-hover/seed0]
        [--init-rpm-relative | --init-rpm-hover] [--raptor] [--span NAME=LO:HI ...]
    python benchmarks/robust_hover.py --attitude [RUN_DIR] [--vehicles 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.raptor_policy import RAPTOR_MIN_TW, RAPTOR_PACKAGE, RaptorPolicy
from robot_rl import presets  # noqa: F401
from robot_rl.checkpoint import load_checkpoint
from robot_rl.commands.evaluate import resolve_policy
from robot_rl.commands.train import run_training
from robot_rl.commands.vehicle_eval import fly_vehicles, vehicle_distribution
from robot_rl.config import get_preset
from robot_rl.runs import load_config
from sim.quadrotor.evaluation import evaluate
from sim.quadrotor.vehicles import VEHICLE_EVAL_SEED, VEHICLE_KEYS, VehicleDistribution, far_vehicle


def respanned(dist: VehicleDistribution, spans: list[str]) -> VehicleDistribution:
    """``dist`` with each ``NAME=LO:HI`` (or ``NAME=VALUE``: ``VALUE:VALUE``) of ``spans`` as that parameter's range."""
    out = {}
    for item in spans:
        name, sep, value = item.partition("=")
        if not sep or name not in VEHICLE_KEYS:
            raise ValueError(f"--span wants NAME=LO:HI or NAME=VALUE with NAME one of {', '.join(VEHICLE_KEYS)}; "
                             f"got {item!r}")
        try:
            lo, hi = (float(x) for x in (value.split(":") if ":" in value else (value, value)))
        except ValueError:
            raise ValueError(f"--span {name}: {value!r} is not VALUE or LO:HI") from None
        out[name] = (lo, hi)  # VehicleDistribution.check: finite, low <= high, whole latency steps
    dist = replace(dist, **out)
    dist.check()
    return dist


def fly_policy(policy, task, vehicles: int, dist: VehicleDistribution, adapt_episodes: int, evaluation) -> dict:
    """Survival and settle of ``policy`` over the vehicles, on the nominal model and on the far vehicle; and over
    the vehicles inside RAPTOR's training domain (no observation delay, thrust-to-weight >= 1.5)."""
    radius = evaluation.settle_radius
    over = fly_vehicles(policy, task, vehicles, dist, radius)
    nominal = evaluate(policy, task, evaluation.episodes, radius, seed=evaluation.seed)
    far = fly_vehicles(policy, task, adapt_episodes, replace(far_vehicle(), seed=dist.seed), radius)
    steps = [s for s in far["episode_settle_step"] if s is not None]
    inside = [lat == 0 and tw >= RAPTOR_MIN_TW for lat, tw in zip(over["vehicles"]["latency_steps"],
                                                                  over["vehicles"]["thrust_to_weight"], strict=True)]
    n_in = max(sum(inside), 1)
    return {"survival": over["survival"], "settle": over["settle"], "nominal_survival": nominal["survival"],
            "nominal_settle": nominal["settle"], "far_survival": far["survival"], "far_settle": far["settle"],
            "adaptation_steps": statistics.median(steps) if steps else None,
            "raptor_domain_vehicles": sum(inside),
            "raptor_domain_survival": sum(s for s, i in zip(over["episode_survived"], inside, strict=True) if i) / n_in,
            "raptor_domain_settle": sum(s for s, i in zip(over["episode_settled"], inside, strict=True) if i) / n_in}


def _run_config(run_dir: Path, start: str | None):
    """The run's config, its episodes starting the rotors at action 0's speed (``start`` "relative") or at the
    vehicle's hover speed ("hover"); None: as the run trained."""
    cfg = load_config(run_dir)
    if start is not None:
        cfg.task = replace(cfg.task, init_rpm_relative=start == "relative", init_rpm_hover=start == "hover")
    return cfg


def _start_keys(task) -> dict:
    return {"init_rpm_relative": task.init_rpm_relative, "init_rpm_hover": task.init_rpm_hover}


def measure(run_dir: Path, vehicles: int, dist: VehicleDistribution, adapt_episodes: int,
            start: str | None = None) -> dict:
    cfg = _run_config(run_dir, start)
    policy, used = resolve_policy(run_dir)
    t0 = time.perf_counter()
    row = fly_policy(policy, cfg.task, vehicles, dist, adapt_episodes, cfg.evaluation)
    meta = load_checkpoint(run_dir / "checkpoint")[1]
    return row | {"run": str(run_dir), "preset": cfg.preset, "policy": used,
                  "train_minutes": meta["train_time_s"] / 60.0,
                  "eval_s": time.perf_counter() - t0} | _start_keys(cfg.task)


def measure_raptor(run_dir: Path, vehicles: int, dist: VehicleDistribution, adapt_episodes: int,
                   start: str | None = None) -> dict:
    """RAPTOR's foundation policy on RUN_DIR's task (the same starts, vehicles, noise and latency)."""
    cfg = _run_config(run_dir, start)
    if cfg.task.action_level != "motor_rpm":
        raise SystemExit("--raptor flies motor-level runs only (RAPTOR commands rotor speeds)")
    row = fly_policy(RaptorPolicy(), cfg.task, vehicles, dist, adapt_episodes, cfg.evaluation)
    return row | {"run": RAPTOR_PACKAGE, "preset": "raptor", "policy": RAPTOR_PACKAGE,
                  "train_minutes": None} | _start_keys(cfg.task)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", default=None,
                    help="default: runs/crazyflie-hover-robust/seed0 (--attitude: crazyflie-hover-attitude-robust)")
    ap.add_argument("--baseline", default=None, help="default: runs/crazyflie-hover/seed0 (--attitude: "
                    "runs/crazyflie-hover-attitude/seed0); trained with that preset, seed 0, if missing")
    ap.add_argument("--attitude", action="store_true", help="the attitude/thrust-level presets")
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--vehicle-seed", type=int, default=VEHICLE_EVAL_SEED)
    ap.add_argument("--margin", type=float, default=0.0, help="widen each range by this fraction per side")
    ap.add_argument("--adapt-episodes", type=int, default=64)
    start = ap.add_mutually_exclusive_group()
    start.add_argument("--init-rpm-relative", dest="start", action="store_const", const="relative", help="start "
                       "every episode's rotors at the speed action 0 commands on its vehicle (default: as each run "
                       "trained; the presets: 10,851 RPM)")
    start.add_argument("--init-rpm-hover", dest="start", action="store_const", const="hover", help="start every "
                       "episode's rotors at its vehicle's hover speed (a take-over in flight)")
    ap.add_argument("--span", action="append", default=[], metavar="NAME=LO:HI", help="draw this vehicle parameter "
                    "over LO:HI (or hold it at NAME=VALUE; repeatable); the rest of each vehicle and episode stays")
    ap.add_argument("--raptor", action="store_true", help="also fly RAPTOR's foundation policy (pip install "
                    f"{RAPTOR_PACKAGE}) on RUN_DIR's task")
    args = ap.parse_args()
    try:
        dist = respanned(vehicle_distribution(args.vehicle_seed, args.margin), args.span)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    torch.set_num_threads(1)
    robust, base_preset = (("crazyflie-hover-attitude-robust", "crazyflie-hover-attitude") if args.attitude
                           else ("crazyflie-hover-robust", "crazyflie-hover"))
    run_dir = Path(args.run_dir or f"runs/{robust}/seed0")
    base_dir = Path(args.baseline or f"runs/{base_preset}/seed0")
    if not (run_dir / "config.json").is_file():
        raise SystemExit(f"{run_dir} is not a run directory; train it: robot-rl train {robust} --seed 0 "
                         f"--out {run_dir}")
    if not (base_dir / "export" / "policy.onnx").is_file():
        print(f"baseline {base_dir} missing: training {base_preset} seed 0 there", flush=True)
        cfg = get_preset(base_preset)
        cfg.seed = 0
        run_training(cfg, base_dir, evaluate_after=False)
    rows = [measure(d, args.vehicles, dist, args.adapt_episodes, args.start)
            for d in (run_dir, base_dir)]
    if args.raptor:
        rows.append(measure_raptor(run_dir, args.vehicles, dist, args.adapt_episodes, args.start))
    print(f"{args.vehicles} vehicles, seed {args.vehicle_seed}, span widened by {args.margin:.0%}; nominal: "
          f"256 held-out paper episodes; far vehicle: {args.adapt_episodes} episodes"
          + (f"; respanned: {', '.join(args.span)}" if args.span else ""))
    print(f"{'preset':<24} {'survival':>8} {'settle':>7} {'nom_surv':>8} {'nom_set':>7} {'far_surv':>8} "
          f"{'far_set':>7} {'adapt':>5} {'train_min':>9}" + ("  in RAPTOR's domain" if args.raptor else ""))
    for r in rows:
        adapt = "-" if r["adaptation_steps"] is None else f"{r['adaptation_steps']:.0f}"
        print(f"{r['preset']:<24} {r['survival']:>8.1%} {r['settle']:>7.1%} {r['nominal_survival']:>8.1%} "
              f"{r['nominal_settle']:>7.1%} {r['far_survival']:>8.1%} {r['far_settle']:>7.1%} {adapt:>5} "
              f"{'-' if r['train_minutes'] is None else format(r['train_minutes'], '.1f'):>9}"
              + (f"  {r['raptor_domain_survival']:.1%} / {r['raptor_domain_settle']:.1%} of "
                 f"{r['raptor_domain_vehicles']}" if args.raptor else ""))
    main_row, base = rows[:2]
    extra = {} if not args.raptor else {
        "raptor_survival": rows[2]["survival"], "raptor_settle": rows[2]["settle"],
        "raptor_nominal_survival": rows[2]["nominal_survival"], "raptor_nominal_settle": rows[2]["nominal_settle"],
        "raptor_far_settle": rows[2]["far_settle"], "raptor_domain_vehicles": main_row["raptor_domain_vehicles"],
        "raptor_domain": {r["preset"] if i != 1 else "baseline": [r["raptor_domain_survival"],
                                                                  r["raptor_domain_settle"]]
                          for i, r in enumerate(rows)}}
    print(json.dumps({"preset": main_row["preset"], "vehicles": args.vehicles, "survival": main_row["survival"],
                      "settle": main_row["settle"], "nominal_survival": main_row["nominal_survival"],
                      "nominal_settle": main_row["nominal_settle"], "baseline_survival": base["survival"],
                      "baseline_settle": base["settle"], "baseline_nominal_survival": base["nominal_survival"],
                      "baseline_nominal_settle": base["nominal_settle"], "vehicle_seed": args.vehicle_seed,
                      "margin": args.margin, "adaptation_steps": main_row["adaptation_steps"],
                      "baseline_adaptation_steps": base["adaptation_steps"], "far_settle": main_row["far_settle"],
                      "baseline_far_settle": base["far_settle"], "train_minutes": main_row["train_minutes"],
                      "init_rpm_relative": main_row["init_rpm_relative"],
                      "baseline_init_rpm_relative": base["init_rpm_relative"],
                      "init_rpm_hover": main_row["init_rpm_hover"], "baseline_init_rpm_hover": base["init_rpm_hover"],
                      "spans": args.span} | extra))


if __name__ == "__main__":
    main()
