"""Cortex-M4F cycle estimate of an executed-instruction trace (QEMU ``-singlestep -d exec,nochain``).

QEMU has no cycle model, so the executed trace is priced with the per-instruction timings of ARM's
*Cortex-M4 Technical Reference Manual* (DDI 0439B, r0p1): Table 3-1 "Cortex-M4 instruction set summary" and
section 3.3.2 "Load/store timings" for the core, Table 7-1 "FPU instruction set" for the FPU. Each executed
instruction gets a low and a high cost:

===========================================  =====================  =========================================
instruction                                  low / high (cycles)    TRM wording
===========================================  =====================  =========================================
data processing, shifts, compare, IT-free    1 / 1                  "1"
MUL, MLA, MLS, SMULL/UMLAL.., SMLAD, SMMUL.  1 / 1                  DSP and 32x32 multiplies "1"
SDIV, UDIV                                   2 / 12                 "2 to 12"
LDR/LDRB/LDRH/LDRSB/LDRSH                    1 / 2                  "2"; 1 when pipelined behind another
                                                                    load/store (low only)
STR/STRB/STRH                                1 / 2                  "2"; "STR Rx,[Ry,#imm] is always one cycle"
LDRD, STRD                                   3 / 3                  "1 + N", N = 2
LDM, STM, PUSH, POP                          1+N / 1+N              "1 + N" (N registers); + P with PC
B, BL, BX, BLX, CBZ/CBNZ taken               1+P                    P = pipeline refill, "1 to 3": low 1,
                                                                    high 3; not taken: 1
TBB, TBH                                     2+P
IT                                           0 / 1                  folds into the preceding instruction
VADD, VSUB, VMUL, VNMUL, VABS, VNEG, VCMP,   1 / 1                  "1"
VCVT, VMOV (one register), VMRS, VMSR
VMOV (two core registers)                    2 / 2                  "2"
VMLA, VMLS, VNMLA, VNMLS, VFMA, VFMS, ...    3 / 3                  "3"
VDIV, VSQRT                                  14 / 14                "14"
VLDR, VSTR                                   2 / 2                  "2"
VLDM, VSTM, VPUSH, VPOP                      1+N / 1+N              "1 + N" (N single registers)
===========================================  =====================  =========================================

plus the TRM's FPU hazard rule: an FPU arithmetic result (add, subtract, multiply, divide, square root,
multiply-accumulate, conversions) consumed by the immediately following instruction costs one more cycle
(both estimates; a multiply-accumulate chained through its accumulator gets it in the high estimate only).

Memory: the TRM's figures assume zero wait states. The STM32F405 runs at 168 MHz with 5 flash wait states
(RM0090, "Relation between CPU clock frequency and flash memory read time": 150 < HCLK <= 168 MHz at 2.7-3.6 V)
behind the ART accelerator (64 instruction-cache lines and 8 data-cache lines of 128 bits, plus a prefetch
buffer). The low estimate assumes the ART hides them all; the high estimate adds 5 cycles per 128-bit flash line
of parameters streamed once per forward pass (the weight arrays are far larger than the 8-line data cache), per
lookup into a flash table, and per instruction-cache miss of the executed trace (64 lines of 128 bits, simulated
as fully associative LRU; no credit for the prefetch buffer).
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

FLASH_WAIT_STATES = 5
FLASH_LINE_BYTES = 16
ICACHE_BYTES = 64 * FLASH_LINE_BYTES
P_LOW, P_HIGH = 1, 3

_CONDS = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al"}
_ALU = set("""add adc sub sbc rsb mov mvn and orr eor bic orn lsl lsr asr ror rrx cmp cmn tst teq adr movw movt
uxtb uxth sxtb sxth uxtab uxtah sxtab sxtah uxtb16 sxtb16 ubfx sbfx bfi bfc clz rbit rev rev16 revsh sel pkhbt
pkhtb ssat usat ssat16 usat16 qadd qsub qdadd qdsub sadd16 ssub16 uadd16 usub16 sadd8 ssub8 uadd8 usub8 qadd16
qsub16 qadd8 qsub8 shadd16 uhadd16 nop""".split())
_MUL = set("""mul mla mls smull umull smlal umlal smulbb smulbt smultb smultt smlabb smlabt smlatb smlatt smulwb
smulwt smlawb smlawt smlad smladx smlsd smlsdx smlald smlaldx smlsld smlsldx smmul smmulr smmla smmlar smmls
smmlsr smuad smuadx smusd smusdx umaal usad8 usada8""".split())
_LOAD = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrex"}
_STORE = {"str", "strb", "strh", "strex"}
_BRANCH = {"b", "bl", "bx", "blx", "cbz", "cbnz"}
_FP1 = {"vadd", "vsub", "vmul", "vnmul", "vabs", "vneg", "vcmp", "vcmpe", "vcvt", "vcvtr", "vmrs", "vmsr", "vmov"}
_FPMAC = {"vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"}
_FP14 = {"vdiv", "vsqrt"}
_FP_RESULT = {"vadd", "vsub", "vmul", "vnmul", "vdiv", "vsqrt", "vcvt", "vcvtr"} | _FPMAC
_MULTI = {"ldm": "ldm", "ldmia": "ldm", "ldmdb": "ldm", "ldmfd": "ldm", "stm": "stm", "stmia": "stm", "stmdb": "stm",
          "stmea": "stm", "push": "stm", "pop": "ldm", "vldm": "vldm", "vldmia": "vldm", "vldmdb": "vldm",
          "vstm": "vstm", "vstmia": "vstm", "vstmdb": "vstm", "vpush": "vstm", "vpop": "vldm"}
_KNOWN = _ALU | _MUL | _LOAD | _STORE | _BRANCH | _FP1 | _FPMAC | _FP14 | set(_MULTI) | {
    "sdiv", "udiv", "ldrd", "strd", "tbb", "tbh", "it", "vldr", "vstr", "bkpt", "svc", "dsb", "dmb", "isb", "wfi"}


@dataclass(frozen=True)
class Insn:
    """One disassembled instruction: address, size in bytes, base mnemonic (no condition, width or type
    suffix), operand text."""

    pc: int
    size: int
    op: str
    operands: str


def base_mnemonic(raw: str) -> str:
    """``bne.n`` -> ``b``, ``vmla.f32`` -> ``vmla``, ``movs`` -> ``mov``, ``itte`` -> ``it``."""
    m = raw.lower().split(".")[0]
    if re.fullmatch(r"it[te]{0,3}", m):
        return "it"
    candidates = [m]
    if m[-2:] in _CONDS:
        candidates.append(m[:-2])
    candidates += [c[:-1] for c in list(candidates) if c.endswith("s")]
    for c in candidates:
        if c in _KNOWN:
            return c
    raise ValueError(f"no Cortex-M4 timing for mnemonic {raw!r}")


def disassemble(elf: Path) -> dict[int, tuple[int, str, str]]:
    """pc -> (size, raw mnemonic, operands) from ``arm-none-eabi-objdump -d``."""
    out = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(elf)], check=True,
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(\S+)\s*([^;@]*)", line)
        if m and not m.group(2).startswith("."):
            rows.append((int(m.group(1), 16), m.group(2), m.group(3).strip()))
    table = {}
    for (pc, op, args), nxt in zip(rows, rows[1:] + [(rows[-1][0] + 2, "", "")], strict=True):
        table[pc] = (min(nxt[0] - pc, 4) if nxt[0] > pc else 2, op, args)
    return table


def _regs(text: str) -> list[str]:
    """Registers named in ``text``, ranges (``s4-s11``, ``r4-r6``) expanded, ``dN`` as ``s2N, s2N+1``."""
    regs = []
    for a, b in re.findall(r"\b([rsd]\d+|sl|fp|ip|lr|sp|pc)(?:-([rsd]\d+))?", text):
        if b:
            kind, lo, hi = a[0], int(a[1:]), int(b[1:])
            regs += [f"{kind}{i}" for i in range(lo, hi + 1)]
        else:
            regs.append(a)
    out = []
    for r in regs:
        out += [f"s{2 * int(r[1:])}", f"s{2 * int(r[1:]) + 1}"] if r[0] == "d" and r[1:].isdigit() else [r]
    return out


def _fp_reads(op: str, operands: str) -> set[str]:
    regs = _regs(operands)
    if op in _FPMAC or op in {"vstr", "vstm", "vcmp", "vcmpe"} or (op == "vmov" and regs and regs[0][0] == "r"):
        return set(regs)
    return set(regs[1:])


def cost(insn: Insn, taken: bool, after_ldst: bool, nxt: Insn | None) -> tuple[int, int]:
    """(low, high) cycles of one execution of ``insn`` given whether it branched, whether the previous executed
    instruction was a single load/store, and the next executed instruction (FPU result hazard)."""
    op, n_regs = insn.op, len(_regs(insn.operands.split("{")[1])) if "{" in insn.operands else 0
    writes_pc = insn.operands.split(",")[0].strip() == "pc" or (op in ("ldm", "pop") and "pc" in insn.operands)
    if op in _MULTI:
        lo = hi = 1 + n_regs
        if writes_pc:
            lo, hi = lo + P_LOW, hi + P_HIGH
    elif op in _BRANCH:
        lo, hi = (1 + P_LOW, 1 + P_HIGH) if taken else (1, 1)
    elif op in ("tbb", "tbh"):
        lo, hi = 2 + P_LOW, 2 + P_HIGH
    elif op == "it":
        lo, hi = 0, 1
    elif op in _LOAD:
        lo, hi = (1 if after_ldst else 2), 2
        if writes_pc:
            lo, hi = lo + P_LOW, hi + P_HIGH
    elif op in _STORE:
        lo, hi = 1, 2
    elif op in ("ldrd", "strd"):
        lo = hi = 3
    elif op in ("sdiv", "udiv"):
        lo, hi = 2, 12
    elif op in _FPMAC:
        lo = hi = 3
    elif op in _FP14:
        lo = hi = 14
    elif op in ("vldr", "vstr"):
        lo = hi = 2
    elif op == "vmov":
        lo = hi = 2 if sum(r[0] == "r" for r in _regs(insn.operands)) == 2 else 1
    else:  # _ALU, _MUL, _FP1, barriers, semihosting
        lo = hi = 1
        if writes_pc and op in _ALU:
            lo, hi = lo + P_LOW, hi + P_HIGH
    if op in _FP_RESULT and nxt is not None:
        dest = _regs(insn.operands)[:1]
        if dest and dest[0] in _fp_reads(nxt.op, nxt.operands):
            chained_acc = op in _FPMAC and nxt.op in _FPMAC and _regs(nxt.operands)[:1] == dest
            lo, hi = lo + (0 if chained_acc else 1), hi + 1
    return lo, hi


@dataclass
class TraceProfile:
    """Per-pc totals of one trace: executions, low/high cycles, instruction-cache misses (128-bit lines)."""

    count: Counter = field(default_factory=Counter)
    low: Counter = field(default_factory=Counter)
    high: Counter = field(default_factory=Counter)
    icache_misses: Counter = field(default_factory=Counter)


def profile_trace(trace: Path, table: dict[int, tuple[int, str, str]]) -> TraceProfile:
    """Price every executed instruction of a QEMU exec trace (``Trace 0: ... [xxxxxxxx/PC/...]``)."""
    pcs = []
    with open(trace, "rb") as f:
        for line in f:
            if line.startswith(b"Trace "):
                pcs.append(int(line.split(b"[", 1)[1].split(b"/", 2)[1], 16))
    insns: dict[int, Insn] = {}

    def insn(pc: int) -> Insn | None:
        if pc not in insns:
            if pc not in table:
                return None
            size, raw, args = table[pc]
            try:
                op = base_mnemonic(raw)
            except ValueError:
                op = "?" + raw  # priced only if it runs inside the measured forward passes (see `per_forward`)
            insns[pc] = Insn(pc, size, op, args)
        return insns[pc]

    prof = TraceProfile()
    cache: OrderedDict[int, None] = OrderedDict()
    prev: Insn | None = None
    for i, pc in enumerate(pcs):
        cur = insn(pc)
        nxt_pc = pcs[i + 1] if i + 1 < len(pcs) else None
        prof.count[pc] += 1
        line = pc // FLASH_LINE_BYTES
        if line in cache:
            cache.move_to_end(line)
        else:
            prof.icache_misses[pc] += 1
            cache[line] = None
            if len(cache) > ICACHE_BYTES // FLASH_LINE_BYTES:
                cache.popitem(last=False)
        if cur is not None and not cur.op.startswith("?"):
            taken = nxt_pc is not None and nxt_pc != pc + cur.size
            after = prev is not None and prev.op in (_LOAD | _STORE)
            lo, hi = cost(cur, taken, after, insn(nxt_pc) if nxt_pc is not None else None)
            prof.low[pc] += lo
            prof.high[pc] += hi
        prev = cur
    prof.insns = insns  # type: ignore[attr-defined]
    return prof


@dataclass
class CycleEstimate:
    """Per forward pass: instructions, per-mnemonic counts, core cycles (TRM, zero wait states) low/high, and
    the flash wait states the high estimate adds."""

    instructions: float
    histogram: dict[str, float]
    core_low: float
    core_high: float
    flash_data_ws: float
    flash_code_ws: float
    code_bytes: int

    @property
    def low(self) -> float:
        return self.core_low

    @property
    def high(self) -> float:
        return self.core_high + self.flash_data_ws + self.flash_code_ws


def per_forward(lo: TraceProfile, hi: TraceProfile, passes: int, flash_bytes_streamed: int,
                flash_table_lookups: int) -> CycleEstimate:
    """Difference of two traces that differ by ``passes`` forward passes, divided by ``passes``."""
    insns = {**lo.insns, **hi.insns}  # type: ignore[attr-defined]
    d = {pc: hi.count[pc] - lo.count[pc] for pc in hi.count}
    hist: Counter = Counter()
    for pc, n in d.items():
        if n:
            ins = insns.get(pc)
            if ins is None or ins.op.startswith("?"):
                raise ValueError(f"no Cortex-M4 timing for {ins.op[1:] if ins else 'unknown code'} at {pc:#x}")
            hist[ins.op] += n / passes
    body = [pc for pc, n in d.items() if n]
    code_lines = {pc // FLASH_LINE_BYTES for pc in body}
    misses = sum(hi.icache_misses[pc] - lo.icache_misses[pc] for pc in body) / passes
    code_bytes = len(code_lines) * FLASH_LINE_BYTES
    return CycleEstimate(
        instructions=sum(d.values()) / passes,
        histogram=dict(hist.most_common()),
        core_low=sum(hi.low[pc] - lo.low[pc] for pc in body) / passes,
        core_high=sum(hi.high[pc] - lo.high[pc] for pc in body) / passes,
        flash_data_ws=FLASH_WAIT_STATES * (-(-flash_bytes_streamed // FLASH_LINE_BYTES) + flash_table_lookups),
        flash_code_ws=FLASH_WAIT_STATES * misses,
        code_bytes=code_bytes,
    )


def flash_arrays(elf: Path, pattern: str) -> dict[str, int]:
    """Sizes of the symbols in flash (0x08000000-0x080fffff) whose names match ``pattern``."""
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], check=True, capture_output=True, text=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and re.fullmatch(pattern, parts[3]) and 0x08000000 <= int(parts[0], 16) < 0x08100000:
            sizes[parts[3]] = int(parts[1], 16)
    return sizes
