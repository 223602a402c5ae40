/*
 * rlp_math.c - libm-free exp/tanh and the activations, bit-identical on every IEEE-754 target when built
 * with -ffp-contract=off (only +, -, *, / and exact float<->int conversions are used).
 *
 * deploy/export/int8_reference.py mirrors rlp_expf/rlp_tanhf operation by operation in numpy float32; keep
 * the two in step when changing anything here.
 */
#include "rlp.h"

typedef union {
    float f;
    uint32_t u;
} rlp_bits_t;

float rlp_expf(float x)
{
    /* e^x = 2^k e^r, k = round(x / ln 2), r = x - k ln 2 (ln 2 split in two so that k * LN2_HI is exact) */
    const float LOG2E = 1.44269502925872802734375f;   /* 0x3fb8aa3b */
    const float LN2_HI = 0.693145751953125f;          /* 0x3f317200 */
    const float LN2_LO = 1.42860676533018704503775e-06f; /* 0x35bfbe8e */
    float t, r, p;
    int32_t k;
    rlp_bits_t scale;
    if (!(x == x)) {
        return x;
    }
    if (x < -87.0f) {
        return 0.0f;
    }
    if (x > 88.0f) {
        x = 88.0f;
    }
    t = x * LOG2E;
    k = (int32_t)(t >= 0.0f ? t + 0.5f : t - 0.5f);
    r = x - (float)k * LN2_HI;
    r = r - (float)k * LN2_LO;
    p = 1.98412698e-4f; /* 1/7! ... 1/0!, |r| <= 0.35: truncation error < 6e-9 */
    p = p * r + 1.38888889e-3f;
    p = p * r + 8.33333377e-3f;
    p = p * r + 4.16666679e-2f;
    p = p * r + 1.66666672e-1f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    scale.u = (uint32_t)(k + 127) << 23;
    return p * scale.f;
}

float rlp_tanhf(float x)
{
    float a = x < 0.0f ? -x : x;
    float t;
    if (!(a == a)) {
        return x;
    }
    if (a > 9.0f) {
        t = 1.0f;
    } else if (a < 2.44140625e-4f) { /* 2^-12: tanh(a) = a to float precision */
        t = a;
    } else {
        float e = rlp_expf(a + a);
        t = 1.0f - 2.0f / (e + 1.0f);
    }
    return x < 0.0f ? -t : t;
}

float rlp_sigmoidf(float x)
{
    return 1.0f / (1.0f + rlp_expf(-x));
}

float rlp_fast_tanhf(float x)
{
    float c = x, c2;
    if (c < -3.0f) {
        c = -3.0f;
    }
    if (c > 3.0f) {
        c = 3.0f;
    }
    c2 = c * c;
    return (c * (c2 + 27.0f)) / (c2 * 9.0f + 27.0f);
}

void rlp_activate(float *x, uint32_t n, int act, float elu_alpha, float lo, float hi)
{
    uint32_t i;
    switch (act) {
    case RLP_ACT_RELU:
        for (i = 0; i < n; i++) {
            x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        }
        break;
    case RLP_ACT_TANH:
        for (i = 0; i < n; i++) {
            x[i] = rlp_tanhf(x[i]);
        }
        break;
    case RLP_ACT_ELU:
        for (i = 0; i < n; i++) {
            x[i] = x[i] >= 0.0f ? x[i] : elu_alpha * (rlp_expf(x[i]) - 1.0f);
        }
        break;
    case RLP_ACT_FAST_TANH:
        for (i = 0; i < n; i++) {
            x[i] = rlp_fast_tanhf(x[i]);
        }
        break;
    case RLP_ACT_CLIP:
        for (i = 0; i < n; i++) {
            float v = x[i] < lo ? lo : x[i];
            x[i] = v > hi ? hi : v;
        }
        break;
    default:
        break;
    }
}
