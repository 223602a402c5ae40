"""Full hover-env steps per second: fused numba env vs the torch reference vs a vectorised NumPy baseline.

A full step is dynamics + observations (with actor noise and action history) + reward + termination + auto-reset,
with uniform random actions in [-1, 1] drawn before timing (random actions crash often, so resets are exercised).
Each configuration is timed ``--repeats`` times (median reported) for each impl, n_envs and thread count;
the NumPy baseline runs in the same process, single-threaded, and is checked against the torch reference first.

``fused+final`` also reads ``info["final_obs"]`` every step (the fused env builds it lazily, on first access), as
every off-policy learner does: it is the headline figure for a learner's step; ``fused`` (without it) stays in
the table. Besides wall-clock steps/s the table shows steps per CPU-second of the process (``cpu_steps/s``),
which is less disturbed when other jobs share the machine. The last line is one JSON object: the best one-thread
``fused+final`` configuration, the ``fused`` figure at the same n_envs, and the NumPy baseline there.

    PYTHONPATH=. python benchmarks/sim_throughput.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numba
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numpy_hover import NumpyHoverEnv, check_against_torch  # noqa: E402

from sim.quadrotor import FusedQuadrotorHoverEnv, QuadrotorHoverEnv, QuadrotorTaskConfig  # noqa: E402


def _spin(n: int) -> int:
    x = 0
    for i in range(n):
        x += i * i
    return x


def available_cores(n: int = 3_000_000) -> float:
    """How many cores two busy processes actually get (2.0 on an idle 2-core machine, 1.0 when shared)."""
    t = time.perf_counter()
    _spin(n)
    one = time.perf_counter() - t
    procs = [mp.Process(target=_spin, args=(n,)) for _ in range(2)]
    t = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return 2 * one / (time.perf_counter() - t)


def measure(step: Callable[[int], None], n_envs: int, repeats: int, target_s: float) -> tuple[float, float]:
    """Median wall-clock and CPU-time steps/s of ``step(i)`` over ``repeats`` runs of about ``target_s`` each."""
    step(0)  # warm-up (and numba cache load)
    t0 = time.perf_counter()
    calls = 0
    while time.perf_counter() - t0 < min(0.05, target_s) or calls < 2:
        step(calls)
        calls += 1
    per_call = (time.perf_counter() - t0) / calls
    k = max(2, int(target_s / per_call))
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        for i in range(k):
            step(i)
        wall.append(n_envs * k / (time.perf_counter() - t))
        cpu.append(n_envs * k / max(time.process_time() - c, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def bench_config(impl: str, n: int, device: str, repeats: int, target_s: float) -> tuple[float, float]:
    """Build one env and time it with pre-drawn random actions."""
    gen = torch.Generator().manual_seed(0)
    actions = [torch.rand(n, 4, generator=gen) * 2 - 1 for _ in range(8)]
    cfg = QuadrotorTaskConfig(num_envs=n, device=device)
    if impl == "numpy":
        env = NumpyHoverEnv(cfg, seed=0)
        np_actions = [a.numpy() for a in actions]
        return measure(lambda i: env.step(np_actions[i % 8]), n, repeats, target_s)
    env = QuadrotorHoverEnv(cfg, seed=0) if impl == "torch" else FusedQuadrotorHoverEnv(cfg, seed=0)
    actions = [a.to(device) for a in actions]
    read_final = impl == "fused+final"

    def step(i: int) -> None:
        info = env.step(actions[i % 8])[4]
        if read_final:  # materialise the lazily built final observations, as an off-policy learner would
            _ = info["final_obs"]["policy"], info["final_obs"]["critic"]
        if device == "cuda":
            torch.cuda.synchronize()

    return measure(step, n, repeats, target_s)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes, shorter runs (< 30 s)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="also time the torch impl on CUDA (skipped when unavailable)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    n_envs = [64, 16384] if args.quick else [1, 64, 1024, 4096, 16384]
    target_s = 0.03 if args.quick else 0.25
    repeats = 3 if args.quick else args.repeats
    max_threads = min(2, numba.config.NUMBA_NUM_THREADS)
    threads = [t for t in (1, 2) if t <= max_threads]

    cores = available_cores()
    print(f"cores available to two busy processes right now: {cores:.1f} (2-thread rows mean little below ~1.8)")
    worst = check_against_torch()
    print(f"NumPy baseline matches the torch reference (noise off, max abs diff {worst:.1e})")
    rows = []
    for n in n_envs:
        base, base_cpu = bench_config("numpy", n, "cpu", repeats, target_s)
        rows.append(("numpy", "cpu", 1, n, base, base_cpu, base))
        for impl in ("fused", "fused+final", "torch"):
            for t in threads if impl != "fused+final" else threads[:1]:
                numba.set_num_threads(t)
                torch.set_num_threads(t)
                sps, cpu = bench_config(impl, n, "cpu", repeats, target_s)
                rows.append((impl, "cpu", t, n, sps, cpu, base))
        if args.device == "cuda":
            if torch.cuda.is_available():
                sps, cpu = bench_config("torch", n, "cuda", repeats, target_s)
                rows.append(("torch", "cuda", 1, n, sps, cpu, base))
            elif n == n_envs[0]:
                print("--device cuda: no CUDA device available, skipping the CUDA runs")
    print(f"\n{'impl':<11} {'device':<6} {'threads':>7} {'n_envs':>7} {'steps/s':>12} {'cpu_steps/s':>12} "
          f"{'vs numpy':>9}")
    for impl, dev, t, n, sps, cpu, base in rows:
        print(f"{impl:<11} {dev:<6} {t:>7} {n:>7} {sps:>12,.0f} {cpu:>12,.0f} {sps / base:>8.1f}x")
    def best_of(impl: str) -> tuple:
        return max((r for r in rows if r[0] == impl and r[1] == "cpu" and r[2] == 1), key=lambda r: r[4])

    head = best_of("fused+final")
    plain = next(r for r in rows if r[0] == "fused" and r[1] == "cpu" and r[2] == 1 and r[3] == head[3])
    best_plain = best_of("fused")
    print(f"\nlearner's step (fused+final), one thread: {head[4] / 1e6:.2f} M steps/s wall ({head[5] / 1e6:.2f} M per "
          f"CPU-second) at n_envs={head[3]}, {head[4] / head[6]:.1f}x NumPy; without final_obs "
          f"{plain[4] / 1e6:.2f} M/s there (best {best_plain[4] / 1e6:.2f} M/s at n_envs={best_plain[3]})")
    print(f"cores available at the end: {available_cores():.1f}")
    result = {"impl": head[0], "device": head[1], "threads": head[2], "n_envs": head[3],
              "steps_per_s": round(head[4]), "baseline_steps_per_s": round(head[6]),
              "ratio": round(head[4] / head[6], 2), "fused_no_final_steps_per_s": round(plain[4]),
              "best_fused_no_final_steps_per_s": round(best_plain[4]), "best_fused_no_final_n_envs": best_plain[3]}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
