"""Build and run generated policy C: host shared library (ctypes), Cortex-M4F ELF under QEMU, instruction counts.

Used by the tests and ``benchmarks/mcu_inference.py``; the flags here are the reference build flags (the
firmware Makefiles repeat them). ``-ffp-contract=off`` on both builds is what makes host and M4F results
bit-identical.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deploy.export.c_emit import fhex

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
RLP_DIR = FIRMWARE / "rlp"
QEMU_DIR = FIRMWARE / "qemu"
RLP_SOURCES = [RLP_DIR / "rlp_math.c", RLP_DIR / "rlp_f32.c", RLP_DIR / "rlp_s16.c"]
COMMON_CFLAGS = ["-std=c99", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wdouble-promotion",
                 "-Werror"]
HOST_CFLAGS = [*COMMON_CFLAGS, "-O2", "-fPIC"]
M4_CFLAGS = [*COMMON_CFLAGS, "-O3", "-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard",
             "-ffunction-sections", "-fdata-sections"]
QEMU_CMD = ["qemu-system-arm", "-M", "netduinoplus2", "-nographic", "-monitor", "none", "-serial", "null",
            "-semihosting-config", "enable=on,target=native"]


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def run_tool(cmd: Sequence[str | os.PathLike[str]], timeout: float = 120) -> str:
    """Run a build/emulation tool; raise RuntimeError with its output when it fails."""
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{Path(str(cmd[0])).name} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res.stdout


def build_host_library(policy_dir: str | Path, out: str | Path, extra: Sequence[Path] = ()) -> Path:
    """Shared library of the generated policy + rlp library for the host (gcc, -ffp-contract=off)."""
    out = Path(out)
    run_tool(["gcc", *HOST_CFLAGS, "-shared", f"-I{RLP_DIR}", f"-I{policy_dir}", "-o", out,
          Path(policy_dir) / "policy.c", *RLP_SOURCES, *extra])
    return out


class PolicyDescriptor(ctypes.Structure):
    """``rlp_policy_t`` of rlp.h."""

    _fields_ = [("name", ctypes.c_char_p), ("obs_dim", ctypes.c_uint16), ("act_dim", ctypes.c_uint16),
                ("n_components", ctypes.c_uint16), ("components", ctypes.c_void_p),
                ("control_rate_hz", ctypes.c_float), ("rpm_min", ctypes.c_float), ("rpm_max", ctypes.c_float),
                ("macs", ctypes.c_uint32), ("forward", ctypes.c_void_p), ("self_test", ctypes.c_void_p),
                ("state_size", ctypes.c_uint16), ("reset", ctypes.c_void_p), ("commit", ctypes.c_void_p)]


class HostPolicy:
    """ctypes wrapper of a host-built policy: ``HostPolicy(lib)(obs[k, n]) -> action[k, m]`` (float32).

    For a recurrent policy (``state_size > 0``) the rows are consecutive calls: each call commits its state, and
    :meth:`reset` returns to an episode's start.
    """

    def __init__(self, lib: str | Path) -> None:
        self.lib = ctypes.CDLL(str(lib))
        self.desc = PolicyDescriptor.in_dll(self.lib, "rlp_policy")
        self.obs_dim, self.act_dim = int(self.desc.obs_dim), int(self.desc.act_dim)
        self._fwd = self.lib.rlp_policy_forward
        self._fwd.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
        self._fwd.restype = None
        self._test = self.lib.rlp_policy_self_test
        self._test.argtypes = [ctypes.POINTER(ctypes.c_float)]
        self._test.restype = ctypes.c_int
        self.state_size = int(self.desc.state_size)
        if self.state_size:
            self._commit, self._reset = self.lib.rlp_policy_commit, self.lib.rlp_policy_reset
            self._commit.restype = self._reset.restype = None

    def reset(self) -> None:
        """Zero a recurrent policy's state (an episode's start)."""
        if not self.state_size:
            raise ValueError("reset: this policy has no state (state_size 0)")
        self._reset()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.ascontiguousarray(np.atleast_2d(obs), dtype=np.float32)
        out = np.zeros((len(obs), self.act_dim), np.float32)
        fp = ctypes.POINTER(ctypes.c_float)
        for i in range(len(obs)):
            self._fwd(obs[i].ctypes.data_as(fp), out[i].ctypes.data_as(fp))
            if self.state_size:
                self._commit()
        return out

    def self_test(self) -> tuple[int, float]:
        diff = ctypes.c_float(0.0)
        rc = self._test(ctypes.byref(diff))
        return int(rc), float(diff.value)


def write_obs_header(path: str | Path, obs: np.ndarray, name: str = "rlp_seq_obs") -> Path:
    """C header with a recorded observation sequence (exact float literals) for the test programs."""
    obs = np.asarray(obs, dtype=np.float32)
    rows = ",\n    ".join("{" + ", ".join(fhex(v) for v in row) + "}" for row in obs)
    Path(path).write_text(f"/* recorded observations, generated; do not edit */\n#define RLP_SEQ_LEN {len(obs)}\n"
                          f"static const float {name}[RLP_SEQ_LEN][{obs.shape[1]}] = {{\n    {rows}\n}};\n")
    return Path(path)


def build_m4_elf(policy_dir: str | Path, out: str | Path, sources: Sequence[Path] | None = None,
                 include: Sequence[Path] = (), defines: Sequence[str] = (), cflags: Sequence[str] = ()) -> Path:
    """Bare-metal STM32F405 ELF (startup + linker script of firmware/qemu) with the policy and rlp library."""
    out = Path(out)
    srcs = list(sources) if sources is not None else [QEMU_DIR / "test_main.c"]
    run_tool(["arm-none-eabi-gcc", *M4_CFLAGS, *cflags, f"-I{RLP_DIR}", f"-I{policy_dir}",
          *(f"-I{p}" for p in include), *(f"-D{d}" for d in defines), "--specs=rdimon.specs",
          "-T", QEMU_DIR / "stm32f405.ld", "-Wl,--gc-sections", "-o", out, QEMU_DIR / "startup.c",
          Path(policy_dir) / "policy.c", *RLP_SOURCES, *srcs], timeout=300)
    return out


def build_host_program(policy_dir: str | Path, out: str | Path, sources: Sequence[Path] | None = None,
                       include: Sequence[Path] = (), defines: Sequence[str] = ()) -> Path:
    """The same test program built for the host (compare its output with the QEMU run)."""
    out = Path(out)
    srcs = list(sources) if sources is not None else [QEMU_DIR / "test_main.c"]
    run_tool(["gcc", *HOST_CFLAGS, f"-I{RLP_DIR}", f"-I{policy_dir}", *(f"-I{p}" for p in include),
          *(f"-D{d}" for d in defines), "-o", out, Path(policy_dir) / "policy.c", *RLP_SOURCES, *srcs])
    return out


def run_qemu(elf: str | Path, args: Sequence[str] = (), trace: str | Path | None = None, timeout: float = 300) -> str:
    """Run an ELF on the emulated STM32F405; ``trace`` logs one line per executed instruction."""
    cmd = [*QEMU_CMD, "-kernel", str(elf)]
    if args:
        cmd += ["-append", " ".join(args)]
    if trace is not None:
        cmd += ["-singlestep", "-d", "exec,nochain", "-D", str(trace)]
    return run_tool(cmd, timeout=timeout)


def count_instructions(elf: str | Path, args: Sequence[str], workdir: str | Path) -> int:
    """Executed instructions of one QEMU run (lines of the exec trace)."""
    trace = Path(workdir) / "trace.log"
    run_qemu(elf, args, trace=trace)
    with open(trace, "rb") as f:
        n = sum(1 for line in f if line.startswith(b"Trace "))
    trace.unlink()
    return n


def arm_size(objects: Sequence[str | Path]) -> tuple[int, int]:
    """(flash, RAM) bytes of object files: text + data, data + bss (``arm-none-eabi-size``)."""
    flash = ram = 0
    for line in run_tool(["arm-none-eabi-size", *objects]).splitlines()[1:]:
        text, data, bss = (int(v) for v in line.split()[:3])
        flash, ram = flash + text + data, ram + data + bss
    return flash, ram
