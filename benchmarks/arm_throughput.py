"""Control steps/s of batched ``panda-pick-cube`` (IK included) against the physics limit of the same run.

For each thread count (1, 2) and env count (1, 16, 64, 256) it times ``env.step`` with random ee_delta
actions; the physics limit is the same model and substeps advanced by plain ``mj_step(m, d, nstep)`` at C speed
(no Python per substep, one core), measured in this process; the naive reference is a per-env Python loop
that calls the unbatched IK and ``mj_step`` once per substep. ``ratio_to_limit`` = steps/s / (limit per core x
threads). Medians of ``--repeats`` timings. Last line: one JSON object.

    python benchmarks/arm_throughput.py [--seconds 1.0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import mujoco
import numpy as np
import torch

from sim.arm.ik import down_rotation, solve_ik
from sim.arm.pick import PickCubeConfig, PickCubeEnv


def _time(fn, seconds: float, repeats: int) -> float:
    """Median calls/s of ``fn`` over ``repeats`` windows of about ``seconds``."""
    rates = []
    fn()
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn()
            n += 1
        rates.append(n / (time.perf_counter() - t0))
    return float(np.median(rates))


def physics_limit(env: PickCubeEnv, seconds: float, repeats: int) -> float:
    """Control steps/s of plain ``mj_step`` with ``nstep = substeps`` in one world (one core)."""
    m, d = env.worlds.models[0], mujoco.MjData(env.worlds.models[0])
    mujoco.mj_setState(m, d, env.worlds.get_state()[0], mujoco.mjtState.mjSTATE_INTEGRATION)
    state = env.worlds.get_state()[0]

    def run() -> None:
        mujoco.mj_setState(m, d, state, mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_step(m, d, nstep=env.substeps * 50)

    return 50 * _time(run, seconds, repeats)


def naive_loop(env: PickCubeEnv, seconds: float, repeats: int) -> float:
    """Control steps/s of a per-env Python loop: unbatched IK, then one ``mj_step`` call per substep."""
    rng = np.random.default_rng(0)
    worlds = env.worlds

    def run() -> None:
        for i in range(env.num_envs):
            m, d = worlds.models[i], worlds.datas[i]
            q = d.qpos[:7].copy()
            target = env.controller.pos_target[i:i + 1] + rng.uniform(-1, 1, (1, 3)) * 0.002
            d.ctrl[:7] = solve_ik(q[None], target, down_rotation(np.zeros(1)), max_iter=10).q[0]
            for _ in range(env.substeps):
                mujoco.mj_step(m, d)

    return env.num_envs * _time(run, seconds, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    probe = PickCubeEnv(PickCubeConfig(num_envs=1))
    limit = physics_limit(probe, args.seconds, args.repeats)
    print(f"physics limit (plain mj_step, {probe.substeps} substeps, 1 core): {limit:,.0f} control steps/s")
    naive = naive_loop(PickCubeEnv(PickCubeConfig(num_envs=16)), args.seconds, args.repeats)
    print(f"naive per-env Python loop (16 envs): {naive:,.0f} control steps/s ({naive / limit:.2f} of the limit)")
    rows = []
    for threads in args.threads:
        for n in args.envs:
            env = PickCubeEnv(PickCubeConfig(num_envs=n, sim=PickCubeConfig().sim.__class__(num_threads=threads)))
            gen = torch.Generator().manual_seed(0)
            env.reset(0)
            def one(env=env, n=n, gen=gen):
                return env.step(torch.rand(n, env.action_dim, generator=gen) * 2 - 1)

            rate = n * _time(one, args.seconds, args.repeats)
            ratio = rate / (limit * threads)
            rows.append({"envs": n, "threads": threads, "steps_per_s": rate, "ratio_to_limit": ratio})
            print(f"{threads} thread(s) {n:4d} envs: {rate:9,.0f} steps/s, ratio to limit x threads {ratio:.2f}")
            env.close()
    best = {t: max(r["steps_per_s"] for r in rows if r["threads"] == t) for t in args.threads}
    if len(best) > 1:
        print(f"2 threads / 1 thread (best env count): {best[max(best)] / best[min(best)]:.2f}x")
    top = max(rows, key=lambda r: (r["threads"], r["envs"]))
    print(json.dumps({"steps_per_s": round(top["steps_per_s"], 1), "limit_steps_per_s": round(limit, 1),
                      "ratio_to_limit": round(top["ratio_to_limit"], 3), "threads": top["threads"],
                      "envs": top["envs"], "naive_steps_per_s": round(naive, 1),
                      "thread_scaling": round(best[max(best)] / best[min(best)], 3) if len(best) > 1 else None,
                      "rows": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]}))


if __name__ == "__main__":
    main()
