/*
 * startup.c - minimal Cortex-M4F start-up for the STM32F405 (QEMU netduinoplus2 machine).
 *
 * Vector table at the start of flash (initial stack pointer, reset handler, fault handlers); the reset
 * handler enables the FPU (CPACR CP10/CP11 full access, then DSB/ISB, before the first VFP instruction),
 * copies .data from flash to RAM, zeroes .bss and enters newlib's semihosting crt0 (_start), which sets up
 * the semihosting handles and argv (QEMU -append) and calls main() and exit().
 */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern void _start(void);

void Reset_Handler(void);
void Default_Handler(void);

void Default_Handler(void)
{
    for (;;) {
    }
}

__attribute__((section(".isr_vector"), used)) const void *const rlp_vector_table[16] = {
    &_estack,        /* initial main stack pointer */
    Reset_Handler,   /* reset */
    Default_Handler, /* NMI */
    Default_Handler, /* hard fault */
    Default_Handler, /* memory management fault */
    Default_Handler, /* bus fault */
    Default_Handler, /* usage fault */
    0, 0, 0, 0,      /* reserved */
    Default_Handler, /* SVCall */
    Default_Handler, /* debug monitor */
    0,               /* reserved */
    Default_Handler, /* PendSV */
    Default_Handler  /* SysTick */
};

void Reset_Handler(void)
{
    volatile uint32_t *const cpacr = (volatile uint32_t *)0xE000ED88u;
    uint32_t *src = &_sidata, *dst;
    *cpacr |= 0xFu << 20; /* CP10, CP11: full access */
    __asm volatile("dsb\n\tisb" ::: "memory");
    for (dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0u;
    }
    _start();
    for (;;) {
    }
}
