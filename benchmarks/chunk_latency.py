"""Latency of one action chunk (batch 1, one core): the exported sampler through onnxruntime beside the same
model sampled step by step in eager torch, for DDIM-10 and the few-step flow-matching variant.

Models have random weights of the pick-cube shape (34-D observation, 2 observation steps, 5-D action,
horizon 16): latency does not depend on the weight values. Each is exported with
:func:`deploy.export.chunked.export_chunked_policy` (which verifies it against torch) and timed through the
runtime's single-threaded session (``deploy.onnx_io.onnx_session``) with fresh noise per call; torch runs
``DiffusionPolicy.sample`` under ``no_grad`` with one thread. p50/p99 over ``--calls`` calls after a warm-up,
the median over ``--repeats`` interleaved windows (the 2 cores of the development machine are shared).
At 50 Hz with 8 executed actions per chunk, a chunk has 160 ms before the queue runs dry (asynchronous mode)
and one control period, 20 ms, in the synchronous mode: both are printed next to the p99.

    PYTHONPATH=. python benchmarks/chunk_latency.py [--denoiser mlp|unet] [--fewstep-steps 5]

Last line: one JSON object with ddim10_onnx_p50_ms, ddim10_onnx_p99_ms, ddim10_torch_p50_ms,
fewstep_onnx_p50_ms (and the torch few-step, the model size and the budgets).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from deploy.export.chunked import export_chunked_policy
from deploy.onnx_io import onnx_session
from robot_rl.policies.diffusion import DiffusionConfig, DiffusionPolicy

OBS_DIM, ACT_DIM, CONTROL_HZ = 34, 5, 50.0


def _spec() -> dict:
    # the contract's arm vocabulary with the pick-cube widths (34 in, 5 out); only the sizes matter here
    return {"observation": [{"name": "joint_position", "size": ACT_DIM, "valid_low": -4, "valid_high": 4},
                            {"name": "joint_velocity", "size": ACT_DIM, "valid_low": -20, "valid_high": 20},
                            {"name": "goal", "size": OBS_DIM - 2 * ACT_DIM, "frame": "task", "valid_low": -2,
                             "valid_high": 2}],
            "action": {"type": "joint_position", "size": ACT_DIM, "joints": [f"j{i}" for i in range(ACT_DIM)]},
            "control_rate_hz": CONTROL_HZ}


def _percentiles(fn, calls: int) -> tuple[float, float]:
    for _ in range(10):
        fn()
    ts = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        fn()
        ts[i] = time.perf_counter() - t0
    return float(np.percentile(ts, 50) * 1e3), float(np.percentile(ts, 99) * 1e3)


def measure(denoiser: str, objective: str, steps: int, calls: int, repeats: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    cfg = DiffusionConfig(denoiser=denoiser, objective=objective, num_inference_steps=steps)
    policy = DiffusionPolicy(cfg, OBS_DIM, ACT_DIM).eval()
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as d:
        doc = export_chunked_policy(d, policy, _spec(), rng.uniform(-1, 1, (64, OBS_DIM)), {}, samples=16)
        session = onnx_session(f"{d}/policy.onnx")
    obs = rng.uniform(-1, 1, (1, 2, OBS_DIM)).astype(np.float32)
    obs_t = torch.as_tensor(obs)

    def run_onnx() -> None:
        session.run(["action"], {"obs": obs, "noise": rng.standard_normal((1, 16, ACT_DIM), dtype=np.float32)})

    @torch.no_grad()
    def run_torch() -> None:
        policy.sample(obs_t, torch.randn(1, 16, ACT_DIM), steps)

    onnx_runs, torch_runs = [], []
    for _ in range(repeats):
        onnx_runs.append(_percentiles(run_onnx, calls))
        torch_runs.append(_percentiles(run_torch, max(calls // 4, 20)))
    return {"onnx_p50": float(np.median([r[0] for r in onnx_runs])),
            "onnx_p99": float(np.median([r[1] for r in onnx_runs])),
            "torch_p50": float(np.median([r[0] for r in torch_runs])), "params": doc["network"]["parameters"],
            "max_abs_error": doc["verification"]["max_abs_error_random"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--denoiser", choices=["mlp", "unet"], default="mlp")
    ap.add_argument("--fewstep-steps", type=int, default=5)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ddim = measure(args.denoiser, "ddpm", 10, args.calls, args.repeats)
    few = measure(args.denoiser, "flow", args.fewstep_steps, args.calls, args.repeats)
    period_ms, queue_ms = 1e3 / CONTROL_HZ, 8 * 1e3 / CONTROL_HZ
    print(f"denoiser {args.denoiser}, {ddim['params']} parameters; export error {ddim['max_abs_error']:.2g} / "
          f"{few['max_abs_error']:.2g}")
    print(f"{'sampler':<16}{'onnx p50':>10}{'onnx p99':>10}{'torch p50':>11}{'torch/onnx':>12}")
    for name, r in (("DDIM-10", ddim), (f"flow-{args.fewstep_steps}", few)):
        print(f"{name:<16}{r['onnx_p50']:>9.2f} {r['onnx_p99']:>9.2f} {r['torch_p50']:>10.2f} "
              f"{r['torch_p50'] / r['onnx_p50']:>11.1f}x")
    print(f"budget: {period_ms:.0f} ms per control period (synchronous), {queue_ms:.0f} ms before the queue of "
          f"8 actions runs dry (asynchronous); DDIM-10 p99 {'within' if ddim['onnx_p99'] < period_ms else 'OVER'} "
          "one period")
    print(json.dumps({"ddim10_onnx_p50_ms": round(ddim["onnx_p50"], 3),
                      "ddim10_onnx_p99_ms": round(ddim["onnx_p99"], 3),
                      "ddim10_torch_p50_ms": round(ddim["torch_p50"], 3),
                      "fewstep_onnx_p50_ms": round(few["onnx_p50"], 3),
                      "fewstep_onnx_p99_ms": round(few["onnx_p99"], 3),
                      "fewstep_torch_p50_ms": round(few["torch_p50"], 3), "fewstep_steps": args.fewstep_steps,
                      "denoiser": args.denoiser, "parameters": ddim["params"], "control_period_ms": period_ms}))


if __name__ == "__main__":
    main()
