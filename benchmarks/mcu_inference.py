"""Instructions and estimated cycles per forward pass of the generated policy C on the Cortex-M4F (QEMU), against
a plain C loop.

Builds the paper-shaped actor (146-64-64-4, fast tanh, tanh output; random weights, which do not change the
instruction count) as float32 and int8 C, plus a plain triple-loop float baseline of the same network
(``firmware/qemu/baseline_main.c``, additionally ``-funroll-loops``), all with ``-O3 -ffp-contract=off`` for the
emulated STM32F405. Each ELF runs under ``qemu-system-arm -singlestep -d exec,nochain`` with two repeat counts;
the difference of the two executed traces divided by the difference of repeats is the cost of one forward pass
(start-up and printing cancel). QEMU counts are exact and deterministic, so one pair of runs is enough.
QEMU has no cycle model: ``benchmarks/m4_cycles.py`` prices the same executed trace with the Cortex-M4 TRM's
per-instruction timings (low and high estimate; the high one adds the STM32F405's 5 flash wait states at
168 MHz where the ART accelerator cannot hide them). On hardware, read ``DWT->CYCCNT``.
Flash and RAM: ``arm-none-eabi-size`` of the objects a policy needs (policy.o with its test vector, the rlp
kernels it calls and rlp_math.o).

Usage: ``python benchmarks/mcu_inference.py [--repeats 1 4] [--histogram]``; the last line printed is one JSON
object. ``--export DIR`` measures a trained export instead (float32 C of an MLP or of a recurrent policy, whose
control step is a forward pass and a commit of its state), last line
``{"export", "kind", "macs", "state_size", "instr", "cycles_low", "cycles_high", "us_low", "us_high",
"flash_bytes", "ram_bytes"}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from deploy.export.c_emit import fhex
from deploy.export.c_export import export_c
from deploy.export.c_toolchain import (
    M4_CFLAGS,
    QEMU_DIR,
    RLP_DIR,
    arm_size,
    build_m4_elf,
    run_qemu,
    run_tool,
)
from deploy.export.mlp_reader import read_mlp
from deploy.export.sample_policies import quadrotor_export

sys.path.insert(0, str(Path(__file__).resolve().parent))
from m4_cycles import CycleEstimate, disassemble, flash_arrays, per_forward, profile_trace  # noqa: E402

ACT = {"relu": "RLP_ACT_RELU", "tanh": "RLP_ACT_TANH", "fast_tanh": "RLP_ACT_FAST_TANH", "identity": "RLP_ACT_IDENTITY",
       "clip": "RLP_ACT_CLIP", "elu": "RLP_ACT_ELU"}


def baseline_header(export_dir: Path, x: np.ndarray, path: Path) -> None:
    """baseline_net.h: the exported network as row-major float arrays for baseline_main.c."""
    spec = read_mlp(export_dir / "policy.onnx")
    dims = [spec.in_dim] + [int(layer.weight.shape[0]) for layer in spec.layers]
    acts = [layer.activation for layer in spec.layers[:-1]] + [spec.output]
    lines = [f"#define BL_LAYERS {len(spec.layers)}", f"#define BL_MAX {max(dims)}",
             f"static const int BL_DIMS[{len(dims)}] = {{{', '.join(map(str, dims))}}};",
             f"static const int BL_ACT[{len(acts)}] = {{{', '.join(ACT[a] for a in acts)}}};"]
    for i, layer in enumerate(spec.layers):
        lines.append(f"static const float BL_W{i}[] = {{{', '.join(fhex(v) for v in layer.weight.reshape(-1))}}};")
        lines.append(f"static const float BL_B{i}[] = {{{', '.join(fhex(v) for v in layer.bias)}}};")
    refs = ", ".join(f"BL_W{i}" for i in range(len(spec.layers)))
    brefs = ", ".join(f"BL_B{i}" for i in range(len(spec.layers)))
    lines += [f"static const float *const BL_W[] = {{{refs}}};", f"static const float *const BL_B[] = {{{brefs}}};",
              f"static const float BL_X[] = {{{', '.join(fhex(v) for v in x)}}};"]
    path.write_text("\n".join(lines) + "\n")


def estimate(elf: Path, work: Path, repeats: tuple[int, int], streamed: str, in_dim: int,
             table_lookups: int = 0) -> CycleEstimate:
    """Instructions and cycle estimate of one forward pass: two traces differenced. ``streamed``: regex of the
    flash arrays read once per pass (weights, biases); the observation (``in_dim`` floats, in flash) too."""
    lo, hi = repeats
    table = disassemble(elf)
    profiles = []
    for n in (lo, hi):
        trace = work / f"{elf.stem}_{n}.log"
        run_qemu(elf, [str(n)], trace=trace)
        profiles.append(profile_trace(trace, table))
        trace.unlink()
    flash = sum(flash_arrays(elf, streamed).values()) + 4 * in_dim
    return per_forward(profiles[0], profiles[1], hi - lo, flash, table_lookups)


def object_size(cdir: Path, work: Path, kernels: list[str]) -> tuple[int, int]:
    objs = []
    for src in [cdir / "policy.c", RLP_DIR / "rlp_math.c", *(RLP_DIR / k for k in kernels)]:
        obj = work / f"{cdir.name}_{src.stem}.o"
        run_tool(["arm-none-eabi-gcc", *M4_CFLAGS, f"-I{RLP_DIR}", f"-I{cdir}", "-c", "-o", obj, src])
        objs.append(obj)
    return arm_size(objs)


def measure_export(export_dir: Path, work: Path, repeats: tuple[int, int]) -> dict:
    """Float32 C of a trained export on the M4F: one control step's instructions, cycle estimate, flash, RAM."""
    res = export_c(export_dir, out_dir=work / "c")
    doc = json.loads((export_dir / "policy.json").read_text())
    obs_dim = sum(int(c["size"]) for c in doc["observation"])
    elf = build_m4_elf(work / "c", work / "policy.elf")
    e = estimate(elf, work, repeats, r"RLP_(L\d+|IN|IH|HH|OUT)", obs_dim)
    flash, ram = object_size(work / "c", work, ["rlp_f32.c"])
    print(f"{export_dir}: {doc.get('kind', 'mlp')}, {res['macs']} MACs per step, state {res.get('state_size', 0)}")
    print(f"  {e.instructions:.0f} instructions, {e.low:.0f}-{e.high:.0f} estimated cycles "
          f"({e.low / 168:.0f}-{e.high / 168:.0f} us at 168 MHz), {flash} B flash, {ram} B RAM")
    print(f"  core {e.core_low:.0f}-{e.core_high:.0f} cycles, + flash wait states {e.flash_data_ws:.0f} (data) "
          f"+ {e.flash_code_ws:.0f} (code)")
    return {"export": str(export_dir), "kind": doc.get("kind", "mlp"), "macs": res["macs"],
            "state_size": res.get("state_size", 0), "instr": e.instructions, "cycles_low": round(e.low),
            "cycles_high": round(e.high), "us_low": round(e.low / 168, 1), "us_high": round(e.high / 168, 1),
            "flash_bytes": flash, "ram_bytes": ram}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, nargs=2, default=(1, 4), help="the two repeat counts to difference")
    ap.add_argument("--keep", type=Path, default=None, help="keep the build directory here")
    ap.add_argument("--histogram", action="store_true", help="print the executed mnemonics per forward pass")
    ap.add_argument("--action-history", type=int, default=32,
                    help="actor input = 18 + 4 x this (crazyflie-hover: 32, crazyflie-hover-robust: 48)")
    ap.add_argument("--export", type=Path, default=None,
                    help="measure this export directory's float32 C (MLP or recurrent) instead")
    args = ap.parse_args(argv)
    missing = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
    if missing:
        print(f"needs {', '.join(missing)}: run firmware/install_toolchain.sh", file=sys.stderr)
        return 2
    if args.export is not None:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) if args.keep is None else args.keep
            work.mkdir(parents=True, exist_ok=True)
            print(json.dumps(measure_export(args.export, work, tuple(args.repeats))))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        work.mkdir(parents=True, exist_ok=True)
        exp = work / "export"
        obs = quadrotor_export(exp, action_history=args.action_history)
        f32 = export_c(exp, out_dir=exp / "c")
        i8 = export_c(exp, out_dir=exp / "c_int8", quantize="int8", calibration=obs)
        macs = f32["macs"]
        baseline_header(exp, obs[0], work / "baseline_net.h")
        elf_f = build_m4_elf(exp / "c", work / "float.elf")
        elf_i = build_m4_elf(exp / "c_int8", work / "int8.elf")
        elf_b = build_m4_elf(exp / "c", work / "baseline.elf", sources=[QEMU_DIR / "baseline_main.c"],
                             include=[work], cflags=["-funroll-loops"])
        reps = tuple(args.repeats)
        hidden = sum(int(layer.weight.shape[0]) for layer in read_mlp(exp / "policy.onnx").layers[:-1])
        est = {"float": estimate(elf_f, work, reps, r"RLP_L\d+", obs.shape[1]),
               "int8": estimate(elf_i, work, reps, r"RLP_[LM]\d+", obs.shape[1], table_lookups=hidden),
               "baseline": estimate(elf_b, work, reps, r"BL_[WB]\d+", obs.shape[1])}
        flash_f, ram_f = object_size(exp / "c", work, ["rlp_f32.c"])
        flash_i, ram_i = object_size(exp / "c_int8", work, ["rlp_s16.c"])
    instr = {k: e.instructions for k, e in est.items()}
    rows = [("plain C triple loop (float)", "baseline", "-", "-"),
            ("rlp float32 (VMUL+VADD, 4-row blocks)", "float", flash_f, ram_f),
            ("rlp int8 (SMLAD, int16 activations)", "int8", flash_i, ram_i)]
    print(f"network {obs.shape[1]}-64-64-4 fast_tanh/tanh, {macs} MACs per forward pass, Cortex-M4F "
          "(QEMU netduinoplus2)")
    print("cycles: Cortex-M4 TRM timings of the executed trace; low = zero wait states, high = + 5 flash wait "
          "states (168 MHz) on streamed parameters, table lookups and ART instruction-cache misses")
    print(f"{'variant':40s} {'instr/fwd':>9s} {'instr/MAC':>9s} {'cycles low-high':>16s} {'cyc/MAC':>10s} "
          f"{'us @168MHz':>11s} {'vs plain (cyc)':>15s} {'flash B':>8s} {'RAM B':>6s}")
    base = est["baseline"]
    for name, key, fl, ram in rows:
        e = est[key]
        print(f"{name:40s} {e.instructions:9.0f} {e.instructions / macs:9.3f} {e.low:7.0f}-{e.high:<8.0f} "
              f"{e.low / macs:4.2f}-{e.high / macs:<5.2f} {e.low / 168:5.0f}-{e.high / 168:<5.0f} "
              f"{base.low / e.low:6.2f}-{base.high / e.high:<6.2f}x {fl!s:>8s} {ram!s:>6s}")
    for key, e in est.items():
        print(f"  {key}: core {e.core_low:.0f}-{e.core_high:.0f} cycles, + flash wait states {e.flash_data_ws:.0f} "
              f"(data) + {e.flash_code_ws:.0f} (code: {e.code_bytes} B run per pass)")
        if args.histogram:
            print("    " + ", ".join(f"{op} {n:.0f}" for op, n in e.histogram.items()))
    print(f"int8 max action error vs float (calibration set): {i8['max_action_error_vs_float']:.2e}")
    result = {"macs": macs, "instr_float": instr["float"], "instr_per_mac_float": round(instr["float"] / macs, 4),
              "instr_int8": instr["int8"], "instr_per_mac_int8": round(instr["int8"] / macs, 4),
              "baseline_instr": instr["baseline"], "baseline_instr_per_mac": round(instr["baseline"] / macs, 4)}
    for key, prefix in (("float", "cycles_float"), ("int8", "cycles_int8"), ("baseline", "baseline_cycles")):
        result[f"{prefix}_low"], result[f"{prefix}_high"] = round(est[key].low), round(est[key].high)
    result |= {"flash_wait_states": 5, "cpu_mhz": 168,
               "flash_bytes": flash_f, "ram_bytes": ram_f, "flash_bytes_int8": flash_i, "ram_bytes_int8": ram_i,
               "speedup_float_vs_baseline": round(instr["baseline"] / instr["float"], 3),
               "speedup_int8_vs_baseline": round(instr["baseline"] / instr["int8"], 3),
               "cycle_speedup_float_vs_baseline": [round(base.low / est["float"].low, 3),
                                                   round(base.high / est["float"].high, 3)],
               "cycle_speedup_int8_vs_baseline": [round(base.low / est["int8"].low, 3),
                                                  round(base.high / est["int8"].high, 3)],
               "int8_max_action_error": i8["max_action_error_vs_float"]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
