"""Data-parallel scaling on CPU: env-steps/s and time per update of 1 rank vs 2 ranks (gloo group), same total work.

Each rank is a process with one torch and one numba thread (``robot_rl.distributed.init``, as under ``torchrun``)
that runs the real training iteration (``Runner._iteration``: rollout on ``--num-envs`` quadrotor-hover envs of
its own, then the update with gradients all-reduced over the group). The 1-rank run does ``--iterations``
iterations; each of the 2 ranks does half as many, so both runs step the same number of env steps and the
2-rank run finishes them in half the time if nothing is lost (efficiency = 2-rank throughput / (2 x 1-rank
throughput); 1.0 ideal).

What the cores allow is measured in the same run: two independent 1-rank processes at once (no communication),
summed (``steps_per_s_2_independent``); ``efficiency_vs_cores`` = 2-rank throughput / that, the part of the loss
due to the process group rather than to cores shared with other jobs. Every configuration is measured the same
way: one warm-up iteration per process, all its processes start together (a shared barrier), throughput = all
env steps / (last end - common start). The configurations alternate, ``--repeats`` times in a rotated order
(medians; also the median of each repeat's 2-rank / independent ratio). The load average is printed beside
each run: on a shared machine re-measure on a quiet one.

    PYTHONPATH=. python benchmarks/ddp_scaling.py [--algorithm ppo|apg] [--num-envs 256] [--iterations 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim_throughput import available_cores  # noqa: E402


def _config(algorithm: str, num_envs: int):
    from robot_rl.config import TrainConfig

    cfg = TrainConfig.for_task("quadrotor-hover", algorithm=algorithm, seed=0, preset="ddp-scaling")
    cfg.task.num_envs = num_envs
    cfg.on_policy.total_env_steps = 10**12  # the benchmark stops, not the schedule
    return cfg


def _worker(rank: int, world: int, port: int, algorithm: str, num_envs: int, iterations: int, queue,
            start, slot: int) -> None:
    import torch
    import torch.distributed as dist

    from robot_rl import distributed
    from robot_rl.runs import make_runner

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(slot), LOCAL_WORLD_SIZE=str(world))  # slot: the core under --pin
    distributed.init("cpu")  # as under torchrun, also for 1 rank (one numba thread per rank, gloo)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        runner = make_runner(_config(algorithm, num_envs), Path(tmp))
        update, spent = runner.algo.update, [0.0, 0]

        def timed_update(*args, **kwargs):
            t = time.perf_counter()
            out = update(*args, **kwargs)
            spent[0] += time.perf_counter() - t
            spent[1] += 1
            return out

        runner.algo.update = timed_update
        runner._iteration()  # warm-up: numba cache, first allocations
        spent[:] = [0.0, 0]
        start.wait()  # every process of the measurement starts together (group ranks and independent ones)
        t0, steps0 = time.perf_counter(), runner.env_steps
        for _ in range(iterations):
            runner._iteration()
        dist.barrier()
        queue.put({"rank": rank, "start": t0, "end": time.perf_counter(), "env_steps": runner.env_steps - steps0,
                   "update_s": spent[0] / max(spent[1], 1)})
    distributed.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(world: int, algorithm: str, num_envs: int, iterations: int, independent: bool = False) -> dict:
    """One measurement: ``world`` ranks of one group, or (``independent``) that many unconnected processes."""
    ctx = mp.get_context("spawn")
    queue, start = ctx.Queue(), ctx.Barrier(world)
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(0, 1, _free_port(), algorithm, num_envs, iterations, queue, start,
                                                    r))
             if independent else
             ctx.Process(target=_worker, args=(r, world, port, algorithm, num_envs, iterations, queue, start, r))
             for r in range(world)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"a rank exited with status {p.exitcode}")
    # the same clock (CLOCK_MONOTONIC) in every process: steps of all processes over the span from the common
    # start to the last one's end (a rank's env_steps already counts its whole group's)
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    steps = sum(r["env_steps"] for r in results) if independent else results[0]["env_steps"]
    update = statistics.mean if independent else max
    return {"steps_per_s": steps / span, "update_s": update(r["update_s"] for r in results)}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", choices=("ppo", "apg"), default="ppo")
    parser.add_argument("--num-envs", type=int, default=256, help="envs per rank")
    parser.add_argument("--iterations", type=int, default=8, help="of the 1-rank run (each of 2 ranks: half)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pin", action="store_true",
                        help="ROBOT_RL_PIN_CORES=1: every process on its own core (group ranks and independent ones)")
    args = parser.parse_args()
    if args.pin:
        os.environ["ROBOT_RL_PIN_CORES"] = "1"
    if args.iterations % 2:
        parser.error("--iterations must be even (2 ranks split them)")
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); "
          f"cores two busy processes get now: {available_cores():.2f}")
    runs = {"1 rank": lambda: _run(1, args.algorithm, args.num_envs, args.iterations),
            "2 ranks (gloo)": lambda: _run(2, args.algorithm, args.num_envs, args.iterations // 2),
            "2 independent": lambda: _run(2, args.algorithm, args.num_envs, args.iterations // 2, independent=True)}
    rows: dict[str, list[dict]] = {k: [] for k in runs}
    names = list(runs)
    for rep in range(args.repeats):  # alternating, in a rotated order, so a load drift hits every configuration
        for k in names[rep % len(names):] + names[:rep % len(names)]:
            load = os.getloadavg()[0]
            rows[k].append(runs[k]() | {"load": load})
            print(f"repeat {rep + 1}: {k:<16} {rows[k][-1]['steps_per_s']:>9,.0f} env-steps/s, update "
                  f"{1e3 * rows[k][-1]['update_s']:6.1f} ms (load average {load:.2f})", flush=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("steps_per_s", "update_s", "load")}
           for k, v in rows.items()}
    print(f"\n{args.algorithm}, {args.num_envs} envs per rank, {args.iterations} iterations of 1 rank "
          f"({args.repeats} repeats, median)")
    print(f"{'configuration':<16} {'env-steps/s':>12} {'update (ms)':>12} {'load avg':>9}")
    for k, v in med.items():
        print(f"{k:<16} {v['steps_per_s']:>12,.0f} {1e3 * v['update_s']:>12.1f} {v['load']:>9.2f}")
    s1, s2, ind = (med[k]["steps_per_s"] for k in ("1 rank", "2 ranks (gloo)", "2 independent"))
    # the same ratios within each repeat (runs minutes apart see different loads), then their median
    paired = statistics.median(b["steps_per_s"] / c["steps_per_s"]
                               for b, c in zip(rows["2 ranks (gloo)"], rows["2 independent"], strict=True))
    load = os.getloadavg()[0]
    print(f"load average after: {load:.2f}; efficiency {s2 / (2 * s1):.2f} of 2x one rank, "
          f"{s2 / ind:.2f} of two independent processes (what the cores allow now; {paired:.2f} as the median of "
          "each repeat's ratio)")
    result = {"ranks": 2, "steps_per_s_1": round(s1), "steps_per_s_2": round(s2),
              "efficiency": round(s2 / (2 * s1), 3), "steps_per_s_2_independent": round(ind),
              "efficiency_vs_cores": round(s2 / ind, 3), "efficiency_vs_cores_paired": round(paired, 3),
              "update_ms_1": round(1e3 * med["1 rank"]["update_s"], 2),
              "update_ms_2": round(1e3 * med["2 ranks (gloo)"]["update_s"], 2), "load_average": round(load, 2),
              "repeats": args.repeats, "pinned": args.pin}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
