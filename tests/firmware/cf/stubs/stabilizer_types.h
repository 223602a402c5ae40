/* Host stand-in: the fields of the firmware's stabilizer_types.h that rlp_controller.c reads/writes. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#define STABILIZER_NR_OF_MOTORS 4
typedef uint32_t stabilizerStep_t;
typedef struct { float x, y, z; } Axis3f;
typedef struct { uint32_t timestamp; float x, y, z; } vec3_t;
typedef struct { uint32_t timestamp; float x, y, z, w; } quaternion_t;
typedef struct { Axis3f acc; Axis3f gyro; Axis3f mag; } sensorData_t;
typedef struct { quaternion_t attitudeQuaternion; vec3_t position; vec3_t velocity; vec3_t acc; } state_t;
typedef enum { controlModeLegacy = 0, controlModeForceTorque = 1, controlModeForce = 2 } control_mode_t;
typedef struct {
    control_mode_t controlMode;
    int16_t roll, pitch, yaw;
    float thrust;
    float normalizedForces[STABILIZER_NR_OF_MOTORS];
} control_t;
typedef enum { modeDisable = 0, modeAbs, modeVelocity } stab_mode_t;
typedef struct {
    uint32_t timestamp;
    vec3_t position;
    vec3_t velocity;
    struct { stab_mode_t x, y, z, roll, pitch, yaw, quat; } mode;
} setpoint_t;
#define RATE_1000_HZ 1000
#define RATE_500_HZ 500
#define RATE_MAIN_LOOP RATE_1000_HZ
#define RATE_DO_EXECUTE(RATE_HZ, TICK) ((TICK % (RATE_MAIN_LOOP / RATE_HZ)) == 0)
