/*
 * cf_glue_sim.c - runs firmware/crazyflie/src/rlp_controller.c on the host against stand-in firmware
 * headers (stubs/): a hovering Crazyflie, setpoints streamed at 100 Hz for a while, then none.
 * Prints one line per stabilizer tick: "tick mode f1 f2 f3 f4" (mode P = stock PID, F = policy forces).
 */
#include <stdio.h>
#include <string.h>

#include "controller.h"
#include "controller_pid.h"
#include "motors.h"
#include "task.h"

static TickType_t now;
static int pid_calls;

TickType_t xTaskGetTickCount(void) { return now; }
void vTaskDelay(TickType_t ticks) { now += ticks; }
void controllerPidInit(void) {}
bool controllerPidTest(void) { return true; }
void controllerPid(control_t *control, const setpoint_t *setpoint, const sensorData_t *sensors,
                   const state_t *state, const stabilizerStep_t stabilizerStep)
{
    (void)setpoint; (void)sensors; (void)state; (void)stabilizerStep;
    control->thrust = 1234.0f;
    pid_calls++;
}
void motorsSetRatio(uint32_t id, uint16_t ratio) { (void)id; (void)ratio; }

int main(void)
{
    control_t control;
    setpoint_t sp;
    sensorData_t sensors;
    state_t state;
    uint32_t tick, first = 100u, last = 400u;
    int test;
    memset(&control, 0, sizeof control);
    memset(&sp, 0, sizeof sp);
    memset(&sensors, 0, sizeof sensors);
    memset(&state, 0, sizeof state);
    state.attitudeQuaternion.w = 1.0f;
    state.position.z = 0.5f;
    sp.mode.x = sp.mode.y = sp.mode.z = modeAbs;
    sp.position.z = 0.5f;
    controllerOutOfTreeInit();
    test = controllerOutOfTreeTest();
    printf("selftest %d\n", test);
    for (tick = 1; tick <= 1000u; tick++) {
        now = tick;
        if (tick >= first && tick < last && tick % 10u == 0u) {
            sp.timestamp = tick; /* commanderSetSetpoint() stamps arrivals with the tick count */
        }
        control.controlMode = controlModeLegacy;
        controllerOutOfTree(&control, &sp, &sensors, &state, tick);
        printf("%u %c %.9g %.9g %.9g %.9g\n", (unsigned)tick, control.controlMode == controlModeForce ? 'F' : 'P',
               (double)control.normalizedForces[0], (double)control.normalizedForces[1],
               (double)control.normalizedForces[2], (double)control.normalizedForces[3]);
    }
    printf("pid_calls %d\n", pid_calls);
    return 0;
}
