/* Per-board configuration (private to firmware/board/): which UART and timer drivers a
 * target uses, where they are, their interrupt numbers and clocks. SConscript.board defines
 * one BOARD_<TARGET> per build. Addresses and interrupt numbers are those of the parts'
 * reference manuals and application notes, as QEMU 7.2's machines model them (checked by
 * tests/device/test_cores.py, which streams to every target).
 *
 *   UART driver   BOARD_UART_CMSDK (Arm CMSDK APB UART), BOARD_UART_STM32 (STM32F4 USART),
 *                 BOARD_UART_NRF51 (nRF51 UART)
 *   timer         BOARD_TIMER_CMSDK (two CMSDK APB timers: free-running + wake-up),
 *                 BOARD_TIMER_NRF51 (nRF51 TIMER0, 32 bits: capture + compare) or
 *                 BOARD_TIMER_SYSTICK (the core's SysTick: 10 ms periods counted in software)
 *   BOARD_WAKE_IRQ the wake-up timer's interrupt (none with SysTick: its own exception)
 */
#ifndef BK_BOARD_CFG_H
#define BK_BOARD_CFG_H

#if defined(BOARD_MPS2_AN385) || defined(BOARD_MPS2_AN386) || defined(BOARD_MPS2_AN500)
/* MPS2 FPGA images AN385 (Cortex-M3), AN386 (Cortex-M4), AN500 (Cortex-M7): one map */
#define BOARD_UART_CMSDK 1
#define BOARD_TIMER_CMSDK 1
#define BOARD_UART_BASE 0x40004000u /* UART0 */
#define BOARD_UART_IRQ 0u           /* UART0 RX */
#define BOARD_UART_PCLK 25000000u
#define BOARD_TIMER0_BASE 0x40000000u
#define BOARD_TIMER1_BASE 0x40001000u
#define BOARD_WAKE_IRQ 9u /* TIMER1 */
#define BOARD_TICK_HZ 25000000u /* peripheral clock */
#define BOARD_NUM_IRQS 32u
#elif defined(BOARD_MPS2_AN505)
/* MPS2 AN505 (Cortex-M33, IoT Kit / SSE-200). The core starts in the Secure state with the
 * SAU off (every address Secure); the Secure aliases (bit 28 set) are used throughout. */
#define BOARD_UART_CMSDK 1
#define BOARD_TIMER_CMSDK 1
#define BOARD_UART_BASE 0x50200000u /* UART0, Secure alias of 0x40200000 */
#define BOARD_UART_IRQ 32u          /* UART0 RX (33 is TX) */
#define BOARD_UART_PCLK 20000000u
#define BOARD_TIMER0_BASE 0x50000000u
#define BOARD_TIMER1_BASE 0x50001000u
#define BOARD_WAKE_IRQ 4u /* TIMER1 */
#define BOARD_TICK_HZ 20000000u /* MAINCLK */
#define BOARD_NUM_IRQS 64u
#elif defined(BOARD_MPS3_AN547)
/* MPS3 AN547 (Cortex-M55, SSE-300): CMSDK UART0; the SSE-300's timers are not CMSDK
 * timers, so SysTick on the 32 MHz core clock keeps time. */
#define BOARD_UART_CMSDK 1
#define BOARD_TIMER_SYSTICK 1
#define BOARD_UART_BASE 0x59303000u /* UART0, Secure alias of 0x49303000 */
#define BOARD_UART_IRQ 33u          /* UART0 RX (34 is TX) */
#define BOARD_UART_PCLK 25000000u
#define BOARD_TICK_HZ 32000000u
#define BOARD_NUM_IRQS 64u
#elif defined(BOARD_NETDUINOPLUS2)
/* STM32F405RG (Netduino Plus 2): USART1, clock tree HSI 16 MHz -> PLL 168 MHz (AHB 168,
 * APB1 42, APB2 84 MHz), SysTick on the 168 MHz core clock. */
#define BOARD_UART_STM32 1
#define BOARD_TIMER_SYSTICK 1
#define BOARD_CLOCK_STM32F4 1
#define BOARD_UART_BASE 0x40011000u /* USART1 (APB2) */
#define BOARD_UART_IRQ 37u
#define BOARD_UART_PCLK 84000000u
#define BOARD_TICK_HZ 168000000u
#define BOARD_NUM_IRQS 82u
#elif defined(BOARD_MICROBIT)
/* BBC micro:bit v1, nRF51822 (Cortex-M0, 16 MHz): UART0; TIMER0 in 32-bit mode at 16 MHz
 * keeps time (the nRF51 has no SysTick). */
#define BOARD_UART_NRF51 1
#define BOARD_TIMER_NRF51 1
#define BOARD_UART_BASE 0x40002000u
#define BOARD_UART_IRQ 2u
#define BOARD_TIMER0_BASE 0x40008000u
#define BOARD_WAKE_IRQ 8u /* TIMER0 */
#define BOARD_TICK_HZ 16000000u
#define BOARD_NUM_IRQS 32u
#else
#error "no BOARD_<TARGET> defined (firmware/SConscript.board sets it)"
#endif

#endif
