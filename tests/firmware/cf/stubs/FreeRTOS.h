/* Host stand-in for the Crazyflie firmware header (only what rlp_controller.c uses). */
#pragma once
#include <stdint.h>
typedef uint32_t TickType_t;
#define configTICK_RATE_HZ 1000
#define M2T(X) ((TickType_t)(X))
#define T2M(X) ((uint32_t)(X))
