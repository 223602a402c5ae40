/*
 * test_main.c - runs a generated policy on its test vectors and on a recorded closed-loop observation
 * sequence and prints every output as hex bit patterns (exact comparison between builds). The same file
 * builds for the host (gcc) and for the STM32F405 under QEMU (semihosting printf).
 *
 * Usage: prog [REPEAT]  - additionally runs the forward pass REPEAT times on test input 0 (instruction
 * counting: run twice with different REPEAT and take the difference).
 * Include the sequence with -DRLP_HAVE_SEQUENCE and rlp_sequence.h on the include path.
 * A recurrent policy (RLP_POLICY_STATE_SIZE > 0) runs the test vectors and the sequence each from the zero state,
 * committing after every call, as one episode each; the repeated calls commit too (the cost of a control step).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#ifdef RLP_HAVE_SEQUENCE
#include "rlp_sequence.h"
#endif

static unsigned long bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (unsigned long)u;
}

static void begin_episode(void)
{
#if RLP_POLICY_STATE_SIZE > 0
    rlp_policy_reset();
#endif
}

static void step(const float *obs, float *y)
{
    rlp_policy_forward(obs, y);
#if RLP_POLICY_STATE_SIZE > 0
    rlp_policy_commit();
#endif
}

static void print_row(const char *tag, int i, const float *y)
{
    int k;
    printf("%s %d", tag, i);
    for (k = 0; k < RLP_POLICY_ACT_DIM; k++) {
        printf(" %08lx", bits(y[k]));
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    float y[RLP_POLICY_ACT_DIM], diff = 0.0f;
    volatile float sink = 0.0f;
    long repeat = argc > 1 ? atol(argv[argc - 1]) : 0;
    int i, rc;
    begin_episode();
    for (i = 0; i < RLP_POLICY_N_TESTS; i++) {
        step(rlp_policy_test_input[i], y);
        print_row("T", i, y);
    }
#ifdef RLP_HAVE_SEQUENCE
    begin_episode();
    for (i = 0; i < RLP_SEQ_LEN; i++) {
        step(rlp_seq_obs[i], y);
        print_row("S", i, y);
    }
#endif
    rc = rlp_policy_self_test(&diff);
    printf("selftest %d %08lx\n", rc, bits(diff));
    for (; repeat > 0; repeat--) {
        step(rlp_policy_test_input[0], y);
        sink = sink + y[0];
    }
    printf("done\n");
    return 0;
}
