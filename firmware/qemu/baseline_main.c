/*
 * baseline_main.c - the reference point of benchmarks/mcu_inference.py: the same MLP as a plain triple loop
 * (row-major weights, one accumulator, no blocking; the benchmark builds it with -O3 -funroll-loops), with the
 * same activation functions as the library.
 * The weights come from a generated baseline_net.h. Usage: prog [REPEAT] (forward passes on BL_X).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlp.h"
#include "baseline_net.h"

static float bl_buf[2][BL_MAX];

/* y = W x + b, W row-major [n_out][n_in]: the textbook loop */
static void bl_dense(const float *w, const float *b, const float *x, float *y, int n_in, int n_out)
{
    int o, i;
    for (o = 0; o < n_out; o++) {
        float acc = b[o];
        for (i = 0; i < n_in; i++) {
            acc += w[i] * x[i];
        }
        y[o] = acc;
        w += n_in;
    }
}

static void bl_forward(const float *x, float *y)
{
    const float *in = x;
    int l;
    for (l = 0; l < BL_LAYERS; l++) {
        float *out = bl_buf[l % 2];
        bl_dense(BL_W[l], BL_B[l], in, out, BL_DIMS[l], BL_DIMS[l + 1]);
        rlp_activate(out, (uint32_t)BL_DIMS[l + 1], BL_ACT[l], 1.0f, -1.0f, 1.0f);
        in = out;
    }
    memcpy(y, in, sizeof(float) * (size_t)BL_DIMS[BL_LAYERS]);
}

int main(int argc, char **argv)
{
    float y[BL_MAX];
    volatile float sink = 0.0f;
    long repeat = argc > 1 ? atol(argv[argc - 1]) : 0;
    int k;
    bl_forward(BL_X, y);
    for (k = 0; k < BL_DIMS[BL_LAYERS]; k++) {
        printf("%.9g\n", (double)y[k]);
    }
    for (; repeat > 0; repeat--) {
        bl_forward(BL_X, y);
        sink = sink + y[0];
    }
    printf("done\n");
    return 0;
}
