"""Control steps/s of batched ``panda-pick-cube`` (IK included) against the physics limit of the same run.

For each thread count (1, 2) and env count (1, 16, 64, 256) it times ``env.step`` with random ee_delta
actions (IK, latency buffer, physics, reward, observations, torch conversion: the whole step). The physics
limit is the env's own worlds (same states, controls, per-env models) advanced by ``substeps`` plain
``mj_step`` calls at C speed (``mujoco.rollout``, no Python per world) on one core; it is re-measured right
before every timing window, because the 2 cores of the development machine are shared and their speed drifts.
``ratio_to_limit`` = steps/s / (limit per core x threads), the median over ``--repeats`` (limit, env) window
pairs; ``cpu_ratio_to_limit`` is the same ratio per CPU second of the process (all its threads), which other
processes on a shared machine do not distort. Two references sit beside it: the same rollout on 2 threads
(what 2 threads can get on this machine at that moment: below 2x when other processes hold the cores), and a
naive per-env Python loop (unbatched IK, one ``mj_step`` call per substep).

Thread scaling (the 2-thread goal) is measured by alternating timing windows of a 1-thread and a 2-thread env
(same seed and actions; order flipped every pair), so both see the same machine; ``thread_scaling`` is the
median of the paired ratios, beside the same pairing for the plain rollout (its ceiling on this machine).
The Amdahl evidence does not depend on the load: ``serial_fraction`` is the CPU time of the main thread outside
the threaded per-chunk work (IK, physics, observations, reward) over the CPU time of the whole step, measured on
1 thread for the env's fused path and for its numpy reference path (``fused_step=False``); the 2-thread bound
is ``1 / (s + (1 - s) / 2)``. Last line: one JSON object.

    NUMBA_NUM_THREADS=1 python benchmarks/arm_throughput.py [--seconds 1.0] [--repeats 3] [--pairs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import mujoco
import numpy as np
import torch
from mujoco import rollout

from sim.arm.config import ArmSimConfig
from sim.arm.ik import down_rotation, solve_ik
from sim.arm.pick import PickCubeConfig, PickCubeEnv


def _rate(fn, seconds: float) -> tuple[float, float]:
    """Calls per wall-clock second and per CPU second of this process (all threads) of ``fn``, over a window of
    about ``seconds`` after one warm-up call. CPU time does not depend on how much of the shared cores the other
    processes leave us, so its ratios are the robust per-core figures on a busy machine."""
    fn()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0), n / max(time.process_time() - c0, 1e-9)


class PhysicsLimit:
    """The env's physics alone at C speed: ``mujoco.rollout`` of ``substeps`` plain ``mj_step`` calls per world.

    Each measurement starts from the env's current worlds (their full physics state, solver warm start,
    controls and per-env models), so the limit sees the same contacts and motions as the timed steps.
    ``threads`` > 1 runs rollout's own thread pool (one ``MjData`` per thread, no Python per world).
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def rate(self, env: PickCubeEnv, seconds: float) -> tuple[float, float]:
        """Control steps per wall second and per CPU second of advancing ``env``'s worlds by one control step."""
        w, spec = env.worlds, mujoco.mjtState.mjSTATE_FULLPHYSICS
        n, m0 = w.num_envs, w.base_model
        state = np.zeros((n, mujoco.mj_stateSize(m0, spec)))
        for i in range(n):
            mujoco.mj_getState(w.models[i], w.datas[i], state[i], spec)
        warm = np.stack([d.qacc_warmstart for d in w.datas])
        ctrl = np.repeat(np.stack([d.ctrl for d in w.datas])[:, None, :], env.substeps, axis=1)
        datas = [mujoco.MjData(m0) for _ in range(self.threads)]
        out = np.zeros((n, env.substeps, state.shape[1]))
        sens = np.zeros((n, env.substeps, m0.nsensordata))

        def run() -> None:
            rollout.rollout(w.models, datas, state, ctrl, nstep=env.substeps, initial_warmstart=warm,
                            state=out, sensordata=sens, skip_checks=True, persistent_pool=self.threads > 1)

        wall, cpu = _rate(run, seconds)
        return n * wall, n * cpu


def naive_loop(env: PickCubeEnv, seconds: float) -> float:
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

    return env.num_envs * _rate(run, seconds)[0]


def serial_fraction(n: int, fused: bool, steps: int) -> tuple[float, float]:
    """Main-thread CPU time outside ``worlds.step`` / CPU time of the whole step (1 thread), and that serial time
    per step (s)."""
    env = PickCubeEnv(PickCubeConfig(num_envs=n))
    env.fused_step = fused
    env.reset(0)
    gen = torch.Generator().manual_seed(0)
    actions = [torch.rand(n, env.action_dim, generator=gen) * 2 - 1 for _ in range(steps + 20)]
    for a in actions[:20]:
        env.step(a)
    inside, threaded = [0.0], env.worlds.step

    def timed(*args, **kwargs) -> None:
        c = time.thread_time()
        threaded(*args, **kwargs)
        inside[0] += time.thread_time() - c

    env.worlds.step = timed
    c0 = time.thread_time()
    for a in actions[20:]:
        env.step(a)
    total = time.thread_time() - c0
    env.close()
    return (total - inside[0]) / total, (total - inside[0]) / steps


def cpu_critical_path_scaling(n: int, steps: int) -> float:
    """2-thread speedup predicted from CPU time alone: (1-thread CPU per step) / (2-thread critical path per step),
    the critical path being the main thread's serial CPU plus the slowest chunk's CPU of each step (Amdahl and
    chunk imbalance included; OS wake-up latencies and other processes excluded). The two envs step alternately
    with the same actions, so both meet the same cache and contention conditions."""
    envs = {t: PickCubeEnv(PickCubeConfig(num_envs=n, sim=ArmSimConfig(num_threads=t))) for t in (1, 2)}
    chunk_cpu: list[float] = []
    main_chunk = [0.0]
    w2 = envs[2].worlds
    run_chunk = w2._run_chunk

    def timed_chunk(k: int) -> None:
        c = time.thread_time()
        run_chunk(k)
        chunk_cpu.append(time.thread_time() - c)
        if k == len(w2.chunks) - 1:  # the calling (main) thread's own chunk
            main_chunk[0] = chunk_cpu[-1]

    w2._run_chunk = timed_chunk
    gen = torch.Generator().manual_seed(0)
    for e in envs.values():
        e.reset(0)
    one, critical = 0.0, 0.0
    for k in range(steps + 20):
        a = torch.rand(n, envs[1].action_dim, generator=gen) * 2 - 1
        c = time.thread_time()
        envs[1].step(a)
        c1 = time.thread_time() - c
        chunk_cpu.clear()
        c = time.thread_time()
        envs[2].step(a)
        c2 = time.thread_time() - c
        if k >= 20:
            one += c1
            critical += c2 - main_chunk[0] + max(chunk_cpu)
    for e in envs.values():
        e.close()
    return one / critical


def paired_scaling(n: int, seconds: float, pairs: int) -> tuple[float, float, list[float]]:
    """Median over alternating windows of (2-thread env steps/s) / (1-thread env steps/s), the same for the plain
    rollout of the 1-thread env's worlds, and the env's paired ratios."""
    envs, gens = {}, {}
    for t in (1, 2):
        envs[t] = PickCubeEnv(PickCubeConfig(num_envs=n, sim=ArmSimConfig(num_threads=t)))
        envs[t].reset(0)
        gens[t] = torch.Generator().manual_seed(0)
    steps = {t: (lambda t=t: envs[t].step(torch.rand(n, envs[t].action_dim, generator=gens[t]) * 2 - 1))
             for t in (1, 2)}
    for _ in range(20):
        for t in (1, 2):
            steps[t]()
    env_ratios, plain_ratios = [], []
    for k in range(pairs):
        order = (1, 2) if k % 2 == 0 else (2, 1)
        rate = {t: _rate(steps[t], seconds)[0] for t in order}
        env_ratios.append(rate[2] / rate[1])
        plain = {t: PhysicsLimit(t).rate(envs[1], seconds / 2)[0] for t in order}
        plain_ratios.append(plain[2] / plain[1])
    for e in envs.values():
        e.close()
    return float(np.median(env_ratios)), float(np.median(plain_ratios)), env_ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--pairs", type=int, default=7, help="alternating 1-/2-thread windows per env count")
    parser.add_argument("--scaling-envs", type=int, nargs="+", default=[64, 256])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; NUMBA_NUM_THREADS="
          f"{os.environ.get('NUMBA_NUM_THREADS', 'unset')}")
    naive_env = PickCubeEnv(PickCubeConfig(num_envs=16))
    naive = naive_loop(naive_env, args.seconds)
    naive_limit = PhysicsLimit(1).rate(naive_env, args.seconds)[0]
    print(f"naive per-env Python loop (16 envs): {naive:,.0f} control steps/s ({naive / naive_limit:.2f} of the "
          f"limit {naive_limit:,.0f})")
    rows = []
    for threads in args.threads:
        for n in args.envs:
            env = PickCubeEnv(PickCubeConfig(num_envs=n, sim=ArmSimConfig(num_threads=threads)))
            gen = torch.Generator().manual_seed(0)
            env.reset(0)

            def one(env=env, n=n, gen=gen):
                return env.step(torch.rand(n, env.action_dim, generator=gen) * 2 - 1)

            for _ in range(20):  # leave the reset pose: the arm moves as it will in the windows
                one()
            rates, limits, ratios, cpu_ratios, plain = [], [], [], [], []
            for _ in range(args.repeats):
                lim_wall, lim_cpu = PhysicsLimit(1).rate(env, args.seconds / 2)
                if threads > 1:
                    plain.append(PhysicsLimit(threads).rate(env, args.seconds / 2)[0] / lim_wall)
                wall, cpu = _rate(one, args.seconds)
                rates.append(n * wall)
                limits.append(lim_wall)
                ratios.append(n * wall / (lim_wall * threads))
                cpu_ratios.append(n * cpu / lim_cpu)
            row = {"envs": n, "threads": threads, "steps_per_s": float(np.median(rates)),
                   "limit_steps_per_s": float(np.median(limits)), "ratio_to_limit": float(np.median(ratios)),
                   "cpu_ratio_to_limit": float(np.median(cpu_ratios))}
            if plain:
                row["plain_thread_scaling"] = float(np.median(plain))
            rows.append(row)
            extra = f", plain rollout on {threads} threads {row['plain_thread_scaling']:.2f}x one" if plain else ""
            print(f"{threads} thread(s) {n:4d} envs: {row['steps_per_s']:9,.0f} steps/s, limit "
                  f"{row['limit_steps_per_s']:8,.0f}/core, ratio to limit x threads {row['ratio_to_limit']:.2f} "
                  f"(per CPU second: {row['cpu_ratio_to_limit']:.2f}){extra}")
            env.close()
    amdahl = {}
    for n in args.scaling_envs:
        for fused in (True, False):
            frac, per_step = serial_fraction(n, fused, steps=100)
            amdahl[f"{n}_{'fused' if fused else 'numpy'}"] = {"serial_fraction": round(frac, 4),
                                                            "serial_ms_per_step": round(per_step * 1e3, 3),
                                                            "two_thread_bound": round(1 / (frac + (1 - frac) / 2), 3)}
            print(f"{n:4d} envs, {'fused kernel' if fused else 'numpy path  '}: serial main-thread CPU "
                  f"{per_step * 1e3:.3f} ms/step = {frac:.2%} of the step (Amdahl bound on 2 threads "
                  f"{1 / (frac + (1 - frac) / 2):.2f}x)")
        cpu_scaling = cpu_critical_path_scaling(n, steps=100)
        amdahl[f"{n}_cpu_critical_path_scaling"] = round(cpu_scaling, 3)
        print(f"{n:4d} envs: 2-thread speedup from CPU time (main thread's serial work + slowest chunk per step): "
              f"{cpu_scaling:.2f}x")
    scalings, plains = {}, {}
    for n in args.scaling_envs:
        scalings[n], plains[n], each = paired_scaling(n, args.seconds, args.pairs)
        print(f"{n:4d} envs: 2 threads / 1 thread, median of {args.pairs} alternating pairs: {scalings[n]:.2f}x "
              f"(pairs {', '.join(f'{r:.2f}' for r in each)}); plain rollout in the same windows {plains[n]:.2f}x")
    scaling = max(scalings.values()) if scalings else None
    top = max(rows, key=lambda r: (r["threads"], r["envs"]))
    summary = {"steps_per_s": round(top["steps_per_s"], 1), "limit_steps_per_s": round(top["limit_steps_per_s"], 1),
               "ratio_to_limit": round(top["ratio_to_limit"], 3), "threads": top["threads"], "envs": top["envs"],
               "cpu_ratio_to_limit": round(top["cpu_ratio_to_limit"], 3),
               "naive_steps_per_s": round(naive, 1),
               "thread_scaling": round(scaling, 3) if scaling is not None else None,
               "thread_scaling_by_envs": {n: round(v, 3) for n, v in scalings.items()},
               "plain_rollout_thread_scaling_by_envs": {n: round(v, 3) for n, v in plains.items()},
               "amdahl": amdahl,
               "load_average": round(os.getloadavg()[0], 2),
               "rows": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
