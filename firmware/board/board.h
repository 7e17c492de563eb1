/* Board support API: everything the application needs from the hardware, and nothing
 * more. Registers stay inside firmware/board/; app code includes only this header.
 *
 * One implementation (board.c) with per-part drivers chosen by board_cfg.h: a UART with
 * an RX interrupt into a ring buffer (CMSDK UART on the MPS2/MPS3 images, USART1 on the
 * STM32F405, UART0 on the nRF51), a free-running tick counter and bounded sleeps (CMSDK
 * timers, the nRF51 TIMER0, or the core's SysTick), semihosting exit.
 */
#ifndef BK_BOARD_H
#define BK_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "board_cfg.h"

/* BOARD_TICK_HZ (board_cfg.h): the tick counter's clock, 25 MHz on the MPS2 images (CMSDK
 * TIMER0), 16 MHz on the nRF51 (TIMER0), the core clock where SysTick keeps time. Under
 * QEMU -icount shift=0 one instruction takes 1 ns of virtual time, so a tick is
 * 1e9 / BOARD_TICK_HZ instructions (40 on the MPS2 images). */

/* Bytes the UART receive ring holds; when it is full the driver stops reading the
 * UART, so the sender (QEMU, or a host honouring the advertised window) waits. */
#define BOARD_RX_RING 1024u

void board_init(void);

/* the target name, e.g. "mps2-an386" */
const char *board_name(void);

/* Up to max received bytes, without waiting. Returns the number copied. */
size_t board_uart_read(uint8_t *dst, size_t max);

/* Send n bytes; waits while the transmitter is busy. */
void board_uart_write(const uint8_t *src, size_t n);

/* Sleep until at least min_bytes received bytes wait (1 if 0 is given), the receive
 * ring is full, or a wake-up tick comes (every max_ticks; 0: none). Each byte still
 * raises its interrupt, but the caller only runs again when there is enough to do. The
 * wake-up timer keeps running between calls with the same max_ticks, so the first
 * wake-up may come sooner. */
void board_wait(size_t min_bytes, uint32_t max_ticks);

/* Free-running tick counter (wraps every 2^32 ticks, 171 s at 25 MHz). */
uint32_t board_ticks(void);

/* Ticks spent asleep in board_wait since reset (same clock and wrap as board_ticks):
 * busy time = elapsed - idle, everything included (interrupts, link, inference). */
uint32_t board_idle_ticks(void);

/* Deepest stack use since reset (bytes; the stack is painted at reset) and its size. */
uint32_t board_stack_used(void);
uint32_t board_stack_size(void);

/* Receive-side counters since reset. */
typedef struct {
    uint32_t bytes;     /* bytes taken from the UART */
    uint32_t pauses;    /* times the ring filled and reception paused */
    uint32_t overruns;  /* UART overrun flags seen (bytes lost in hardware) */
} board_rx_counts_t;
void board_rx_counts(board_rx_counts_t *out);

/* Stop the program: semihosting exit with this status (QEMU -semihosting exits with
 * it); on hardware without a debugger attached it stops in a loop. */
void board_exit(int status) __attribute__((noreturn));

#endif
