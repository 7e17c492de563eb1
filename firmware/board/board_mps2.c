/* Board layer for the MPS2 (AN385 / AN386) as emulated by QEMU. See board.h. */
#include "board.h"

#include "cmsdk.h"

#ifndef BOARD_NAME
#define BOARD_NAME "mps2"
#endif

/* UART clock 25 MHz; BAUDDIV must be >= 16. 217 gives 115200 baud on hardware; QEMU does
 * not pace the line, it passes bytes as fast as the guest reads them. */
#define UART_BAUDDIV 217u

#define RING_MASK (BOARD_RX_RING - 1u)
_Static_assert((BOARD_RX_RING & RING_MASK) == 0u, "BOARD_RX_RING must be a power of two");

/* Single producer (the RX interrupt, or board_uart_read with interrupts off) and single
 * consumer (board_uart_read): head and tail only ever grow (mod 2^16). */
static uint8_t rx_ring[BOARD_RX_RING];
static volatile uint16_t rx_head;
static volatile uint16_t rx_tail;
static volatile uint8_t rx_paused; /* a byte waits in UART0_DATA because the ring was full */
static volatile uint8_t wake_fired;
static uint32_t wake_period; /* TIMER1 reload while it runs, 0 when stopped */
static uint32_t idle_ticks;
static board_rx_counts_t rx_counts;

static inline void irq_disable(void) { __asm volatile("cpsid i" ::: "memory"); }
static inline void irq_enable(void) { __asm volatile("cpsie i" ::: "memory"); }

const char *board_name(void) { return BOARD_NAME; }

/* Move bytes from the UART into the ring until it is empty or the ring is full. Runs in
 * the RX interrupt, or in thread mode with interrupts off. Leaving a byte in DATA keeps
 * RXFULL set, and the UART (QEMU's model too) accepts nothing more until it is read:
 * that is the back-pressure that stops the host from overrunning us. */
static void rx_drain(void) {
    for (;;) {
        const uint32_t state = UART0_STATE;
        if (state & UART_STATE_RXOVERRUN) {
            rx_counts.overruns++;
            UART0_INTSTATUS = UART_INT_RXO; /* also clears the STATE bit */
        }
        if (!(state & UART_STATE_RXFULL)) {
            rx_paused = 0;
            return;
        }
        if ((uint16_t)(rx_head - rx_tail) >= BOARD_RX_RING) {
            if (!rx_paused) rx_counts.pauses++;
            rx_paused = 1;
            return;
        }
        rx_ring[rx_head & RING_MASK] = (uint8_t)UART0_DATA;
        rx_head = (uint16_t)(rx_head + 1u);
        rx_counts.bytes++;
    }
}

void UART0RX_Handler(void) {
    /* Clear first, then read: a byte that lands after the read raises the interrupt
     * again instead of being left behind without one. */
    UART0_INTSTATUS = UART_INT_RX;
    rx_drain();
}

void TIMER1_Handler(void) {
    TIMER_INTCLEAR(TIMER1_BASE) = 1u; /* periodic: it keeps running while armed */
    wake_fired = 1;
}

void board_init(void) {
    UART0_CTRL = 0u;
    UART0_BAUDDIV = UART_BAUDDIV;
    UART0_INTSTATUS = UART_INT_RX | UART_INT_RXO;
    UART0_CTRL = UART_CTRL_TXEN | UART_CTRL_RXEN | UART_CTRL_RXINTEN;

    TIMER_CTRL(TIMER0_BASE) = 0u;
    TIMER_RELOAD(TIMER0_BASE) = 0xFFFFFFFFu;
    TIMER_VALUE(TIMER0_BASE) = 0xFFFFFFFFu;
    TIMER_CTRL(TIMER0_BASE) = TIMER_CTRL_EN;
    TIMER_CTRL(TIMER1_BASE) = 0u;
    TIMER_INTCLEAR(TIMER1_BASE) = 1u;

    NVIC_ICPR0 = (1u << UART0_RX_IRQ) | (1u << TIMER1_IRQ);
    NVIC_ISER0 = (1u << UART0_RX_IRQ) | (1u << TIMER1_IRQ);
    irq_enable();
}

size_t board_uart_read(uint8_t *dst, size_t max) {
    size_t n = 0;
    uint16_t tail = rx_tail;
    const uint16_t head = rx_head;
    while (n < max && tail != head) {
        dst[n++] = rx_ring[tail & RING_MASK];
        tail = (uint16_t)(tail + 1u);
    }
    rx_tail = tail;
    if (rx_paused) { /* room again: take the waiting byte, which restarts the flow */
        irq_disable();
        rx_drain();
        irq_enable();
    }
    return n;
}

void board_uart_write(const uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        while (UART0_STATE & UART_STATE_TXFULL) {
        }
        UART0_DATA = src[i];
    }
}

void board_wait(size_t min_bytes, uint32_t max_ticks) {
    if (min_bytes < 1u) min_bytes = 1u;
    if (min_bytes > BOARD_RX_RING) min_bytes = BOARD_RX_RING;
    /* TIMER1 runs periodically while wake-ups are wanted, so a wait costs no timer
     * programming per received byte; it is reprogrammed only when the period changes. */
    if (max_ticks != wake_period) {
        TIMER_CTRL(TIMER1_BASE) = 0u;
        TIMER_INTCLEAR(TIMER1_BASE) = 1u;
        if (max_ticks) {
            TIMER_RELOAD(TIMER1_BASE) = max_ticks;
            TIMER_VALUE(TIMER1_BASE) = max_ticks;
            TIMER_CTRL(TIMER1_BASE) = TIMER_CTRL_EN | TIMER_CTRL_IRQEN;
        }
        wake_period = max_ticks;
    }
    /* With interrupts masked, WFI still wakes on a pending interrupt; the interrupt runs
     * when they are unmasked, then the condition is checked again with them masked, so
     * a byte that arrives between the check and the WFI cannot be slept through. */
    irq_disable();
    while ((uint16_t)(rx_head - rx_tail) < min_bytes && !rx_paused && !wake_fired) {
        const uint32_t t0 = board_ticks();
        __asm volatile("wfi" ::: "memory");
        idle_ticks += board_ticks() - t0;
        irq_enable(); /* the interrupt that woke us runs here */
        irq_disable();
    }
    wake_fired = 0;
    irq_enable();
}

uint32_t board_ticks(void) { return 0xFFFFFFFFu - TIMER_VALUE(TIMER0_BASE); }

uint32_t board_idle_ticks(void) { return idle_ticks; }

void board_rx_counts(board_rx_counts_t *out) {
    irq_disable();
    *out = rx_counts;
    irq_enable();
}

void board_exit(int status) {
    /* SYS_EXIT_EXTENDED (0x20): block {ADP_Stopped_ApplicationExit, status} */
    volatile uint32_t block[2] = {0x20026u, (uint32_t)status};
    register uint32_t r0 __asm("r0") = 0x20u;
    register volatile uint32_t *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
        __asm volatile("wfi");
    }
}
