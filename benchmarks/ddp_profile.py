"""Where the time of a 2-rank PPO iteration goes: per-phase timers on both ranks of a gloo group.

Each rank runs the benchmark's iteration (``ddp_scaling.py``: the real ``Runner._iteration``) with every
collective and the gradient averaging timed against ``time.perf_counter`` (``CLOCK_MONOTONIC``: one clock for
both processes of this machine), so the two ranks' timelines line up. Per update it reports

* ``compute``: forward, backward, clip and optimiser step (the time between collectives),
* ``flatten/unflatten``: ``average_gradients`` minus the all-reduce inside it,
* ``skew wait``: at each collective, how long the first rank to arrive waits for the other (rank imbalance and
  scheduling jitter), summed over the update, on the rank that waited,
* ``transport``: from the later rank's arrival to its return (gloo's own cost once both are there),

and the rollout of each rank. The 1-rank run of the same iterations is the reference.

    PYTHONPATH=. python benchmarks/ddp_profile.py [--num-envs 256] [--iterations 6]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddp_scaling import _config, _free_port  # noqa: E402


def _worker(rank: int, world: int, port: int, num_envs: int, iterations: int, queue) -> None:
    import torch
    import torch.distributed as dist

    from robot_rl import distributed
    from robot_rl.runs import make_runner

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    distributed.init("cpu")
    torch.set_num_threads(1)
    events: list[tuple[str, float, float]] = []  # (kind, enter, exit)
    clock = time.perf_counter

    def timed(kind, fn):
        def wrapper(*args, **kwargs):
            t = clock()
            out = fn(*args, **kwargs)
            events.append((kind, t, clock()))
            return out
        return wrapper

    dist.broadcast = timed("broadcast", dist.broadcast)
    # issue + wait of every sum and gather (they wait by polling, so dist's own calls return at once)
    distributed._all_reduce = timed("all_reduce", distributed._all_reduce)
    distributed.all_gather_cat = timed("all_gather", distributed.all_gather_cat)
    distributed.average_gradients = timed("average_gradients", distributed.average_gradients)
    with tempfile.TemporaryDirectory() as tmp:
        runner = make_runner(_config("ppo", num_envs), Path(tmp))
        runner.algo.update = timed("update", runner.algo.update)
        runner._iteration()  # warm-up
        dist.barrier()
        events.clear()
        iters = []
        for _ in range(iterations):
            t = clock()
            runner._iteration()
            iters.append((t, clock()))
        queue.put({"rank": rank, "events": events, "iters": iters})
    distributed.shutdown()


def _run(world: int, num_envs: int, iterations: int) -> list[dict]:
    ctx = mp.get_context("spawn")
    queue, port = ctx.Queue(), _free_port()
    procs = [ctx.Process(target=_worker, args=(r, world, port, num_envs, iterations, queue)) for r in range(world)]
    for p in procs:
        p.start()
    out = sorted((queue.get() for _ in procs), key=lambda r: r["rank"])
    for p in procs:
        p.join()
    return out


def _split(events: list, kind: str) -> list[list]:
    """Events of each update (between the update's enter and exit)."""
    updates = [e for e in events if e[0] == "update"]
    return [[e for e in events if e[0] != "update" and u[1] <= e[1] and e[2] <= u[2]] for u in updates]


def _breakdown(ranks: list[dict]) -> dict:
    """Per-update means (ms) of each phase; for 2 ranks also skew and transport at the collectives."""
    per_rank = []
    for r in ranks:
        updates = [e for e in r["events"] if e[0] == "update"]
        inside = _split(r["events"], "update")
        row = {"iteration": statistics.mean(b - a for a, b in r["iters"]),
               "update": statistics.mean(u[2] - u[1] for u in updates)}
        row["rollout"] = row["iteration"] - row["update"]
        ag = [[e for e in u if e[0] == "average_gradients"] for u in inside]
        comm = [[e for e in u if e[0] in ("all_reduce", "all_gather", "broadcast")] for u in inside]
        row["collectives"] = statistics.mean(len(c) for c in comm)
        row["in_collectives"] = statistics.mean(sum(e[2] - e[1] for e in c) for c in comm)
        ar_in_ag = [sum(e[2] - e[1] for e in c if any(a[1] <= e[1] and e[2] <= a[2] for a in g))
                    for c, g in zip(comm, ag, strict=True)]
        row["flatten_unflatten"] = statistics.mean(sum(e[2] - e[1] for e in g) - a
                                                   for g, a in zip(ag, ar_in_ag, strict=True))
        row["compute"] = row["update"] - row["in_collectives"] - row["flatten_unflatten"]
        per_rank.append((row, comm))
    result = {"ranks": len(ranks), "per_rank": [{k: round(1e3 * v if k != "collectives" else v, 2)
                                                 for k, v in row.items()} for row, _ in per_rank]}
    if len(ranks) == 2:
        (_, c0), (_, c1) = per_rank
        wait, transport, skews = [], [], []
        for u0, u1 in zip(c0, c1, strict=True):
            w, t = [0.0, 0.0], 0.0
            for e0, e1 in zip(u0, u1, strict=True):
                late = max(e0[1], e1[1])
                w[0 if e0[1] < e1[1] else 1] += abs(e0[1] - e1[1])
                t += max(e0[2], e1[2]) - late
                skews.append(abs(e0[1] - e1[1]))
            wait.append(w)
            transport.append(t / len(u0))
        result["skew_wait_rank0"] = round(1e3 * statistics.mean(w[0] for w in wait), 2)
        result["skew_wait_rank1"] = round(1e3 * statistics.mean(w[1] for w in wait), 2)
        result["transport_per_collective"] = round(1e3 * statistics.mean(transport), 3)
        result["skew_median_per_collective"] = round(1e3 * statistics.median(skews), 3)
        result["skew_p90_per_collective"] = round(1e3 * sorted(skews)[int(0.9 * len(skews))], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.repeats):
        for world in (1, 2):
            load = os.getloadavg()[0]
            res = _breakdown(_run(world, args.num_envs, args.iterations))
            print(json.dumps({"load": round(load, 2)} | res), flush=True)


if __name__ == "__main__":
    main()
