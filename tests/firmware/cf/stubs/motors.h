#pragma once
#include <stdint.h>
#define MOTOR_M1 0
#define MOTOR_M2 1
#define MOTOR_M3 2
#define MOTOR_M4 3
void motorsSetRatio(uint32_t id, uint16_t ratio);
