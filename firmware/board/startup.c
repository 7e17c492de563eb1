/* Reset and vector table for every target: Armv6-M (Cortex-M0), Armv7-M (M3, M4, M7) and
 * Armv8-M Mainline (M33, M55); BOARD_NUM_IRQS external interrupts, the UART's and the
 * wake-up timer's wired to board.c (board_cfg.h names them). */
#include <stdint.h>

#include "board.h"
#include "cmsdk.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;

#define STACK_PAINT 0xA5A5A5A5u
extern int main(void);

void Reset_Handler(void);
void Board_UART_Handler(void);
#if defined(BOARD_WAKE_IRQ)
void Board_Timer_Handler(void);
#define SYSTICK_VECTOR Unexpected_Handler
#else
void SysTick_Handler(void);
#define SYSTICK_VECTOR SysTick_Handler
#endif

/* A fault or an unexpected interrupt: stop with a distinct status, so the host sees the
 * port go away (and QEMU's exit status says why) instead of a silent hang. */
static void Fault_Handler(void) { board_exit(3); }
static void Unexpected_Handler(void) { board_exit(4); }

typedef void (*vector_t)(void);

/* Every external interrupt defaults to Unexpected_Handler; the two the board uses are
 * then overridden (a designated range, then single entries: GCC's override is exact). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
__attribute__((section(".vectors"), used)) static const vector_t vectors[16 + BOARD_NUM_IRQS] = {
    (vector_t)(uintptr_t)&_estack,
    Reset_Handler,
    Fault_Handler,       /* NMI */
    Fault_Handler,       /* HardFault */
    Fault_Handler,       /* MemManage */
    Fault_Handler,       /* BusFault */
    Fault_Handler,       /* UsageFault */
    Fault_Handler,       /* SecureFault (Armv8-M) */
    0, 0, 0,
    Unexpected_Handler,  /* SVCall */
    Unexpected_Handler,  /* DebugMonitor */
    0,
    Unexpected_Handler,  /* PendSV */
    SYSTICK_VECTOR,      /* SysTick */
    [16 ... 16 + BOARD_NUM_IRQS - 1] = Unexpected_Handler,
    [16 + BOARD_UART_IRQ] = Board_UART_Handler,
#if defined(BOARD_WAKE_IRQ)
    [16 + BOARD_WAKE_IRQ] = Board_Timer_Handler,
#endif
};
#pragma GCC diagnostic pop

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
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* Cores with an FPU (or M-profile vector extension): grant CP10/CP11 full access
     * before any FP instruction. */
    SCB_CPACR |= 0xFu << 20;
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    board_exit(main());
}
