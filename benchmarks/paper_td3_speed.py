"""Wall time of the L2F paper's TD3 (``paper-td3``: one env, 300k steps, the paper's hyper-parameters).

Trains ``paper-td3`` once (one torch thread; the preset's algorithm and hyper-parameters untouched) and reports
the runner's training time (collection + updates, no evaluation) and env+train steps per second. ``--steps``
measures a shorter run and extrapolates linearly to 300k steps: its JSON says so (``extrapolated``), and since
the updates start at 15k/30k steps a run shorter than ~60k steps over-weights the cheap collection-only start.
``--no-fused`` runs the plain autograd path for comparison; ``--beside node|plain|stepwise|sampled`` trains that
path too (stepwise: the fused path collecting one env step per iteration, as before the fused collection chunks;
sampled: the fused path sampling each batch with ``ReplayBuffer.sample``, as before ``update_from_replay``;
cyclewise: one collection and one update call per cycle, as before ``fused_cycles``), in the
same process, alternating ``--chunk``-step chunks with the main run so that both see the same machine load.
The paper's own C++ (RLtools) takes 47-62 s on this machine class; it is run side by side only where the
``rltools`` and ``l2f`` Python wheels are importable (they build from source), otherwise ``reference_wall_s`` is
null and the script says why. Last line: JSON
``{"wall_s", "steps_per_s", "reference_wall_s", ...}``; ``cpu_s`` is the CPU time of the training thread in the
run's iterations (on a shared machine the wall time includes waiting for a core; the CPU time does not).

    PYTHONPATH=$PWD NUMBA_NUM_THREADS=1 python benchmarks/paper_td3_speed.py [--seed 0] [--steps 300000]
    PYTHONPATH=$PWD python benchmarks/paper_td3_speed.py --update-threads 2      # the critics on both cores
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from robot_rl.algorithms import td3_explicit
from robot_rl.config import get_preset
from robot_rl.runners import off_policy
from robot_rl.runs import make_runner

PAPER_STEPS = 300_000
PAPER_CPP_WALL_S = (47.0, 62.0)


def reference_missing() -> str | None:
    """Why the RLtools reference cannot run here (None when its wheels are importable)."""
    missing = [m for m in ("rltools", "l2f") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"reference not run: the {' and '.join(missing)} wheel(s) are not importable here "
                f"(pip install rltools l2f builds them from source); the paper's C++ takes "
                f"{PAPER_CPP_WALL_S[0]:.0f}-{PAPER_CPP_WALL_S[1]:.0f} s on this machine class")
    return ("reference not run: rltools and l2f are importable but this script does not drive them; "
            "run RLtools' TD3 example beside it by hand")


@contextlib.contextmanager
def node_path(runner) -> Iterator[None]:
    """Run ``runner`` on the fused path as it was before the explicit TD3 update (``--beside node``): one
    autograd node per network, torch acting and the torch replay write (same maths, same random draws)."""
    runner.algo._numba_actor, runner.buffer._np = None, None
    explicit = td3_explicit.applies
    td3_explicit.applies = lambda _: False
    try:
        yield
    finally:
        td3_explicit.applies = explicit


@contextlib.contextmanager
def cyclewise() -> Iterator[None]:
    """The off-policy loop without ``fused_cycles.run_cycles`` (``--beside cyclewise``): one collection call and
    one update call per cycle, the runner's Python between them (the same draws and values)."""
    run_cycles = off_policy.run_cycles
    off_policy.run_cycles = lambda collector: None
    try:
        yield
    finally:
        off_policy.run_cycles = run_cycles


def sample_then_update(algo, buffer, batch_size: int, train_actor: bool) -> dict[str, float]:
    """``TD3.update_from_replay`` as the runner did it before (``--beside sampled``): ``buffer.sample`` for the
    critic rows (and the actor's), then ``TD3.update`` on those tensors. The same draws and values."""
    batch = buffer.sample(algo.batch_rows(batch_size), algo.gen)
    actor_batch = (buffer.sample(batch_size, algo.gen) if algo.cfg.independent_batches and algo.actor_due(train_actor)
                   else None)
    return {k: float(v) for k, v in algo.update(batch, train_actor, actor_batch).items()}


def count_cpu(runner) -> dict[str, float]:
    """Add up the CPU time of this thread spent in ``runner``'s iterations (collection + updates, as its
    ``train_time_s`` counts wall time): what the run costs a core, whatever the machine's load."""
    spent = {"cpu_s": 0.0}
    iteration = runner._iteration

    def timed():
        t = time.thread_time()
        out = iteration()
        spent["cpu_s"] += time.thread_time() - t
        return out

    runner._iteration = timed
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=PAPER_STEPS, help="env steps to run (< 300k: extrapolated)")
    ap.add_argument("--no-fused", action="store_true", help="plain autograd update path (TD3Config.fused=False)")
    ap.add_argument("--beside", choices=("", "node", "plain", "stepwise", "sampled", "cyclewise"), default="",
                    help="also train this path in the same process, alternating --chunk steps with the main run "
                         "(same load for both): node = the fused path before the explicit update, plain = autograd, "
                         "stepwise = the fused path collecting step by step (no fused collection chunks), "
                         "sampled = the fused path sampling with ReplayBuffer.sample before each TD3.update (the "
                         "loop before TD3.update_from_replay), cyclewise = the fused path with one collection call and "
                         "one update call per cycle (the loop before fused_cycles.run_cycles)")
    ap.add_argument("--chunk", type=int, default=10_000)
    ap.add_argument("--out", default="", help="keep the run directory here (default: a temporary one)")
    ap.add_argument("--update-threads", type=int, default=None,
                    help="td3.update_threads of the main run (the critics on numba's threads; the same numbers; "
                         "default: the preset's)")
    args = ap.parse_args()

    def config(fused: bool):
        cfg = get_preset("paper-td3")
        cfg.seed = args.seed
        cfg.td3.fused = fused
        cfg.off_policy.total_env_steps = args.steps
        cfg.checkpoint_every = cfg.eval_every = 0
        return cfg

    cfg = config(not args.no_fused)
    if args.update_threads is not None:
        cfg.td3.update_threads = args.update_threads
    with tempfile.TemporaryDirectory() as tmp:
        runner = make_runner(cfg, Path(args.out or tmp) if args.out else Path(tmp) / "main")
        torch.set_num_threads(cfg.threads)
        cpu = count_cpu(runner)
        if not args.beside:
            out = runner.train()
        else:
            other = make_runner(config(args.beside != "plain"), Path(tmp) / args.beside)
            if args.beside in ("node", "stepwise"):  # the fused paths before the fused collection: step by step
                other.collector = None
            if args.beside == "sampled":
                other.algo.update_from_replay = functools.partial(sample_then_update, other.algo)
            other_cpu = count_cpu(other)
            for stop in range(args.chunk, args.steps + args.chunk, args.chunk):
                out = runner.train(stop_at=stop)
                with (node_path(other) if args.beside == "node" else cyclewise() if args.beside == "cyclewise"
                      else contextlib.nullcontext()):
                    beside = other.train(stop_at=stop)
    wall = out["train_time_s"]
    steps_per_s = out["env_steps"] / wall
    extrapolated = out["env_steps"] < PAPER_STEPS
    scale = PAPER_STEPS / out["env_steps"] if extrapolated else 1.0
    wall_300k = wall * scale
    print(f"paper-td3 seed {args.seed} ({'fused' if cfg.td3.fused else 'plain'} updates): {out['env_steps']} env "
          f"steps, {runner.algo.num_updates} critic updates in {wall:.1f} s = {steps_per_s:.0f} env+train steps/s "
          f"({cpu['cpu_s']:.1f} s of CPU)"
          + (f"; extrapolated linearly to 300k steps: {wall_300k:.1f} s (EXTRAPOLATED; a lower bound: the "
             "updates start at 15k/30k steps)" if extrapolated else ""))
    extra = {}
    if args.beside:
        b_wall = beside["train_time_s"]
        print(f"beside it, alternating {args.chunk}-step chunks: {args.beside} path {b_wall:.1f} s "
              f"({b_wall * scale:.1f} s per 300k, {other_cpu['cpu_s']:.1f} s of CPU) = {b_wall / wall:.2f}x the "
              "main run's time")
        extra = {"beside": args.beside, "beside_wall_s": round(b_wall * scale, 2),
                 "beside_ratio": round(b_wall / wall, 3), "beside_cpu_s": round(other_cpu["cpu_s"] * scale, 2)}
    why = reference_missing()
    print(why)
    print(json.dumps({"wall_s": round(wall_300k, 2), "steps_per_s": round(steps_per_s, 1),
                      "reference_wall_s": None, "env_steps": out["env_steps"], "extrapolated": extrapolated,
                      "cpu_s": round(cpu["cpu_s"] * scale, 2), "fused": cfg.td3.fused, "seed": args.seed,
                      "update_threads": cfg.td3.update_threads, **extra,
                      "reference_note": why}))


if __name__ == "__main__":
    main()
