#pragma once
#include <stdint.h>
#define LOG_UINT8 1
#define LOG_UINT16 2
#define LOG_FLOAT 3
#define LOG_GROUP_START(name) static const void *const log_group_##name[] __attribute__((unused)) = {
#define LOG_ADD(type, name, addr) (const void *)(addr),
#define LOG_GROUP_STOP(name) 0};
