/*
 * rlp_f32.c - float dense layer, four output rows per block (see rlp.h for the stream layout and the
 * summation order).
 *
 * Cortex-M4F: one VLDM brings 16 weights (4 columns x 4 rows) and one more 8 inputs; each column is 4 VMUL
 * (products in place of the weights) then 4 VADD into the rows' accumulators, each row accumulating in its own
 * register in column order. VMUL then VADD rounds the product before the addition exactly like the (unfused)
 * VMLA, so the result equals the portable C below compiled with -ffp-contract=off. Why not VMLA: the
 * Cortex-M4 TRM gives VMLA 3 cycles and VMUL, VADD 1 each, and no VADD here reads the result of the
 * instruction right before it (that would cost one more cycle), so a multiply-accumulate takes 2 cycles
 * instead of 3 (benchmarks/mcu_inference.py: ~23 % fewer estimated cycles per forward pass) for 69 instead of
 * 37 instructions per 32 multiply-accumulates.
 */
#include "rlp.h"

#if RLP_M4

__attribute__((naked, noinline)) void rlp_f32_dense(const float *stream, const float *x, float *y,
                                                     uint32_t n_blocks, uint32_t n_in)
{
    __asm volatile(
        "push   {r4-r6, lr}\n"
        "vpush  {s16-s27}\n"
        "ldr    r4, [sp, #64]\n"          /* n_in: 16 bytes of core + 48 bytes of VFP registers pushed */
        "1:\n"
        "vldmia r0!, {s0-s3}\n"           /* accumulators = bias */
        "mov    r5, r1\n"
        "lsrs   r6, r4, #3\n"
        "beq    3f\n"
        "2:\n"
        "vldmia r5!, {s4-s11}\n"          /* x[c..c+7] */
        "vldmia r0!, {s12-s27}\n"         /* w[c..c+3][row 0..3] */
        "vmul.f32 s12, s12, s4\n"
        "vmul.f32 s13, s13, s4\n"
        "vmul.f32 s14, s14, s4\n"
        "vmul.f32 s15, s15, s4\n"
        "vadd.f32 s0, s0, s12\n"
        "vadd.f32 s1, s1, s13\n"
        "vadd.f32 s2, s2, s14\n"
        "vadd.f32 s3, s3, s15\n"
        "vmul.f32 s16, s16, s5\n"
        "vmul.f32 s17, s17, s5\n"
        "vmul.f32 s18, s18, s5\n"
        "vmul.f32 s19, s19, s5\n"
        "vadd.f32 s0, s0, s16\n"
        "vadd.f32 s1, s1, s17\n"
        "vadd.f32 s2, s2, s18\n"
        "vadd.f32 s3, s3, s19\n"
        "vmul.f32 s20, s20, s6\n"
        "vmul.f32 s21, s21, s6\n"
        "vmul.f32 s22, s22, s6\n"
        "vmul.f32 s23, s23, s6\n"
        "vadd.f32 s0, s0, s20\n"
        "vadd.f32 s1, s1, s21\n"
        "vadd.f32 s2, s2, s22\n"
        "vadd.f32 s3, s3, s23\n"
        "vmul.f32 s24, s24, s7\n"
        "vmul.f32 s25, s25, s7\n"
        "vmul.f32 s26, s26, s7\n"
        "vmul.f32 s27, s27, s7\n"
        "vadd.f32 s0, s0, s24\n"
        "vadd.f32 s1, s1, s25\n"
        "vadd.f32 s2, s2, s26\n"
        "vadd.f32 s3, s3, s27\n"
        "vldmia r0!, {s12-s27}\n"         /* w[c+4..c+7][row 0..3] */
        "vmul.f32 s12, s12, s8\n"
        "vmul.f32 s13, s13, s8\n"
        "vmul.f32 s14, s14, s8\n"
        "vmul.f32 s15, s15, s8\n"
        "vadd.f32 s0, s0, s12\n"
        "vadd.f32 s1, s1, s13\n"
        "vadd.f32 s2, s2, s14\n"
        "vadd.f32 s3, s3, s15\n"
        "vmul.f32 s16, s16, s9\n"
        "vmul.f32 s17, s17, s9\n"
        "vmul.f32 s18, s18, s9\n"
        "vmul.f32 s19, s19, s9\n"
        "vadd.f32 s0, s0, s16\n"
        "vadd.f32 s1, s1, s17\n"
        "vadd.f32 s2, s2, s18\n"
        "vadd.f32 s3, s3, s19\n"
        "vmul.f32 s20, s20, s10\n"
        "vmul.f32 s21, s21, s10\n"
        "vmul.f32 s22, s22, s10\n"
        "vmul.f32 s23, s23, s10\n"
        "vadd.f32 s0, s0, s20\n"
        "vadd.f32 s1, s1, s21\n"
        "vadd.f32 s2, s2, s22\n"
        "vadd.f32 s3, s3, s23\n"
        "vmul.f32 s24, s24, s11\n"
        "vmul.f32 s25, s25, s11\n"
        "vmul.f32 s26, s26, s11\n"
        "vmul.f32 s27, s27, s11\n"
        "vadd.f32 s0, s0, s24\n"
        "vadd.f32 s1, s1, s25\n"
        "vadd.f32 s2, s2, s26\n"
        "vadd.f32 s3, s3, s27\n"
        "subs   r6, r6, #1\n"
        "bne    2b\n"
        "3:\n"
        "ands   r6, r4, #7\n"             /* remaining columns one at a time */
        "beq    5f\n"
        "4:\n"
        "vldmia r5!, {s4}\n"
        "vldmia r0!, {s12-s15}\n"
        "vmul.f32 s12, s12, s4\n"
        "vmul.f32 s13, s13, s4\n"
        "vmul.f32 s14, s14, s4\n"
        "vmul.f32 s15, s15, s4\n"
        "vadd.f32 s0, s0, s12\n"
        "vadd.f32 s1, s1, s13\n"
        "vadd.f32 s2, s2, s14\n"
        "vadd.f32 s3, s3, s15\n"
        "subs   r6, r6, #1\n"
        "bne    4b\n"
        "5:\n"
        "vstmia r2!, {s0-s3}\n"
        "subs   r3, r3, #1\n"
        "bne    1b\n"
        "vpop   {s16-s27}\n"
        "pop    {r4-r6, pc}\n");
}

#else

void rlp_f32_dense(const float *stream, const float *x, float *y, uint32_t n_blocks, uint32_t n_in)
{
    uint32_t b, c;
    for (b = 0; b < n_blocks; b++) {
        float a0 = stream[0], a1 = stream[1], a2 = stream[2], a3 = stream[3];
        const float *w = stream + 4;
        for (c = 0; c < n_in; c++) {
            const float xc = x[c];
            a0 = a0 + w[0] * xc;
            a1 = a1 + w[1] * xc;
            a2 = a2 + w[2] * xc;
            a3 = a3 + w[3] * xc;
            w += 4;
        }
        y[0] = a0;
        y[1] = a1;
        y[2] = a2;
        y[3] = a3;
        y += 4;
        stream = w;
    }
}

#endif
