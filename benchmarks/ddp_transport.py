"""Latency of one gradient sum between 2 CPU ranks: gloo's all-reduce vs the local sockets of a single-node group.

Two ranks (one torch thread each) sum a ``--numel``-float buffer (PPO's actor + critic gradient: 28k) ``--steps``
times in lockstep, with ``--compute`` 256x256 matmuls between sums (0: back to back, pure latency), once through
``torch.distributed.all_reduce`` (gloo) and once through ``robot_rl.local_reduce.LocalReducer``; the two
alternate ``--repeats`` times (medians). Reported per sum: median and mean time inside the call on rank 0, and
the wall time of a whole step (compute + sum).

    PYTHONPATH=. python benchmarks/ddp_transport.py [--numel 28105] [--steps 300] [--compute 0]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _worker(rank: int, port: int, transport: str, numel: int, steps: int, compute: int, queue) -> None:
    import torch
    import torch.distributed as dist

    from robot_rl import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2")
    os.environ[distributed.LOCAL_REDUCE_ENV] = "1" if transport == "local" else "0"
    if os.environ.get("PIN_EXPERIMENT"):
        os.sched_setaffinity(0, {rank})
    distributed.init("cpu")
    torch.set_num_threads(1)
    x, a = torch.randn(numel), torch.randn(256, 256)
    for _ in range(10):  # warm-up
        distributed.all_sum(x)
    dist.barrier()
    times, start = [], time.perf_counter()
    for _ in range(steps):
        for _ in range(compute):
            a @ a
        t = time.perf_counter()
        distributed.all_sum(x)
        times.append(time.perf_counter() - t)
    times.append((time.perf_counter() - start) / steps)  # last: the wall time of a whole step
    queue.put((rank, times))
    distributed.shutdown()


def _measure(transport: str, numel: int, steps: int, compute: int) -> list[float]:
    from ddp_scaling import _free_port

    ctx = mp.get_context("spawn")
    queue, port = ctx.Queue(), _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, transport, numel, steps, compute, queue)) for r in range(2)]
    for p in procs:
        p.start()
    out = dict(queue.get() for _ in procs)
    for p in procs:
        p.join()
    return out[0]


def main() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numel", type=int, default=28105)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--compute", type=int, default=0, help="256x256 matmuls between two sums")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, dict[str, list[float]]] = {t: {"median": [], "mean": [], "step": []} for t in ("gloo", "local")}
    for rep in range(args.repeats):
        for t in ("gloo", "local") if rep % 2 == 0 else ("local", "gloo"):
            load = os.getloadavg()[0]
            *times, step = _measure(t, args.numel, args.steps, args.compute)
            rows[t]["step"].append(step)
            rows[t]["median"].append(statistics.median(times))
            rows[t]["mean"].append(statistics.mean(times))
            print(f"repeat {rep + 1}: {t:<5} median {1e3 * rows[t]['median'][-1]:.3f} ms, mean "
                  f"{1e3 * rows[t]['mean'][-1]:.3f} ms per sum, {1e3 * step:.3f} ms per step with its compute "
                  f"(load average {load:.2f})", flush=True)
    med = {t: {k: statistics.median(v) for k, v in r.items()} for t, r in rows.items()}
    result = {"numel": args.numel, "compute": args.compute}
    for t in ("gloo", "local"):
        result |= {f"{t}_{k}_ms": round(1e3 * med[t][k], 3) for k in ("median", "mean", "step")}
    result["load_average"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
