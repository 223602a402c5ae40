"""Lockstep gloo sums, blocking vs polling wait: per-sum latency and context switches of 2 ranks.

Two processes of one gloo group (one torch thread each) repeat a step of ``--matmuls`` 256x256 matmuls followed
by one sum of ``--floats`` float32 (PPO's gradient is ~28k) and report, per rank, the median time in the sum,
the step time and the voluntary / involuntary context switches of the whole process per step (``getrusage``:
every thread, gloo's included). Waits compared, alternating ``--repeats`` times: gloo's blocking ``wait``
(``ROBOT_RL_GLOO_SPIN_MS=0``), ``robot_rl.distributed``'s polling wait (the default), and either with each rank
pinned to its own core before the group starts (``os.sched_setaffinity``, so gloo's threads share it). Ends
with one JSON line of medians over the repeats (rank 0's figures).

    PYTHONPATH=. python benchmarks/gloo_wait.py [--steps 200] [--matmuls 10] [--repeats 2] [--pin]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, spin_ms: str, pin: bool, steps: int, matmuls: int, floats: int, queue) -> None:
    import resource

    import torch

    from robot_rl import distributed

    torch.set_num_threads(1)
    if pin:
        os.sched_setaffinity(0, {rank % os.cpu_count()})
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2", ROBOT_RL_GLOO_SPIN_MS=spin_ms)
    distributed.init("cpu")
    buf, a = torch.randn(floats), torch.randn(256, 256)
    for _ in range(20):  # warm-up
        distributed._all_reduce(buf)
    distributed.barrier()
    sums, ru0, t0 = [], resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        for _ in range(matmuls):
            torch.tanh(a @ a)
        t = time.perf_counter()
        distributed._all_reduce(buf)
        buf.mul_(0.5)
        sums.append(time.perf_counter() - t)
    step, ru1 = (time.perf_counter() - t0) / steps, resource.getrusage(resource.RUSAGE_SELF)
    queue.put({"rank": rank, "sum_ms": 1e3 * statistics.median(sums), "step_ms": 1e3 * step,
               "voluntary": (ru1.ru_nvcsw - ru0.ru_nvcsw) / steps,
               "involuntary": (ru1.ru_nivcsw - ru0.ru_nivcsw) / steps})
    distributed.shutdown()


def _run(spin_ms: str, pin: bool, steps: int, matmuls: int, floats: int) -> list[dict]:
    ctx = mp.get_context("spawn")
    queue, port = ctx.Queue(), _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, spin_ms, pin, steps, matmuls, floats, queue)) for r in range(2)]
    for p in procs:
        p.start()
    out = sorted((queue.get() for _ in procs), key=lambda r: r["rank"])
    for p in procs:
        p.join()
    return out


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--matmuls", type=int, default=10)
    parser.add_argument("--floats", type=int, default=28_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--pin", action="store_true", help="also measure both waits with ranks pinned to cores")
    args = parser.parse_args()
    configs = [("blocking", "0", False), ("polling", "100", False)]
    if args.pin:
        configs += [("blocking pinned", "0", True), ("polling pinned", "100", True)]
    rows: dict[str, list[dict]] = {name: [] for name, _, _ in configs}
    for rep in range(args.repeats):
        for name, spin_ms, pin in configs[rep % len(configs):] + configs[:rep % len(configs)]:
            load = os.getloadavg()[0]
            r = _run(spin_ms, pin, args.steps, args.matmuls, args.floats)
            rows[name].append(r[0])
            print(f"repeat {rep + 1}: {name:<16} sum {r[0]['sum_ms']:6.3f} / {r[1]['sum_ms']:6.3f} ms, step "
                  f"{r[0]['step_ms']:6.2f} / {r[1]['step_ms']:6.2f} ms, voluntary switches per step "
                  f"{r[0]['voluntary']:4.1f} / {r[1]['voluntary']:4.1f} (load average {load:.2f})", flush=True)
    result = {f"{name.replace(' ', '_')}_{k}": round(statistics.median(r[k] for r in v), 3)
              for name, v in rows.items() for k in ("sum_ms", "step_ms", "voluntary")}
    result["load_average"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
