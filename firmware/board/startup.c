/* Reset and vector table for Cortex-M3/M4 (MPS2 AN385/AN386, 32 external interrupts). */
#include <stdint.h>

#include "board.h"
#include "cmsdk.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;

#define STACK_PAINT 0xA5A5A5A5u
extern int main(void);

void Reset_Handler(void);
void UART0RX_Handler(void);
void TIMER1_Handler(void);

/* A fault or an unexpected interrupt: stop with a distinct status, so the host sees the
 * port go away (and QEMU's exit status says why) instead of a silent hang. */
static void Fault_Handler(void) { board_exit(3); }
static void Unexpected_Handler(void) { board_exit(4); }

typedef void (*vector_t)(void);

__attribute__((section(".vectors"), used)) static const vector_t vectors[16 + 32] = {
    (vector_t)(uintptr_t)&_estack,
    Reset_Handler,
    Fault_Handler,       /* NMI */
    Fault_Handler,       /* HardFault */
    Fault_Handler,       /* MemManage */
    Fault_Handler,       /* BusFault */
    Fault_Handler,       /* UsageFault */
    0, 0, 0, 0,
    Unexpected_Handler,  /* SVCall */
    Unexpected_Handler,  /* DebugMonitor */
    0,
    Unexpected_Handler,  /* PendSV */
    Unexpected_Handler,  /* SysTick */
    [16 + UART0_RX_IRQ] = UART0RX_Handler,
    [16 + 1] = Unexpected_Handler, [16 + 2] = Unexpected_Handler, [16 + 3] = Unexpected_Handler,
    [16 + 4] = Unexpected_Handler, [16 + 5] = Unexpected_Handler, [16 + 6] = Unexpected_Handler,
    [16 + 7] = Unexpected_Handler, [16 + 8] = Unexpected_Handler,
    [16 + TIMER1_IRQ] = TIMER1_Handler,
    [16 + 10] = Unexpected_Handler, [16 + 11] = Unexpected_Handler, [16 + 12] = Unexpected_Handler,
    [16 + 13] = Unexpected_Handler, [16 + 14] = Unexpected_Handler, [16 + 15] = Unexpected_Handler,
    [16 + 16] = Unexpected_Handler, [16 + 17] = Unexpected_Handler, [16 + 18] = Unexpected_Handler,
    [16 + 19] = Unexpected_Handler, [16 + 20] = Unexpected_Handler, [16 + 21] = Unexpected_Handler,
    [16 + 22] = Unexpected_Handler, [16 + 23] = Unexpected_Handler, [16 + 24] = Unexpected_Handler,
    [16 + 25] = Unexpected_Handler, [16 + 26] = Unexpected_Handler, [16 + 27] = Unexpected_Handler,
    [16 + 28] = Unexpected_Handler, [16 + 29] = Unexpected_Handler, [16 + 30] = Unexpected_Handler,
    [16 + 31] = Unexpected_Handler,
};

uint32_t board_stack_used(void) {
    const uint32_t *p = &_sstack;
    while (p < &_estack && *p == STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}

uint32_t board_stack_size(void) { return (uint32_t)((uintptr_t)&_estack - (uintptr_t)&_sstack); }

void Reset_Handler(void) {
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0u;
    /* Paint the stack below this function's frame, for board_stack_used(). */
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = &_sstack; p < sp - 16; p++) *p = STACK_PAINT;
#if defined(__ARM_FP)
    /* Cortex-M4F: grant CP10/CP11 (the FPU) full access before any FP instruction. */
    SCB_CPACR |= 0xFu << 20;
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    board_exit(main());
}
