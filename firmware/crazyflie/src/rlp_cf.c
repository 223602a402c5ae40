/*
 * rlp_cf.c - Crazyflie adapter logic (see rlp_cf.h); plain C99, no firmware headers.
 */
#include "rlp_cf.h"

#define RLP_CF_DEG2RAD 0.0174532925199432958f

static float clipf(float v, float lim)
{
    if (v < -lim) {
        return -lim;
    }
    return v > lim ? lim : v;
}

static int finitef(float v)
{
    return v == v && v - v == 0.0f;
}

void rlp_cf_default_config(rlp_cf_config_t *cfg)
{
    cfg->pos_limit = 0.5f;
    cfg->vel_limit = 2.0f;
    cfg->deadman_ms = 200u;
    cfg->warmup_ms = 0u;
    cfg->warmup_ratio = 6000u;
    cfg->decimation = 5u;
}

size_t rlp_cf_size(void)
{
    return sizeof(rlp_cf_t);
}

int rlp_cf_init(rlp_cf_t *cf, const rlp_policy_t *policy, const rlp_cf_config_t *cfg)
{
    uint16_t c;
    uint32_t i;
    unsigned char *raw = (unsigned char *)cf;
    for (i = 0; i < sizeof(*cf); i++) {
        raw[i] = 0;
    }
    cf->policy = policy;
    cf->cfg = *cfg;
    cf->enable = 1;
    if (cf->cfg.decimation == 0u) {
        cf->cfg.decimation = 1u;
    }
    if (policy->obs_dim > RLP_CF_MAX_OBS || policy->act_dim != RLP_CF_MAX_ACT || !(policy->rpm_max > 0.0f)) {
        return -1;
    }
    if (policy->state_size > 0u && (policy->reset == 0 || policy->commit == 0)) {
        return -1;
    }
    for (c = 0; c < policy->n_components; c++) {
        const rlp_obs_component_t *comp = &policy->components[c];
        if (comp->kind == RLP_OBS_OTHER || comp->offset + comp->size > policy->obs_dim) {
            return -1;
        }
        if (comp->kind == RLP_OBS_ACTION_HISTORY) {
            if (comp->steps > RLP_CF_MAX_HISTORY || comp->size != comp->steps * policy->act_dim) {
                return -1;
            }
            cf->history_steps = comp->steps;
        }
    }
    return 0;
}

void rlp_cf_quat_to_rotmat(const float q[4], float r[9])
{
    /* same expressions as sim/quadrotor/dynamics.py quat_to_rotmat */
    const float w = q[0], x = q[1], y = q[2], z = q[3];
    r[0] = 1.0f - 2.0f * (y * y + z * z);
    r[1] = 2.0f * (x * y - w * z);
    r[2] = 2.0f * (x * z + w * y);
    r[3] = 2.0f * (x * y + w * z);
    r[4] = 1.0f - 2.0f * (x * x + z * z);
    r[5] = 2.0f * (y * z - w * x);
    r[6] = 2.0f * (x * z - w * y);
    r[7] = 2.0f * (y * z + w * x);
    r[8] = 1.0f - 2.0f * (x * x + y * y);
}

uint16_t rlp_cf_action_to_ratio(float action, float rpm_min, float rpm_max)
{
    /* same operation order as sim/quadrotor/dynamics.py action_to_rpm */
    float a = action < -1.0f ? -1.0f : (action > 1.0f ? 1.0f : action);
    float rpm, ratio;
    if (!(a == a)) {
        return 0u;
    }
    rpm = (a + 1.0f) * (0.5f * (rpm_max - rpm_min)) + rpm_min;
    ratio = rpm / rpm_max * 65535.0f;
    if (!(ratio > 0.0f)) {
        return 0u;
    }
    if (ratio >= 65535.0f) {
        return 65535u;
    }
    return (uint16_t)(ratio + 0.5f);
}

void rlp_cf_build_obs(const rlp_cf_t *cf, const rlp_cf_input_t *in, float *obs)
{
    const rlp_policy_t *p = cf->policy;
    uint16_t c, i;
    for (c = 0; c < p->n_components; c++) {
        const rlp_obs_component_t *comp = &p->components[c];
        float *o = obs + comp->offset;
        switch (comp->kind) {
        case RLP_OBS_POSITION:
            for (i = 0; i < 3; i++) {
                o[i] = clipf(in->pos[i] - cf->target_pos[i], cf->cfg.pos_limit);
            }
            break;
        case RLP_OBS_ROTATION_MATRIX:
            rlp_cf_quat_to_rotmat(in->quat, o);
            break;
        case RLP_OBS_QUATERNION:
            for (i = 0; i < 4; i++) {
                o[i] = in->quat[i];
            }
            break;
        case RLP_OBS_LINEAR_VELOCITY:
            for (i = 0; i < 3; i++) {
                o[i] = clipf(in->vel[i] - cf->target_vel[i], cf->cfg.vel_limit);
            }
            break;
        case RLP_OBS_ANGULAR_VELOCITY:
            for (i = 0; i < 3; i++) {
                o[i] = in->gyro_dps[i] * RLP_CF_DEG2RAD;
            }
            break;
        case RLP_OBS_ACTION_HISTORY:
            for (i = 0; i < comp->size; i++) {
                o[i] = cf->history[i];
            }
            break;
        default:
            for (i = 0; i < comp->size; i++) {
                o[i] = 0.0f;
            }
            break;
        }
    }
}

static void start_policy(rlp_cf_t *cf, uint32_t now_ms)
{
    uint32_t i;
    cf->mode = RLP_CF_POLICY;
    cf->since_ms = now_ms;
    cf->calls = 0;
    for (i = 0; i < RLP_CF_MAX_HISTORY * RLP_CF_MAX_ACT; i++) {
        cf->history[i] = 0.0f; /* training episodes start with an all-zero history */
    }
    if (cf->policy->state_size > 0u) {
        cf->policy->reset(); /* ... and a recurrent policy's with the zero state */
    }
}

static void set_pwm(rlp_cf_t *cf, uint16_t ratio)
{
    uint32_t i;
    for (i = 0; i < RLP_CF_MAX_ACT; i++) {
        cf->pwm[i] = ratio;
    }
}

rlp_cf_mode_t rlp_cf_update(rlp_cf_t *cf, const rlp_cf_input_t *in)
{
    const int fresh = cf->enable && cf->self_test_ok && in->setpoint_ms != 0u &&
                      (uint32_t)(in->now_ms - in->setpoint_ms) < cf->cfg.deadman_ms;
    uint32_t i;
    if (!fresh) {
        cf->mode = RLP_CF_OFF;
        set_pwm(cf, 0u);
        return cf->mode;
    }
    if (cf->mode == RLP_CF_OFF) { /* take over: hold this position unless the setpoint has one */
        for (i = 0; i < 3; i++) {
            cf->origin[i] = in->pos[i];
        }
        if (cf->cfg.warmup_ms > 0u) {
            cf->mode = RLP_CF_WARMUP;
            cf->since_ms = in->now_ms;
        } else {
            start_policy(cf, in->now_ms);
        }
    }
    if (cf->mode == RLP_CF_WARMUP) {
        if ((uint32_t)(in->now_ms - cf->since_ms) >= cf->cfg.warmup_ms) {
            start_policy(cf, in->now_ms);
        } else {
            set_pwm(cf, cf->cfg.warmup_ratio);
        }
    }
    return cf->mode;
}

int rlp_cf_step(rlp_cf_t *cf, const rlp_cf_input_t *in)
{
    const rlp_policy_t *p = cf->policy;
    const uint32_t n = p->act_dim, steps = cf->history_steps;
    const uint32_t sub = cf->calls % cf->cfg.decimation;
    uint32_t i;
    for (i = 0; i < 3; i++) {
        const int abs_target = in->setpoint_has_position != 0u;
        cf->target_pos[i] = abs_target ? in->setpoint_pos[i] : cf->origin[i];
        cf->target_vel[i] = abs_target ? in->setpoint_vel[i] : 0.0f;
    }
    rlp_cf_build_obs(cf, in, cf->obs);
    for (i = 0; i < p->obs_dim; i++) {
        if (!finitef(cf->obs[i])) {
            cf->error = 1;
            cf->mode = RLP_CF_OFF;
            set_pwm(cf, 0u);
            return -1;
        }
    }
    p->forward(cf->obs, cf->action);
    for (i = 0; i < n; i++) {
        if (!finitef(cf->action[i])) {
            cf->error = 1;
            cf->mode = RLP_CF_OFF;
            set_pwm(cf, 0u);
            return -1;
        }
    }
    if (steps > 0u) {
        float *newest = cf->history + (steps - 1u) * n;
        if (sub == 0u) { /* a new 10 ms window: shift by one step, oldest first */
            for (i = 0; i + n < steps * n; i++) {
                cf->history[i] = cf->history[i + n];
            }
        }
        for (i = 0; i < n; i++) {
            float a = cf->action[i] < -1.0f ? -1.0f : (cf->action[i] > 1.0f ? 1.0f : cf->action[i]);
            newest[i] = sub == 0u ? a : (newest[i] * (float)sub + a) / (float)(sub + 1u);
        }
    }
    if (p->state_size > 0u && sub + 1u == cf->cfg.decimation) {
        /* the memory advances once per training step, from the window's last observation; every call in
         * between answers its own observation from the state committed at the window's start */
        p->commit();
    }
    cf->calls++;
    cf->error = 0;
    for (i = 0; i < n; i++) {
        cf->pwm[i] = rlp_cf_action_to_ratio(cf->action[i], p->rpm_min, p->rpm_max);
    }
    return 0;
}
