"""Instructions per forward pass of the generated policy C on the Cortex-M4F (QEMU), against a plain C loop.

Builds the paper-shaped actor (146-64-64-4, fast tanh, tanh output; random weights, which do not change the
instruction count) as float32 and int8 C, plus a plain triple-loop float baseline of the same network
(``firmware/qemu/baseline_main.c``, additionally ``-funroll-loops``), all with ``-O3 -ffp-contract=off`` for the
emulated STM32F405. Each ELF runs under ``qemu-system-arm -singlestep
-d exec,nochain`` with two repeat counts; the difference of the executed-instruction counts divided by the
difference of repeats is the cost of one forward pass (start-up and printing cancel). QEMU counts are exact and
deterministic, so one pair of runs is enough; instructions are a proxy for cycles (no cycle model in QEMU).
Flash and RAM: ``arm-none-eabi-size`` of the objects a policy needs (policy.o with its test vector, the rlp
kernels it calls and rlp_math.o).

Usage: ``python benchmarks/mcu_inference.py [--repeats 1 4]``; the last line printed is one JSON object.
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
    count_instructions,
    run_tool,
)
from deploy.export.mlp_reader import read_mlp
from deploy.export.sample_policies import quadrotor_export

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


def per_forward(elf: Path, work: Path, repeats: tuple[int, int]) -> float:
    lo, hi = repeats
    n_lo = count_instructions(elf, [str(lo)], work)
    n_hi = count_instructions(elf, [str(hi)], work)
    return (n_hi - n_lo) / (hi - lo)


def object_size(cdir: Path, work: Path, kernels: list[str]) -> tuple[int, int]:
    objs = []
    for src in [cdir / "policy.c", RLP_DIR / "rlp_math.c", *(RLP_DIR / k for k in kernels)]:
        obj = work / f"{cdir.name}_{src.stem}.o"
        run_tool(["arm-none-eabi-gcc", *M4_CFLAGS, f"-I{RLP_DIR}", f"-I{cdir}", "-c", "-o", obj, src])
        objs.append(obj)
    return arm_size(objs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, nargs=2, default=(1, 4), help="the two repeat counts to difference")
    ap.add_argument("--keep", type=Path, default=None, help="keep the build directory here")
    args = ap.parse_args(argv)
    missing = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
    if missing:
        print(f"needs {', '.join(missing)}: run firmware/install_toolchain.sh", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        work.mkdir(parents=True, exist_ok=True)
        exp = work / "export"
        obs = quadrotor_export(exp)
        f32 = export_c(exp, out_dir=exp / "c")
        i8 = export_c(exp, out_dir=exp / "c_int8", quantize="int8", calibration=obs)
        macs = f32["macs"]
        baseline_header(exp, obs[0], work / "baseline_net.h")
        elf_f = build_m4_elf(exp / "c", work / "float.elf")
        elf_i = build_m4_elf(exp / "c_int8", work / "int8.elf")
        elf_b = build_m4_elf(exp / "c", work / "baseline.elf", sources=[QEMU_DIR / "baseline_main.c"],
                             include=[work], cflags=["-funroll-loops"])
        reps = tuple(args.repeats)
        instr = {name: per_forward(elf, work, reps) for name, elf in
                 (("float", elf_f), ("int8", elf_i), ("baseline", elf_b))}
        flash_f, ram_f = object_size(exp / "c", work, ["rlp_f32.c"])
        flash_i, ram_i = object_size(exp / "c_int8", work, ["rlp_s16.c"])
    rows = [("plain C triple loop (float)", instr["baseline"], "-", "-"),
            ("rlp float32 (VMLA, 4-row blocks)", instr["float"], flash_f, ram_f),
            ("rlp int8 (SMLAD, int16 activations)", instr["int8"], flash_i, ram_i)]
    print(f"network 146-64-64-4 fast_tanh/tanh, {macs} MACs per forward pass, Cortex-M4F (QEMU netduinoplus2)")
    print(f"{'variant':40s} {'instr/forward':>14s} {'instr/MAC':>10s} {'vs plain':>9s} {'flash B':>8s} {'RAM B':>7s}")
    for name, n, fl, ram in rows:
        print(f"{name:40s} {n:14.0f} {n / macs:10.3f} {instr['baseline'] / n:8.2f}x {fl!s:>8s} {ram!s:>7s}")
    print(f"int8 max action error vs float (calibration set): {i8['max_action_error_vs_float']:.2e}")
    result = {"macs": macs, "instr_float": instr["float"], "instr_per_mac_float": round(instr["float"] / macs, 4),
              "instr_int8": instr["int8"], "instr_per_mac_int8": round(instr["int8"] / macs, 4),
              "baseline_instr": instr["baseline"], "baseline_instr_per_mac": round(instr["baseline"] / macs, 4),
              "flash_bytes": flash_f, "ram_bytes": ram_f, "flash_bytes_int8": flash_i, "ram_bytes_int8": ram_i,
              "speedup_float_vs_baseline": round(instr["baseline"] / instr["float"], 3),
              "speedup_int8_vs_baseline": round(instr["baseline"] / instr["int8"], 3),
              "int8_max_action_error": i8["max_action_error_vs_float"]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
