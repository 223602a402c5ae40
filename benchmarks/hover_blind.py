"""How much of the oracle's reach needs the vehicle? Corrections blind to vehicle and disturbance at first.

``hover_crashes.oracle`` saves some of a policy's robust-hover crashes with a correction that knows the vehicle,
the disturbance and the start. A deployed policy knows only what it observes: at take-over, the start. This
script asks how many of those saves survive when the first steps of the correction may depend on the start only.

Each episode the policy (RUN_DIR's export, else its checkpoint) loses over the ``robust_hover.py`` vehicles is
flown as ``--copies`` K copies from its own start: copy 0 with its own vehicle and disturbance, the others with
those of random episodes of the same draw. For the first ``--blind-steps`` S steps one correction, added to the
policy's actions, is shared by all K copies; after that each copy has its own (the oracle's knowledge). All are
optimised together through the differentiable torch env without observation noise, with the oracle's barrier
and terminal cost over ``--horizon`` steps (``hover_crashes.oracle`` with ``copies`` and ``blind_steps``). An
episode is saved when, in one iteration, copy 0 passes the oracle's test (inside the bound, ending slow, upright,
near the target) and every other copy that the policy alone passes still passes: the shared steps may not buy
copy 0 at another vehicle's expense. Each save is then flown over the whole episode, copy 0 alone, with the
evaluation's observation noise, ``--verify-draws`` times (``hover_planner.noisy_survival``); it counts if half of
them survive. ``reachable`` = (survivors + counted saves) / vehicles estimates what a controller blind to the vehicle
for its first S steps, and knowing it afterwards, could keep. It is an estimate both ways: the optimiser is local
(it may miss saves), and K vehicles stand for the whole draw (more of them can forbid a shared correction).

The reference, in the same run: the oracle itself (one copy, nothing shared) on the same crashes, iterations and
check, ``oracle_*``. Last line: JSON ``{"vehicles", "vehicle_seed", "margin", "copies", "blind_steps", "horizon",
"iters", "policy_survival", "policy_crashes", "saved_noise_free", "saved", "reachable", "oracle_saved_noise_free",
"oracle_saved", "oracle_reachable", "seconds"}``.

    python benchmarks/hover_blind.py RUN_DIR [--copies 32] [--blind-steps 10] [--iters 300] [--vehicle-seed 4000037]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.hover_crashes import fly, oracle
from benchmarks.hover_planner import noisy_survival
from robot_rl import presets  # noqa: F401
from robot_rl.commands.evaluate import resolve_policy
from robot_rl.commands.vehicle_eval import vehicle_distribution
from robot_rl.runs import load_actor, load_config
from sim.quadrotor.vehicles import VEHICLE_EVAL_SEED


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--vehicle-seed", type=int, default=VEHICLE_EVAL_SEED)
    ap.add_argument("--margin", type=float, default=0.0)
    ap.add_argument("--copies", type=int, default=32, help="vehicles each crashed start is flown with (its own "
                    "first)")
    ap.add_argument("--blind-steps", type=int, default=10, help="control steps the correction is shared for")
    ap.add_argument("--horizon", type=int, default=150)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--verify-draws", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0, help="draws the other copies' episodes")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    run_dir = Path(args.run_dir)
    task = load_config(run_dir).task
    policy, used = resolve_policy(run_dir)
    r = fly(policy, task, args.vehicles, vehicle_distribution(args.vehicle_seed, args.margin))
    crashed = (~r["alive"]).nonzero()[:, 0]
    print(f"{used}: {args.vehicles} vehicles, {len(crashed)} crashes")
    if len(crashed) == 0:
        raise SystemExit(f"{used} survives all {args.vehicles} episodes: nothing to save")
    _, actor, _ = load_actor(run_dir)
    out = oracle(actor, task, r["init"], crashed, args.horizon, args.iters, copies=args.copies,
                 blind_steps=args.blind_steps, seed=args.seed)
    # the reference: the oracle that knows each episode from the start (one copy, nothing shared)
    ref = oracle(actor, task, r["init"], crashed, args.horizon, args.iters)
    result = {"vehicles": args.vehicles, "vehicle_seed": args.vehicle_seed, "margin": args.margin,
              "copies": args.copies, "blind_steps": args.blind_steps, "horizon": args.horizon, "iters": args.iters,
              "policy_survival": r["alive"].float().mean().item(), "policy_crashes": len(crashed)}
    for name, found in (("", out), ("oracle_", ref)):
        saved = found["saved"]
        shares = noisy_survival(actor, task, r["init"], crashed[saved], found["delta"][:, saved], 1,
                                args.verify_draws)
        counted = int((shares >= 0.5).sum())
        result |= {f"{name}saved_noise_free": int(saved.sum()), f"{name}saved": counted,
                   f"{name}reachable": (args.vehicles - len(crashed) + counted) / args.vehicles}
    result["seconds"] = time.perf_counter() - t0
    print(json.dumps(result))


if __name__ == "__main__":
    main()
