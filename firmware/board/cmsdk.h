/* Register map of the Arm CMSDK peripherals used by the board layer (private to
 * firmware/board/): the APB UART and the APB timers (Arm DDI0479, CMSDK TRM). Their base
 * addresses and interrupt numbers differ per FPGA image and come from board_cfg.h. */
#ifndef BK_CMSDK_H
#define BK_CMSDK_H

#include <stdint.h>

#include "board_cfg.h"

#define REG32(addr) (*(volatile uint32_t *)(addr))

#if defined(BOARD_UART_CMSDK)
/* CMSDK APB UART */
#define UART0_BASE BOARD_UART_BASE
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
#endif

#if defined(BOARD_TIMER_CMSDK)
/* CMSDK APB timers: 32-bit down counters on the peripheral clock (BOARD_TICK_HZ) */
#define TIMER0_BASE BOARD_TIMER0_BASE
#define TIMER1_BASE BOARD_TIMER1_BASE
#define TIMER1_IRQ BOARD_WAKE_IRQ
#define TIMER_CTRL(b) REG32((b) + 0x00u)
#define TIMER_VALUE(b) REG32((b) + 0x04u)
#define TIMER_RELOAD(b) REG32((b) + 0x08u)
#define TIMER_INTCLEAR(b) REG32((b) + 0x0Cu)
#define TIMER_CTRL_EN (1u << 0)
#define TIMER_CTRL_IRQEN (1u << 3)
#endif

/* Cortex-M system control */
#define SCB_CPACR REG32(0xE000ED88u) /* CP10/CP11 full access: bits 20..23 */

#endif
