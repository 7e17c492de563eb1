/* Register map of the MPS2 CMSDK peripherals and the Cortex-M system block used by the
 * board layer (private to firmware/board/). Addresses and bits: Arm DDI0479 (CMSDK TRM),
 * AN385/AN386, and docs/FIRMWARE.md. */
#ifndef BK_CMSDK_H
#define BK_CMSDK_H

#include <stdint.h>

#define REG32(addr) (*(volatile uint32_t *)(addr))

/* CMSDK APB UART0 */
#define UART0_BASE 0x40004000u
#define UART0_DATA REG32(UART0_BASE + 0x00u)
#define UART0_STATE REG32(UART0_BASE + 0x04u)
#define UART0_CTRL REG32(UART0_BASE + 0x08u)
#define UART0_INTSTATUS REG32(UART0_BASE + 0x0Cu) /* read: status; write 1: clear */
#define UART0_BAUDDIV REG32(UART0_BASE + 0x10u)
#define UART_STATE_TXFULL (1u << 0)
#define UART_STATE_RXFULL (1u << 1)
#define UART_STATE_RXOVERRUN (1u << 3)
#define UART_CTRL_TXEN (1u << 0)
#define UART_CTRL_RXEN (1u << 1)
#define UART_CTRL_RXINTEN (1u << 3)
#define UART_INT_RX (1u << 1)
#define UART_INT_RXO (1u << 3)
#define UART0_RX_IRQ 0u

/* CMSDK APB timers: 32-bit down counters on the 25 MHz peripheral clock */
#define TIMER0_BASE 0x40000000u
#define TIMER1_BASE 0x40001000u
#define TIMER_CTRL(b) REG32((b) + 0x00u)
#define TIMER_VALUE(b) REG32((b) + 0x04u)
#define TIMER_RELOAD(b) REG32((b) + 0x08u)
#define TIMER_INTCLEAR(b) REG32((b) + 0x0Cu)
#define TIMER_CTRL_EN (1u << 0)
#define TIMER_CTRL_IRQEN (1u << 3)
#define TIMER1_IRQ 9u

/* Cortex-M system control */
#define NVIC_ISER0 REG32(0xE000E100u)
#define NVIC_ICPR0 REG32(0xE000E280u)
#define SCB_CPACR REG32(0xE000ED88u) /* CP10/CP11 full access: bits 20..23 */

#endif
