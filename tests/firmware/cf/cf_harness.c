/*
 * cf_harness.c - host test support for firmware/crazyflie/src/rlp_cf.c (driven from Python via ctypes):
 * a fake quadrotor policy whose actions the test sets, plus accessors for the adapter state.
 */
#include "rlp_cf.h"

float fake_action[4];
float fake_seen_obs[RLP_CF_MAX_OBS];
int fake_calls;
int fake_self_test_rc;

static const rlp_obs_component_t fake_components[] = {
    {RLP_OBS_POSITION, 0u, 3u, 0u},
    {RLP_OBS_ROTATION_MATRIX, 3u, 9u, 0u},
    {RLP_OBS_LINEAR_VELOCITY, 12u, 3u, 0u},
    {RLP_OBS_ANGULAR_VELOCITY, 15u, 3u, 0u},
    {RLP_OBS_ACTION_HISTORY, 18u, 128u, 32u},
};

static void fake_forward(const float *obs, float *action)
{
    int i;
    for (i = 0; i < 146; i++) {
        fake_seen_obs[i] = obs[i];
    }
    for (i = 0; i < 4; i++) {
        action[i] = fake_action[i];
    }
    fake_calls++;
}

static int fake_self_test(float *max_abs_diff)
{
    *max_abs_diff = 0.0f;
    return fake_self_test_rc;
}

const rlp_policy_t fake_policy = {"fake", 146u, 4u, 5u, fake_components, 100.0f, 0.0f, 21702.0f, 0u,
                                  fake_forward, fake_self_test, 0u, 0, 0};

int h_mode(const rlp_cf_t *cf) { return (int)cf->mode; }
const uint16_t *h_pwm(const rlp_cf_t *cf) { return cf->pwm; }
const float *h_history(const rlp_cf_t *cf) { return cf->history; }
const float *h_origin(const rlp_cf_t *cf) { return cf->origin; }
const float *h_obs(const rlp_cf_t *cf) { return cf->obs; }
const float *h_action(const rlp_cf_t *cf) { return cf->action; }
unsigned h_calls(const rlp_cf_t *cf) { return cf->calls; }
void h_set_flags(rlp_cf_t *cf, int enable, int self_test_ok)
{
    cf->enable = (uint8_t)enable;
    cf->self_test_ok = (uint8_t)self_test_ok;
}
