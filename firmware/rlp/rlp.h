/*
 * rlp.h - robot-rl policy inference library (portable C99, optimised for the Cortex-M4F).
 *
 * The C exporter (python -m deploy.export.c_export) writes policy.h/policy.c that plug into this library.
 * No heap, no libm: every function here is plain IEEE single-precision arithmetic, so a build with
 * -ffp-contract=off gives the same bits on the host (x86-64/SSE) and on the Cortex-M4F.
 *
 * Summation order (defines the float results on every target): a dense layer computes four output rows
 * at a time; each row starts from its bias and adds w[r][c] * x[c] for c = 0, 1, ..., n_in - 1 in that
 * order, rounding the product and the sum separately (VMUL + VADD on the M4F, mul + add elsewhere).
 *
 * Integer path ("int8" export): int8 weights (per-output-row symmetric scales), int16 activations, int32
 * accumulators, see rlp_s16.h.
 */
#ifndef RLP_H
#define RLP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__ARM_ARCH_7EM__) && defined(__ARM_FP) && !defined(RLP_PORTABLE)
#define RLP_M4 1 /* Cortex-M4F: hand-scheduled VMUL+VADD / SMLAD kernels */
#else
#define RLP_M4 0 /* portable C with the same arithmetic */
#endif

/* ---- activations (enum values are written by the exporter) ---- */
enum {
    RLP_ACT_IDENTITY = 0,
    RLP_ACT_RELU = 1,
    RLP_ACT_TANH = 2,
    RLP_ACT_ELU = 3,
    RLP_ACT_FAST_TANH = 4,
    RLP_ACT_CLIP = 5
};

/* exp(x) without libm: Cody-Waite reduction + degree-7 polynomial (about 1 ulp), 0 below -87.3. */
float rlp_expf(float x);
/* tanh(x) = sign(x) (1 - 2 / (exp(2|x|) + 1)); absolute error below 2.5e-7, exactly +-1 beyond |x| = 9. */
float rlp_tanhf(float x);
/* logistic 1 / (1 + exp(-x)) through rlp_expf (the GRU gates of a recurrent policy) */
float rlp_sigmoidf(float x);
/* RLtools' fast tanh, in the ONNX graph's operation order: c = clip(x, -3, 3); c(c^2 + 27) / (9c^2 + 27). */
float rlp_fast_tanhf(float x);
/* In-place activation of n values (elu_alpha only used by RLP_ACT_ELU, lo/hi only by RLP_ACT_CLIP). */
void rlp_activate(float *x, uint32_t n, int act, float elu_alpha, float lo, float hi);

/*
 * Float dense layer over n_blocks blocks of four rows:
 *   stream = for each block: bias[4], then for c in [0, n_in): w[4 rows][c]   (rows padded with zeros)
 *   y[4 * n_blocks] = bias + W x
 */
void rlp_f32_dense(const float *stream, const float *x, float *y, uint32_t n_blocks, uint32_t n_in);

/* ---- what a generated policy exposes (used by the Crazyflie adapter and the test programs) ---- */
enum {
    RLP_OBS_OTHER = 0,
    RLP_OBS_POSITION = 1,          /* 3, world, position minus target, m */
    RLP_OBS_ROTATION_MATRIX = 2,   /* 9, body-to-world, row-major */
    RLP_OBS_QUATERNION = 3,        /* 4, w x y z */
    RLP_OBS_LINEAR_VELOCITY = 4,   /* 3, world, m/s */
    RLP_OBS_ANGULAR_VELOCITY = 5,  /* 3, body, rad/s */
    RLP_OBS_ACTION_HISTORY = 6     /* act_dim * steps, oldest first */
};

typedef struct {
    uint8_t kind;     /* RLP_OBS_* */
    uint16_t offset;  /* first index in the observation vector */
    uint16_t size;
    uint16_t steps;   /* action history only */
} rlp_obs_component_t;

typedef struct {
    const char *name;                      /* robot / task / checkpoint, for boot messages */
    uint16_t obs_dim;
    uint16_t act_dim;
    uint16_t n_components;
    const rlp_obs_component_t *components;
    float control_rate_hz;                 /* training control rate */
    float rpm_min, rpm_max;                /* action type motor_rpm; both 0 otherwise */
    uint32_t macs;                         /* multiply-accumulates per forward pass */
    void (*forward)(const float *obs, float *action);
    int (*self_test)(float *max_abs_diff); /* 0 when the embedded test vector reproduces */
    /* recurrent policies (state_size > 0): forward reads the committed state and computes the next one, commit
     * makes that current (call it once per training-rate step), reset zeroes it (an episode's start). An MLP
     * has state_size 0 and both pointers null. */
    uint16_t state_size;
    void (*reset)(void);
    void (*commit)(void);
} rlp_policy_t;

#ifdef __cplusplus
}
#endif
#endif /* RLP_H */
