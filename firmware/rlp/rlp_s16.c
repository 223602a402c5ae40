/*
 * rlp_s16.c - portable integer kernels (reference semantics of the M4F macros in rlp_s16.h) and the
 * float <-> int16 conversions used by the int8 export on every target.
 */
#include "rlp_s16.h"

static int32_t lo16(uint32_t w)
{
    int32_t v = (int32_t)(w & 0xFFFFu);
    return v >= 32768 ? v - 65536 : v;
}

static int32_t hi16(uint32_t w)
{
    return lo16(w >> 16);
}

/* SMLAD: acc + lo(a) lo(b) + hi(a) hi(b); the exporter guarantees that no int32 overflow can happen */
static int32_t smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return acc + lo16(a) * lo16(b) + hi16(a) * hi16(b);
}

/* SMMULR: high word of a * b + 2^31 (floor division by 2^32) */
static int32_t smmulr(int32_t a, int32_t b)
{
    int64_t p = (int64_t)a * (int64_t)b + ((int64_t)1 << 31);
    int64_t q = p / ((int64_t)1 << 32);
    if (q * ((int64_t)1 << 32) > p) {
        q -= 1;
    }
    return (int32_t)q;
}

static int32_t asr32(int32_t v, uint32_t shift)
{
    int32_t d = (int32_t)1 << shift;
    int32_t q = v / d;
    if (q * d > v) {
        q -= 1;
    }
    return q;
}

static const uint32_t *mac_block(const uint32_t *w, const int32_t *x, uint32_t n_chunk, uint32_t rem,
                                 int32_t acc[4])
{
    uint32_t r, p, c;
    for (r = 0; r < 4; r++) {
        acc[r] = (int32_t)w[r];
    }
    w += 4;
    for (r = 0; r < 4; r++) {
        for (p = 0; p < rem; p++) {
            acc[r] = smlad(*w++, (uint32_t)x[p], acc[r]);
        }
    }
    x += rem;
    for (c = 0; c < n_chunk; c++) {
        for (r = 0; r < 4; r++) {
            for (p = 0; p < 4; p++) {
                acc[r] = smlad(*w++, (uint32_t)x[p], acc[r]);
            }
        }
        x += 4;
    }
    return w;
}

void rlp_s16_dense_lut_c(const uint32_t *stream, const int32_t *x, int32_t *out, uint32_t n_blocks,
                         uint32_t n_chunk, uint32_t rem, const int16_t *lut_mid, uint32_t bits, uint32_t shift)
{
    const int32_t hi = ((int32_t)1 << (bits - 1)) - 1, lo = -hi - 1;
    uint32_t b, r;
    for (b = 0; b < n_blocks; b++) {
        int32_t acc[4], q[4];
        stream = mac_block(stream, x, n_chunk, rem, acc);
        for (r = 0; r < 4; r++) {
            int32_t idx = asr32(smmulr(acc[r], (int32_t)stream[r]), shift);
            idx = idx < lo ? lo : (idx > hi ? hi : idx);
            q[r] = lut_mid[idx];
        }
        stream += 4;
        out[0] = (int32_t)(((uint32_t)q[0] & 0xFFFFu) | ((uint32_t)q[1] << 16));
        out[1] = (int32_t)(((uint32_t)q[2] & 0xFFFFu) | ((uint32_t)q[3] << 16));
        out += 2;
    }
}

void rlp_s16_dense_raw_c(const uint32_t *stream, const int32_t *x, int32_t *acc, uint32_t n_blocks,
                         uint32_t n_chunk, uint32_t rem)
{
    uint32_t b;
    for (b = 0; b < n_blocks; b++) {
        stream = mac_block(stream, x, n_chunk, rem, acc);
        acc += 4;
    }
}

int32_t rlp_s16_quant1(float x, uint32_t fbits)
{
    float t = x * (float)((uint32_t)1 << fbits); /* exact: power of two */
    if (!(t == t)) {
        return 0;
    }
    if (t >= 32767.0f) {
        return 32767;
    }
    if (t <= -32768.0f) {
        return -32768;
    }
    return (int32_t)t; /* C conversion truncates toward zero, like VCVT to fixed point */
}

void rlp_s16_quant_c(const float *x, int32_t *pairs, uint32_t n, uint32_t fbits)
{
    uint32_t i;
    for (i = 0; i + 1 < n; i += 2) {
        uint32_t a = (uint32_t)rlp_s16_quant1(x[i], fbits) & 0xFFFFu;
        uint32_t b = (uint32_t)rlp_s16_quant1(x[i + 1], fbits) & 0xFFFFu;
        pairs[i / 2] = (int32_t)(a | (b << 16));
    }
    if (n % 2) {
        pairs[n / 2] = (int32_t)((uint32_t)rlp_s16_quant1(x[n - 1], fbits) & 0xFFFFu);
    }
}

void rlp_s16_dequant(const int32_t *acc, const float *m, uint32_t n, float *y)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        y[i] = (float)acc[i] * m[i];
    }
}

void rlp_s16_requant(const int32_t *acc, const float *m, uint32_t n, uint32_t n_pad, int act, float elu_alpha,
                     uint32_t fbits, int32_t *pairs)
{
    uint32_t i;
    for (i = 0; i < n_pad; i += 2) {
        float z[2] = {0.0f, 0.0f};
        uint32_t j, q[2];
        for (j = 0; j < 2; j++) {
            if (i + j < n) {
                z[j] = (float)acc[i + j] * m[i + j];
            }
        }
        rlp_activate(z, 2, act, elu_alpha, 0.0f, 0.0f);
        for (j = 0; j < 2; j++) {
            q[j] = i + j < n ? (uint32_t)rlp_s16_quant1(z[j], fbits) & 0xFFFFu : 0u;
        }
        pairs[i / 2] = (int32_t)(q[0] | (q[1] << 16));
    }
}
