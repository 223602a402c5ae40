/*
 * rlp_cf.h - Crazyflie adapter for exported robot-rl policies, free of firmware headers (host-testable).
 *
 * Per stabilizer tick (1 kHz) the glue (rlp_controller.c) fills an rlp_cf_input_t from the state estimate,
 * the gyro and the current setpoint and calls rlp_cf_update(), which applies the dead-man (the policy only
 * drives the motors while setpoints keep arriving) and the optional motor warm-up. On every second tick
 * (500 Hz) rlp_cf_step() assembles the observation exactly as in training, runs the policy, advances the
 * action history and maps the actions to PWM ratios. When the mode is RLP_CF_OFF the glue runs the stock
 * PID controller instead.
 *
 * Observation (component order and sizes from the generated policy's layout):
 *   position         = clip(p - p_target, +-pos_limit)        world, m
 *   rotation_matrix  = R(q), body-to-world, row-major           (quaternion w x y z also supported)
 *   linear_velocity  = clip(v - v_target, +-vel_limit)        world, m/s
 *   angular_velocity = gyro * pi / 180                          body, rad/s
 *   action_history   = previous actions, oldest first; one history step per `decimation` policy calls
 *                      (5 at 500 Hz = the 100 Hz training rate). As in the paper's firmware, the newest
 *                      entry is the running mean of the actions of the current 10 ms window.
 * A recurrent policy (state_size > 0) starts from the zero state at every take-over and commits its state on the
 * last call of each history window, so its memory advances at the training rate.
 * Target: the setpoint position/velocity when the setpoint holds x, y, z in absolute mode, otherwise the
 * position where the policy took over (hover in place) with zero velocity.
 * Action -> PWM ratio: rpm = (clip(a, -1, 1) + 1) / 2 * (rpm_max - rpm_min) + rpm_min;
 *                      ratio = round(rpm / rpm_max * 65535)   (rpm_min = 0: (a + 1) / 2 * 65535).
 */
#ifndef RLP_CF_H
#define RLP_CF_H

#include <stddef.h>
#include <stdint.h>

#include "rlp.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RLP_CF_MAX_OBS 256
#define RLP_CF_MAX_ACT 4
#define RLP_CF_MAX_HISTORY 64 /* steps */

typedef enum { RLP_CF_OFF = 0, RLP_CF_WARMUP = 1, RLP_CF_POLICY = 2 } rlp_cf_mode_t;

typedef struct {
    float pos_limit;       /* m, position error clip (0.5) */
    float vel_limit;       /* m/s, velocity error clip (2.0) */
    uint32_t deadman_ms;   /* policy drives the motors only while the last setpoint is younger (200) */
    uint32_t warmup_ms;    /* spin the motors at warmup_ratio this long before the policy starts (0 = off) */
    uint16_t warmup_ratio; /* PWM ratio during warm-up */
    uint16_t decimation;   /* policy calls per action-history step (5: 500 Hz inference, 100 Hz training) */
} rlp_cf_config_t;

typedef struct {
    uint32_t now_ms;               /* stabilizer clock */
    uint32_t setpoint_ms;          /* arrival time of the current setpoint (0: none yet) */
    uint32_t setpoint_has_position;/* non-zero: x, y, z of the setpoint are absolute positions */
    float setpoint_pos[3];         /* m, world */
    float setpoint_vel[3];         /* m/s, world (feed-forward of full-state setpoints) */
    float pos[3];                  /* state estimate, m, world */
    float vel[3];                  /* state estimate, m/s, world */
    float quat[4];                 /* attitude, w x y z, body-to-world */
    float gyro_dps[3];             /* body rates, deg/s */
} rlp_cf_input_t;

typedef struct {
    const rlp_policy_t *policy;
    rlp_cf_config_t cfg;
    uint8_t enable;          /* parameter: 0 keeps the stock controller */
    uint8_t self_test_ok;    /* set by the glue after rlp_policy_self_test() */
    uint8_t error;           /* last step saw a non-finite input or output */
    rlp_cf_mode_t mode;
    uint32_t since_ms;       /* start of the current mode */
    uint32_t calls;          /* policy calls since the policy took over */
    float origin[3];         /* hover target when the setpoint has no position */
    float target_pos[3], target_vel[3];
    uint16_t history_steps;
    float history[RLP_CF_MAX_HISTORY * RLP_CF_MAX_ACT]; /* oldest first */
    float obs[RLP_CF_MAX_OBS];
    float action[RLP_CF_MAX_ACT];
    uint16_t pwm[RLP_CF_MAX_ACT];
} rlp_cf_t;

void rlp_cf_default_config(rlp_cf_config_t *cfg);
/* 0 on success; -1 if the policy does not fit (sizes, unknown components, not motor_rpm with 4 rotors) */
int rlp_cf_init(rlp_cf_t *cf, const rlp_policy_t *policy, const rlp_cf_config_t *cfg);
/* every stabilizer tick: dead-man, activation/deactivation, warm-up; returns the mode for this tick */
rlp_cf_mode_t rlp_cf_update(rlp_cf_t *cf, const rlp_cf_input_t *in);
/* at the policy rate while the mode is RLP_CF_POLICY; 0 on success, -1 (mode OFF) on non-finite data */
int rlp_cf_step(rlp_cf_t *cf, const rlp_cf_input_t *in);
/* observation of the current input into obs[policy->obs_dim] (uses cf's targets and history) */
void rlp_cf_build_obs(const rlp_cf_t *cf, const rlp_cf_input_t *in, float *obs);
void rlp_cf_quat_to_rotmat(const float q[4], float r[9]);
uint16_t rlp_cf_action_to_ratio(float action, float rpm_min, float rpm_max);
size_t rlp_cf_size(void);

#ifdef __cplusplus
}
#endif
#endif /* RLP_CF_H */
