/*
 * rlp_s16.h - integer dense layers: int8-valued weights, int16 activations, int32 accumulators.
 *
 * Quantisation (chosen by deploy/export/int8_reference.py, which also runs the same integer arithmetic):
 *   - weights: per output row r, s_w[r] = max|W[r, :]| / 127, q_w = round(W / s_w) in [-127, 127];
 *   - activations entering a layer: per-tensor power-of-two scale 2^-k, q_x = trunc(sat16(x * 2^k))
 *     (that is VCVT.S16.F32 #k on the M4F: round toward zero, saturate, NaN -> 0);
 *   - accumulators start at acc0[r] = round(bias[r] / (s_w[r] 2^-k)) and add q_w * q_x exactly (int32);
 *   - tanh-like hidden activations go through a table: idx = sat(smmulr(acc, M[r]) >> shift, bits) and
 *     q_next = lut[idx] (int16, scale 2^-15); other activations dequantise y = (float)acc * m[r] in float.
 *
 * Weights are stored as int16 pairs (the operand layout of SMLAD, i.e. what SXTB16 would produce from
 * packed int8), so the Cortex-M4F inner loop is one SMLAD per two multiply-accumulates: per 4 rows x 8
 * inputs 1 LDM of inputs, 4 LDM of weights and 16 SMLAD.
 *
 * Stream layout per block of four output rows (uint32 words):
 *   acc0[4] | rem: for row 0..3: pairs[0..rem) | chunks: for chunk: for row 0..3: pairs[4 words]
 *   | LUT layers only: M[4]
 * where the layer input has 4 * n_chunk + rem int16 pairs (x[2p] in the low half, x[2p+1] in the high).
 *
 * The kernels are instantiated per layer by the generated policy.c with the macros below, because the
 * M4F versions are straight-line code (.rept n_chunk) with the sizes as immediates.
 */
#ifndef RLP_S16_H
#define RLP_S16_H

#include "rlp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* portable reference kernels (used on the host and by the macros when RLP_M4 is 0) */
void rlp_s16_dense_lut_c(const uint32_t *stream, const int32_t *x, int32_t *out, uint32_t n_blocks,
                         uint32_t n_chunk, uint32_t rem, const int16_t *lut_mid, uint32_t bits, uint32_t shift);
void rlp_s16_dense_raw_c(const uint32_t *stream, const int32_t *x, int32_t *acc, uint32_t n_blocks,
                         uint32_t n_chunk, uint32_t rem);
void rlp_s16_quant_c(const float *x, int32_t *pairs, uint32_t n, uint32_t fbits);
/* float input -> int16 pairs with scale 2^-fbits (semantics of VCVT.S16.F32 #fbits) */
int32_t rlp_s16_quant1(float x, uint32_t fbits);
/* y[i] = (float)acc[i] * m[i] */
void rlp_s16_dequant(const int32_t *acc, const float *m, uint32_t n, float *y);
/* raw hidden layer: dequantise, activate (RLP_ACT_*), quantise with 2^-fbits into int16 pairs (n_pad >= n) */
void rlp_s16_requant(const int32_t *acc, const float *m, uint32_t n, uint32_t n_pad, int act, float elu_alpha,
                     uint32_t fbits, int32_t *pairs);

#define RLP__STR(x) #x
#define RLP_STR(x) RLP__STR(x)

#if RLP_M4

/* rows 0..3 of one chunk: 4 pairs in r4-r7, weights streamed through r8-r11 from r12 */
#define RLP__S16_ROW(acc)                                                                          \
    "ldmia  r12!, {r8-r11}\n"                                                                     \
    "smlad  " acc ", r8, r4, " acc "\n"                                                           \
    "smlad  " acc ", r9, r5, " acc "\n"                                                           \
    "smlad  " acc ", r10, r6, " acc "\n"                                                          \
    "smlad  " acc ", r11, r7, " acc "\n"

#define RLP__S16_REM_ROW(acc, rem)                                                                 \
    ".if " RLP_STR(rem) " == 1\n ldr r8, [r12], #4\n .endif\n"                                     \
    ".if " RLP_STR(rem) " == 2\n ldmia r12!, {r8-r9}\n .endif\n"                                   \
    ".if " RLP_STR(rem) " == 3\n ldmia r12!, {r8-r10}\n .endif\n"                                  \
    "smlad  " acc ", r8, r4, " acc "\n"                                                           \
    ".if " RLP_STR(rem) " > 1\n smlad " acc ", r9, r5, " acc "\n .endif\n"                        \
    ".if " RLP_STR(rem) " > 2\n smlad " acc ", r10, r6, " acc "\n .endif\n"

/* block prologue + MAC body shared by both kernels; leaves the 4 accumulators in r0-r3 */
#define RLP__S16_BODY(n_chunk, rem)                                                                \
    "ldmia  r12!, {r0-r3}\n"                                                                      \
    "ldr    lr, [sp, #0]\n"                                                                       \
    ".if " RLP_STR(rem) " > 0\n"                                                                  \
    ".if " RLP_STR(rem) " == 1\n ldr r4, [lr], #4\n .endif\n"                                     \
    ".if " RLP_STR(rem) " == 2\n ldmia lr!, {r4-r5}\n .endif\n"                                   \
    ".if " RLP_STR(rem) " == 3\n ldmia lr!, {r4-r6}\n .endif\n"                                   \
    RLP__S16_REM_ROW("r0", rem) RLP__S16_REM_ROW("r1", rem)                                       \
    RLP__S16_REM_ROW("r2", rem) RLP__S16_REM_ROW("r3", rem)                                       \
    ".endif\n"                                                                                    \
    ".rept " RLP_STR(n_chunk) "\n"                                                                \
    "ldmia  lr!, {r4-r7}\n"                                                                       \
    RLP__S16_ROW("r0") RLP__S16_ROW("r1") RLP__S16_ROW("r2") RLP__S16_ROW("r3")                   \
    ".endr\n"

/* hidden layer with a table activation: writes 2 int16 pairs per block to out */
#define RLP_S16_DENSE_LUT(name, n_chunk, rem, bits, shift)                                         \
    __attribute__((naked, noinline)) static void name(const uint32_t *stream, const int32_t *x,      \
                                                      int32_t *out, uint32_t n_blocks,             \
                                                      const int16_t *lut_mid)                      \
    {                                                                                              \
        __asm volatile(                                                                            \
            "push   {r4-r11, lr}\n"                                                                \
            "ldr    r4, [sp, #36]\n"                                                               \
            "sub    sp, sp, #16\n"                                                                 \
            "str    r1, [sp, #0]\n"                                                                \
            "str    r2, [sp, #4]\n"                                                                \
            "str    r3, [sp, #8]\n"                                                                \
            "str    r4, [sp, #12]\n"                                                               \
            "mov    r12, r0\n"                                                                     \
            "1:\n"                                                                                 \
            RLP__S16_BODY(n_chunk, rem)                                                            \
            "ldmia  r12!, {r4-r7}\n"                                                               \
            "ldr    r8, [sp, #12]\n"                                                               \
            "smmulr r0, r0, r4\n"                                                                  \
            "smmulr r1, r1, r5\n"                                                                  \
            "smmulr r2, r2, r6\n"                                                                  \
            "smmulr r3, r3, r7\n"                                                                  \
            ".if " RLP_STR(shift) " > 0\n"                                                         \
            "ssat   r0, #" RLP_STR(bits) ", r0, asr #" RLP_STR(shift) "\n"                         \
            "ssat   r1, #" RLP_STR(bits) ", r1, asr #" RLP_STR(shift) "\n"                         \
            "ssat   r2, #" RLP_STR(bits) ", r2, asr #" RLP_STR(shift) "\n"                         \
            "ssat   r3, #" RLP_STR(bits) ", r3, asr #" RLP_STR(shift) "\n"                         \
            ".else\n"                                                                              \
            "ssat   r0, #" RLP_STR(bits) ", r0\n"                                                  \
            "ssat   r1, #" RLP_STR(bits) ", r1\n"                                                  \
            "ssat   r2, #" RLP_STR(bits) ", r2\n"                                                  \
            "ssat   r3, #" RLP_STR(bits) ", r3\n"                                                  \
            ".endif\n"                                                                             \
            "ldrsh  r0, [r8, r0, lsl #1]\n"                                                        \
            "ldrsh  r1, [r8, r1, lsl #1]\n"                                                        \
            "ldrsh  r2, [r8, r2, lsl #1]\n"                                                        \
            "ldrsh  r3, [r8, r3, lsl #1]\n"                                                        \
            "pkhbt  r0, r0, r1, lsl #16\n"                                                         \
            "pkhbt  r2, r2, r3, lsl #16\n"                                                         \
            "ldr    r9, [sp, #4]\n"                                                                \
            "strd   r0, r2, [r9], #8\n"                                                            \
            "str    r9, [sp, #4]\n"                                                                \
            "ldr    r9, [sp, #8]\n"                                                                \
            "subs   r9, r9, #1\n"                                                                  \
            "str    r9, [sp, #8]\n"                                                                \
            "bne    1b\n"                                                                          \
            "add    sp, sp, #16\n"                                                                 \
            "pop    {r4-r11, pc}\n");                                                              \
    }

/* layer whose int32 accumulators are post-processed in C (output layer, relu/elu hidden layers) */
#define RLP_S16_DENSE_RAW(name, n_chunk, rem)                                                      \
    __attribute__((naked, noinline)) static void name(const uint32_t *stream, const int32_t *x,      \
                                                      int32_t *acc, uint32_t n_blocks)             \
    {                                                                                              \
        __asm volatile(                                                                            \
            "push   {r4-r11, lr}\n"                                                                \
            "sub    sp, sp, #16\n"                                                                 \
            "str    r1, [sp, #0]\n"                                                                \
            "str    r2, [sp, #4]\n"                                                                \
            "str    r3, [sp, #8]\n"                                                                \
            "mov    r12, r0\n"                                                                     \
            "1:\n"                                                                                 \
            RLP__S16_BODY(n_chunk, rem)                                                            \
            "ldr    r9, [sp, #4]\n"                                                                \
            "stmia  r9!, {r0-r3}\n"                                                                \
            "str    r9, [sp, #4]\n"                                                                \
            "ldr    r9, [sp, #8]\n"                                                                \
            "subs   r9, r9, #1\n"                                                                  \
            "str    r9, [sp, #8]\n"                                                                \
            "bne    1b\n"                                                                          \
            "add    sp, sp, #16\n"                                                                 \
            "pop    {r4-r11, pc}\n");                                                              \
    }

/* n floats -> ceil(n / 2) int16 pairs, VCVT.S16.F32 #fbits (1 <= fbits <= 16) */
#define RLP_S16_QUANT(name, n, fbits)                                                              \
    __attribute__((naked, noinline)) static void name(const float *x, int32_t *pairs)               \
    {                                                                                              \
        __asm volatile(                                                                            \
            "push   {r4, r5, lr}\n"                                                                \
            ".rept (" RLP_STR(n) ") / 8\n"                                                         \
            "vldmia r0!, {s0-s7}\n"                                                                \
            "vcvt.s16.f32 s0, s0, #" RLP_STR(fbits) "\n"                                           \
            "vcvt.s16.f32 s1, s1, #" RLP_STR(fbits) "\n"                                           \
            "vcvt.s16.f32 s2, s2, #" RLP_STR(fbits) "\n"                                           \
            "vcvt.s16.f32 s3, s3, #" RLP_STR(fbits) "\n"                                           \
            "vcvt.s16.f32 s4, s4, #" RLP_STR(fbits) "\n"                                           \
            "vcvt.s16.f32 s5, s5, #" RLP_STR(fbits) "\n"                                           \
            "vcvt.s16.f32 s6, s6, #" RLP_STR(fbits) "\n"                                           \
            "vcvt.s16.f32 s7, s7, #" RLP_STR(fbits) "\n"                                           \
            "vmov   r2, r3, s0, s1\n"                                                              \
            "vmov   r4, r5, s2, s3\n"                                                              \
            "pkhbt  r2, r2, r3, lsl #16\n"                                                         \
            "pkhbt  r3, r4, r5, lsl #16\n"                                                         \
            "vmov   r4, r5, s4, s5\n"                                                              \
            "vmov   r12, lr, s6, s7\n"                                                             \
            "pkhbt  r4, r4, r5, lsl #16\n"                                                         \
            "pkhbt  r5, r12, lr, lsl #16\n"                                                        \
            "stmia  r1!, {r2-r5}\n"                                                                \
            ".endr\n"                                                                              \
            ".rept ((" RLP_STR(n) ") % 8) / 2\n"                                                   \
            "vldmia r0!, {s0-s1}\n"                                                                \
            "vcvt.s16.f32 s0, s0, #" RLP_STR(fbits) "\n"                                           \
            "vcvt.s16.f32 s1, s1, #" RLP_STR(fbits) "\n"                                           \
            "vmov   r2, r3, s0, s1\n"                                                              \
            "pkhbt  r2, r2, r3, lsl #16\n"                                                         \
            "str    r2, [r1], #4\n"                                                                \
            ".endr\n"                                                                              \
            ".if (" RLP_STR(n) ") % 2\n"                                                           \
            "vldmia r0!, {s0}\n"                                                                   \
            "vcvt.s16.f32 s0, s0, #" RLP_STR(fbits) "\n"                                           \
            "vmov   r2, s0\n"                                                                      \
            "uxth   r2, r2\n"                                                                      \
            "str    r2, [r1], #4\n"                                                                \
            ".endif\n"                                                                             \
            "pop    {r4, r5, pc}\n");                                                              \
    }

#else /* portable fallbacks with identical integer results */

#define RLP_S16_DENSE_LUT(name, n_chunk, rem, bits, shift)                                         \
    static void name(const uint32_t *stream, const int32_t *x, int32_t *out, uint32_t n_blocks,     \
                     const int16_t *lut_mid)                                                       \
    {                                                                                              \
        rlp_s16_dense_lut_c(stream, x, out, n_blocks, n_chunk, rem, lut_mid, bits, shift);         \
    }
#define RLP_S16_DENSE_RAW(name, n_chunk, rem)                                                      \
    static void name(const uint32_t *stream, const int32_t *x, int32_t *acc, uint32_t n_blocks)     \
    {                                                                                              \
        rlp_s16_dense_raw_c(stream, x, acc, n_blocks, n_chunk, rem);                               \
    }
#define RLP_S16_QUANT(name, n, fbits)                                                              \
    static void name(const float *x, int32_t *pairs) { rlp_s16_quant_c(x, pairs, n, fbits); }

#endif

#ifdef __cplusplus
}
#endif
#endif /* RLP_S16_H */
