#pragma once
#include <stdio.h>
#define DEBUG_PRINT(fmt, ...) printf("DEBUG " DEBUG_MODULE ": " fmt, ##__VA_ARGS__)
