/*
 * rlp_controller.c - out-of-tree controller (CONFIG_CONTROLLER_OOT=y) running an exported robot-rl policy.
 *
 * The only file that includes Crazyflie firmware headers: it copies the estimator state, gyro and setpoint
 * into an rlp_cf_input_t, lets rlp_cf.c decide (dead-man, warm-up, 500 Hz inference, history, PWM) and
 * hands the PWM ratios to the stabilizer in controlModeForce, whose power distribution writes them with
 * motorsSetRatio(). Without fresh setpoints (or with rlp.enable = 0, or a failed test vector) the stock PID
 * controller flies.
 *
 * Build flags: RLP_CF_DIRECT_MOTORS=1 also calls motorsSetRatio() here (for firmware forks whose
 * stabilizer does not write the motors after the controller, like the paper's).
 */
#include <stdbool.h>
#include <stdint.h>

#include "FreeRTOS.h"
#include "task.h"

#include "app.h"
#include "controller.h"
#include "controller_pid.h"
#include "log.h"
#include "motors.h"
#include "param.h"
#include "stabilizer_types.h"

#define DEBUG_MODULE "RLP"
#include "debug.h"

#include "policy.h"
#include "rlp_cf.h"

#ifndef RLP_CF_DIRECT_MOTORS
#define RLP_CF_DIRECT_MOTORS 0
#endif

/* The policy runs inside the 1 kHz stabilizer tick (every second tick), which also runs the estimator: a step
 * must leave room. 24,000 float multiply-accumulates cost at most ~0.75 ms at 168 MHz by the high estimate of
 * benchmarks/mcu_inference.py (crazyflie-hover-robust: 17,792 MACs, 0.40-0.55 ms; crazyflie-hover-robust-gru:
 * 13,120 MACs, 0.35-0.47 ms; a 64-unit GRU: 38,528 MACs, 0.95-1.28 ms, does not fit). Raise it only after measuring
 * (benchmarks/mcu_inference.py --export, or DWT->CYCCNT on the vehicle). */
#ifndef RLP_CF_MAX_MACS
#define RLP_CF_MAX_MACS 24000
#endif
#ifndef RLP_POLICY_MACS
#error "policy.h predates the MACs budget: regenerate it (python -m deploy.export.c_export EXPORT_DIR)"
#endif
#if RLP_POLICY_MACS > RLP_CF_MAX_MACS
#error "policy too large for the stabilizer tick: RLP_POLICY_MACS > RLP_CF_MAX_MACS (see rlp_controller.c)"
#endif

static rlp_cf_t cf;
static float test_max_diff;
static uint8_t mode_log;
static uint8_t init_ok;

/* the app layer wants an entry point; this app only provides the controller */
void appMain(void)
{
    while (1) {
        vTaskDelay(M2T(2000));
    }
}

void controllerOutOfTreeInit(void)
{
    rlp_cf_config_t cfg;
    rlp_cf_default_config(&cfg);
    init_ok = rlp_cf_init(&cf, &rlp_policy, &cfg) == 0;
    controllerPidInit();
    DEBUG_PRINT("policy %s (%u -> %u, %lu MACs)%s\n", rlp_policy.name, (unsigned)rlp_policy.obs_dim,
                (unsigned)rlp_policy.act_dim, (unsigned long)rlp_policy.macs,
                init_ok ? "" : ": layout not supported by the Crazyflie adapter");
}

bool controllerOutOfTreeTest(void)
{
    const int pass = rlp_policy_self_test(&test_max_diff) == 0;
    cf.self_test_ok = (uint8_t)(pass && init_ok);
    DEBUG_PRINT("test vector max |diff| %f: %s\n", (double)test_max_diff, pass ? "pass" : "FAIL");
    return cf.self_test_ok && controllerPidTest();
}

void controllerOutOfTree(control_t *control, const setpoint_t *setpoint, const sensorData_t *sensors,
                         const state_t *state, const stabilizerStep_t stabilizerStep)
{
    rlp_cf_input_t in;
    rlp_cf_mode_t mode;
    int i;
    in.now_ms = T2M(xTaskGetTickCount());
    in.setpoint_ms = T2M(setpoint->timestamp);
    in.setpoint_has_position = setpoint->mode.x == modeAbs && setpoint->mode.y == modeAbs &&
                               setpoint->mode.z == modeAbs;
    in.setpoint_pos[0] = setpoint->position.x;
    in.setpoint_pos[1] = setpoint->position.y;
    in.setpoint_pos[2] = setpoint->position.z;
    in.setpoint_vel[0] = setpoint->velocity.x;
    in.setpoint_vel[1] = setpoint->velocity.y;
    in.setpoint_vel[2] = setpoint->velocity.z;
    in.pos[0] = state->position.x;
    in.pos[1] = state->position.y;
    in.pos[2] = state->position.z;
    in.vel[0] = state->velocity.x;
    in.vel[1] = state->velocity.y;
    in.vel[2] = state->velocity.z;
    in.quat[0] = state->attitudeQuaternion.w;
    in.quat[1] = state->attitudeQuaternion.x;
    in.quat[2] = state->attitudeQuaternion.y;
    in.quat[3] = state->attitudeQuaternion.z;
    in.gyro_dps[0] = sensors->gyro.x;
    in.gyro_dps[1] = sensors->gyro.y;
    in.gyro_dps[2] = sensors->gyro.z;

    mode = rlp_cf_update(&cf, &in);
    /* inference at 500 Hz, and immediately when the policy takes over */
    if (mode == RLP_CF_POLICY && (RATE_DO_EXECUTE(RATE_500_HZ, stabilizerStep) || cf.calls == 0u)) {
        if (rlp_cf_step(&cf, &in) != 0) {
            mode = RLP_CF_OFF;
        }
    }
    mode_log = (uint8_t)mode;
    if (mode == RLP_CF_OFF) {
        control->controlMode = controlModeLegacy;
        controllerPid(control, setpoint, sensors, state, stabilizerStep);
        return;
    }
    control->controlMode = controlModeForce;
    for (i = 0; i < RLP_CF_MAX_ACT; i++) {
        /* power distribution writes f * UINT16_MAX, truncated: +0.5 lands exactly on pwm[i] */
        control->normalizedForces[i] = ((float)cf.pwm[i] + 0.5f) / 65535.0f;
#if RLP_CF_DIRECT_MOTORS
        motorsSetRatio(MOTOR_M1 + i, cf.pwm[i]);
#endif
    }
}

/**
 * Policy controller (robot-rl): dead-man, warm-up and observation limits.
 */
PARAM_GROUP_START(rlp)
/** @brief 0: always fly the stock PID controller */
PARAM_ADD(PARAM_UINT8, enable, &cf.enable)
/** @brief Policy drives the motors only while setpoints are younger than this (ms) */
PARAM_ADD(PARAM_UINT32, deadman_ms, &cf.cfg.deadman_ms)
/** @brief Spin the motors at warmup_pwm for this long before the policy starts (ms, 0 = off) */
PARAM_ADD(PARAM_UINT32, warmup_ms, &cf.cfg.warmup_ms)
/** @brief PWM ratio during warm-up (0-65535) */
PARAM_ADD(PARAM_UINT16, warmup_pwm, &cf.cfg.warmup_ratio)
/** @brief Position error clip (m) */
PARAM_ADD(PARAM_FLOAT, pos_limit, &cf.cfg.pos_limit)
/** @brief Velocity error clip (m/s) */
PARAM_ADD(PARAM_FLOAT, vel_limit, &cf.cfg.vel_limit)
PARAM_GROUP_STOP(rlp)

/**
 * Policy controller state: mode (0 stock PID, 1 warm-up, 2 policy), motor PWM ratios, test vector error.
 */
LOG_GROUP_START(rlp)
LOG_ADD(LOG_UINT8, mode, &mode_log)
LOG_ADD(LOG_UINT16, m1, &cf.pwm[0])
LOG_ADD(LOG_UINT16, m2, &cf.pwm[1])
LOG_ADD(LOG_UINT16, m3, &cf.pwm[2])
LOG_ADD(LOG_UINT16, m4, &cf.pwm[3])
LOG_ADD(LOG_UINT8, error, &cf.error)
LOG_ADD(LOG_FLOAT, testdiff, &test_max_diff)
LOG_GROUP_STOP(rlp)
