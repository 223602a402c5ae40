/* Host stand-in: parameter tables become (unused) address lists so that the addresses are type-checked. */
#pragma once
#include <stdint.h>
#define PARAM_UINT8 1
#define PARAM_UINT16 2
#define PARAM_UINT32 3
#define PARAM_FLOAT 4
#define PARAM_GROUP_START(name) static const void *const param_group_##name[] __attribute__((unused)) = {
#define PARAM_ADD(type, name, addr) (const void *)(addr),
#define PARAM_GROUP_STOP(name) 0};
