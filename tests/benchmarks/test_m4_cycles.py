"""The Cortex-M4 cycle model of benchmarks/mcu_inference.py, on hand-written instructions (no toolchain needed)."""

import pytest

from benchmarks.m4_cycles import Insn, base_mnemonic, cost


def insn(text: str, pc: int = 0x100, size: int = 4) -> Insn:
    raw, _, operands = text.partition(" ")
    return Insn(pc, size, base_mnemonic(raw), operands.strip())


@pytest.mark.parametrize("raw, op", [("bne.n", "b"), ("bls.w", "b"), ("vmla.f32", "vmla"), ("movs", "mov"),
                                     ("itte", "it"), ("ldrsh.w", "ldrsh"), ("vldmia", "vldmia"), ("mls", "mls"),
                                     ("addne", "add"), ("vcvt.s32.f32", "vcvt"), ("smlad", "smlad")])
def test_mnemonics(raw, op):
    assert base_mnemonic(raw) == op


def test_unknown_mnemonic_is_refused():
    with pytest.raises(ValueError, match="no Cortex-M4 timing"):
        base_mnemonic("vfoo.f32")


def test_trm_timings():
    nop = insn("nop")
    assert cost(insn("vmla.f32 s0, s12, s4"), False, False, nop) == (3, 3)
    assert cost(insn("vmul.f32 s12, s12, s4"), False, False, nop) == (1, 1)
    assert cost(insn("vdiv.f32 s0, s1, s2"), False, False, nop) == (14, 14)
    assert cost(insn("vldmia r0!, {s12-s27}"), False, False, nop) == (17, 17)
    assert cost(insn("vpush {d8-d9}"), False, False, nop) == (5, 5)  # 4 single registers
    assert cost(insn("pop {r4, r5, r6, pc}"), True, False, nop) == (6, 8)
    assert cost(insn("bne.n 2b"), True, False, nop) == (2, 4)
    assert cost(insn("bne.n 2b"), False, False, nop) == (1, 1)
    assert cost(insn("ldr r4, [sp, #64]"), False, False, nop) == (2, 2)
    assert cost(insn("ldr r4, [sp, #64]"), False, True, nop) == (1, 2)  # pipelined behind a load
    assert cost(insn("smlad r0, r8, r4, r0"), False, False, nop) == (1, 1)
    assert cost(insn("vmov r0, r1, d0"), False, False, nop) == (2, 2)


def test_fpu_result_consumed_next_costs_one_more():
    mul = insn("vmul.f32 s12, s12, s4")
    assert cost(mul, False, False, insn("vadd.f32 s0, s0, s12")) == (2, 2)
    assert cost(mul, False, False, insn("vadd.f32 s0, s0, s13")) == (1, 1)
    assert cost(mul, False, False, insn("vstr s12, [r0]")) == (2, 2)
    # a multiply-accumulate chained through its accumulator: forwarded in the low estimate only
    assert cost(insn("vmla.f32 s0, s12, s4"), False, False, insn("vmla.f32 s0, s13, s5")) == (3, 4)
    # VMUL+VADD on 4 independent accumulators (rlp_f32's loop) beats VMLA: 2 instead of 3 cycles per MAC
    loop = [insn(f"vmul.f32 s{12 + k}, s{12 + k}, s4") for k in range(4)] + \
        [insn(f"vadd.f32 s{k}, s{k}, s{12 + k}") for k in range(4)]
    total = sum(cost(a, False, False, b)[1] for a, b in zip(loop, loop[1:] + [insn("nop")], strict=True))
    assert total == 8
