/* Board support API: everything the application needs from the hardware, and nothing
 * more. Registers stay inside firmware/board/; app code includes only this header.
 *
 * Implemented for the Arm MPS2 boards as QEMU emulates them (mps2-an386: Cortex-M4F,
 * mps2-an385: Cortex-M3): CMSDK UART0 with an RX interrupt into a ring buffer, TIMER0
 * as a free-running tick counter, TIMER1 for bounded sleeps, semihosting exit.
 */
#ifndef BK_BOARD_H
#define BK_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* TIMER0 counts the 25 MHz peripheral clock. Under QEMU -icount shift=0 one instruction
 * takes 1 ns of virtual time, so one tick is exactly 40 instructions. */
#define BOARD_TICK_HZ 25000000u

/* Bytes the UART receive ring holds; when it is full the driver stops reading the
 * UART, so the sender (QEMU, or a host honouring the advertised window) waits. */
#define BOARD_RX_RING 1024u

void board_init(void);

/* "mps2-an386" or "mps2-an385" */
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
