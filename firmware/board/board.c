/* Board layer for every target (board.h); the part-specific drivers are the hw_* inline
 * functions below, chosen by board_cfg.h. The receive path (interrupt -> ring, flow
 * control by not reading, board_wait) is the same on every part. */
#include "board.h"

#include "cmsdk.h"

#ifndef BOARD_NAME
#define BOARD_NAME "board"
#endif

/* ---- NVIC and SysTick (Armv6-M / Armv7-M / Armv8-M system control space) ------------ */
#define NVIC_ISER(n) REG32(0xE000E100u + 4u * (n))
#define NVIC_ICER(n) REG32(0xE000E180u + 4u * (n))
#define NVIC_ICPR(n) REG32(0xE000E280u + 4u * (n))
#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define SCB_ICSR REG32(0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)

static inline void irq_disable(void) { __asm volatile("cpsid i" ::: "memory"); }
static inline void irq_enable(void) { __asm volatile("cpsie i" ::: "memory"); }
static void nvic_enable(uint32_t irq) {
    NVIC_ICPR(irq / 32u) = 1u << (irq % 32u);
    NVIC_ISER(irq / 32u) = 1u << (irq % 32u);
}

/* ---- UART drivers -------------------------------------------------------------------
 * hw_uart_init, hw_rx_ready (a byte waits), hw_rx_take (read it), hw_rx_overrun (a lost
 * byte was flagged; clears the flag), hw_rx_ack (start of the RX interrupt),
 * hw_rx_pause / hw_rx_resume (the ring is full / has room: parts whose RX interrupt is a
 * level that stays up while a byte waits mask it meanwhile), hw_tx. */
#if defined(BOARD_UART_CMSDK)
/* Arm CMSDK APB UART (DDI0479): one byte of receive buffer, no FIFO. BAUDDIV = the APB
 * clock / baud rate, at least 16: 217 for 115200 baud at the MPS2's 25 MHz. QEMU does not
 * pace the line. RX interrupt: a pulse per byte, latched in INTSTATUS. */
#define UART_BAUDDIV ((BOARD_UART_PCLK + 57600u) / 115200u)
_Static_assert(UART_BAUDDIV >= 16u, "CMSDK UART: BAUDDIV must be at least 16");
static inline void hw_uart_init(void) {
    UART0_CTRL = 0u;
    UART0_BAUDDIV = UART_BAUDDIV;
    UART0_INTSTATUS = UART_INT_RX | UART_INT_RXO;
    UART0_CTRL = UART_CTRL_TXEN | UART_CTRL_RXEN | UART_CTRL_RXINTEN;
}
static inline int hw_rx_overrun(uint32_t state) {
    if (!(state & UART_STATE_RXOVERRUN)) return 0;
    UART0_INTSTATUS = UART_INT_RXO; /* also clears the STATE bit */
    return 1;
}
static inline uint32_t hw_rx_state(void) { return UART0_STATE; }
static inline int hw_rx_ready(uint32_t state) { return (state & UART_STATE_RXFULL) != 0u; }
static inline uint8_t hw_rx_take(void) { return (uint8_t)UART0_DATA; }
/* Clear first, then read: a byte that lands after the read raises the interrupt again
 * instead of being left behind without one. */
static inline void hw_rx_ack(void) { UART0_INTSTATUS = UART_INT_RX; }
static inline void hw_rx_pause(void) {}
static inline void hw_rx_resume(void) {}
static inline void hw_tx(uint8_t b) {
    while (UART0_STATE & UART_STATE_TXFULL) {
    }
    UART0_DATA = b;
}
#elif defined(BOARD_UART_STM32)
/* STM32F4 USART (RM0090 section 30): SR, DR, BRR, CR1. RXNE is cleared by reading DR; an
 * overrun (ORE) by reading SR then DR. The RXNE interrupt is a level that stays up while
 * a byte waits: masked in the NVIC while the ring is full (QEMU 7.2's USART does not
 * lower its line when RXNEIE is cleared, so the NVIC is the mask that works on both). */
#define USART_SR REG32(BOARD_UART_BASE + 0x00u)
#define USART_DR REG32(BOARD_UART_BASE + 0x04u)
#define USART_BRR REG32(BOARD_UART_BASE + 0x08u)
#define USART_CR1 REG32(BOARD_UART_BASE + 0x0Cu)
#define USART_SR_ORE (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_UE (1u << 13)
#define GPIOA_MODER REG32(0x40020000u)
#define GPIOA_AFRH REG32(0x40020024u)
static inline void hw_uart_init(void) {
    /* PA9 = USART1_TX, PA10 = USART1_RX: alternate function 7 */
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 18)) | (0xAu << 18);
    GPIOA_AFRH = (GPIOA_AFRH & ~(0xFFu << 4)) | (0x77u << 4);
    /* 115200 baud, 16x oversampling: BRR = PCLK / baud (mantissa.fraction in 1/16) */
    USART_BRR = (BOARD_UART_PCLK + 57600u) / 115200u;
    USART_CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
}
static inline uint32_t hw_rx_state(void) { return USART_SR; }
static inline int hw_rx_overrun(uint32_t state) { return (state & USART_SR_ORE) != 0u; }
static inline int hw_rx_ready(uint32_t state) { return (state & USART_SR_RXNE) != 0u; }
static inline uint8_t hw_rx_take(void) { return (uint8_t)USART_DR; }
static inline void hw_rx_ack(void) {}
static inline void hw_rx_pause(void) { NVIC_ICER(BOARD_UART_IRQ / 32u) = 1u << (BOARD_UART_IRQ % 32u); }
static inline void hw_rx_resume(void) { NVIC_ISER(BOARD_UART_IRQ / 32u) = 1u << (BOARD_UART_IRQ % 32u); }
static inline void hw_tx(uint8_t b) {
    while (!(USART_SR & USART_SR_TXE)) {
    }
    USART_DR = b;
}
#elif defined(BOARD_UART_NRF51)
/* nRF51 UART (nRF51 Series Reference Manual, UART): tasks, events, a 6-byte RX FIFO.
 * EVENTS_RXDRDY is set for each byte that reaches RXD; it is cleared before RXD is read,
 * so the next byte sets it again. The interrupt is a level on the event: masked while the
 * ring is full. */
#define NRF_UART_STARTRX REG32(BOARD_UART_BASE + 0x000u)
#define NRF_UART_STARTTX REG32(BOARD_UART_BASE + 0x008u)
#define NRF_UART_RXDRDY REG32(BOARD_UART_BASE + 0x108u)
#define NRF_UART_TXDRDY REG32(BOARD_UART_BASE + 0x11Cu)
#define NRF_UART_ERROR REG32(BOARD_UART_BASE + 0x124u)
#define NRF_UART_INTENSET REG32(BOARD_UART_BASE + 0x304u)
#define NRF_UART_INTENCLR REG32(BOARD_UART_BASE + 0x308u)
#define NRF_UART_ERRORSRC REG32(BOARD_UART_BASE + 0x480u)
#define NRF_UART_ENABLE REG32(BOARD_UART_BASE + 0x500u)
#define NRF_UART_PSELTXD REG32(BOARD_UART_BASE + 0x50Cu)
#define NRF_UART_PSELRXD REG32(BOARD_UART_BASE + 0x514u)
#define NRF_UART_RXD REG32(BOARD_UART_BASE + 0x518u)
#define NRF_UART_TXD REG32(BOARD_UART_BASE + 0x51Cu)
#define NRF_UART_BAUDRATE REG32(BOARD_UART_BASE + 0x524u)
#define NRF_UART_INT_RXDRDY (1u << 2)
#define NRF_UART_ERRORSRC_OVERRUN 1u
static inline void hw_uart_init(void) {
    NRF_UART_PSELTXD = 24u; /* micro:bit v1 USB serial: TX P0.24, RX P0.25 */
    NRF_UART_PSELRXD = 25u;
    NRF_UART_BAUDRATE = 0x01D7E000u; /* 115200 */
    NRF_UART_ENABLE = 4u;
    NRF_UART_RXDRDY = 0u;
    NRF_UART_TXDRDY = 0u;
    NRF_UART_INTENSET = NRF_UART_INT_RXDRDY;
    NRF_UART_STARTTX = 1u;
    NRF_UART_STARTRX = 1u;
}
static inline uint32_t hw_rx_state(void) { return NRF_UART_RXDRDY; }
static inline int hw_rx_overrun(uint32_t state) {
    (void)state;
    if (!(NRF_UART_ERRORSRC & NRF_UART_ERRORSRC_OVERRUN)) return 0;
    NRF_UART_ERRORSRC = NRF_UART_ERRORSRC_OVERRUN; /* write 1 to clear */
    NRF_UART_ERROR = 0u;
    return 1;
}
static inline int hw_rx_ready(uint32_t state) { return state != 0u; }
static inline uint8_t hw_rx_take(void) {
    NRF_UART_RXDRDY = 0u;
    return (uint8_t)NRF_UART_RXD;
}
static inline void hw_rx_ack(void) {}
static inline void hw_rx_pause(void) { NRF_UART_INTENCLR = NRF_UART_INT_RXDRDY; }
static inline void hw_rx_resume(void) { NRF_UART_INTENSET = NRF_UART_INT_RXDRDY; }
static inline void hw_tx(uint8_t b) {
    NRF_UART_TXD = b;
    while (!NRF_UART_TXDRDY) {
    }
    NRF_UART_TXDRDY = 0u;
}
#endif

/* ---- clock tree ------------------------------------------------------------------- */
#if defined(BOARD_CLOCK_STM32F4)
/* RM0090 section 6: HSI 16 MHz -> PLL: /M=16 (1 MHz), xN=336, /P=2 -> 168 MHz SYSCLK,
 * /Q=7 -> 48 MHz; AHB /1, APB1 /4 (42 MHz), APB2 /2 (84 MHz); flash 5 wait states with
 * the caches and prefetch on. The waits for the PLL and the switch are bounded, so a part
 * (or an emulator) that never reports ready still starts. */
#define RCC_CR REG32(0x40023800u)
#define RCC_PLLCFGR REG32(0x40023804u)
#define RCC_CFGR REG32(0x40023808u)
#define RCC_AHB1ENR REG32(0x40023830u)
#define RCC_APB2ENR REG32(0x40023844u)
#define FLASH_ACR REG32(0x40023C00u)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
static void clock_init(void) {
    FLASH_ACR = (1u << 8) | (1u << 9) | (1u << 10) | 5u; /* PRFTEN, ICEN, DCEN, 5 WS */
    /* M = 16, N = 336, P = 2 (0), source HSI (bit 22 clear), Q = 7; reserved bits kept */
    RCC_PLLCFGR = (RCC_PLLCFGR & 0xF0BC8000u) | 16u | (336u << 6) | (7u << 24);
    RCC_CR |= RCC_CR_PLLON;
    for (uint32_t i = 0; i < 100000u && !(RCC_CR & RCC_CR_PLLRDY); i++) {
    }
    RCC_CFGR = (5u << 10) | (4u << 13);      /* APB1 /4, APB2 /2 before the switch */
    RCC_CFGR = (5u << 10) | (4u << 13) | 2u; /* SW = PLL */
    for (uint32_t i = 0; i < 100000u && ((RCC_CFGR >> 2) & 3u) != 2u; i++) {
    }
    RCC_AHB1ENR |= 1u;       /* GPIOA */
    RCC_APB2ENR |= 1u << 4;  /* USART1 */
}
#else
static inline void clock_init(void) {}
#endif

#define RING_MASK (BOARD_RX_RING - 1u)
_Static_assert((BOARD_RX_RING & RING_MASK) == 0u, "BOARD_RX_RING must be a power of two");

/* Single producer (the RX interrupt, or board_uart_read with interrupts off) and single
 * consumer (board_uart_read): head and tail only ever grow (mod 2^16). */
static uint8_t rx_ring[BOARD_RX_RING];
static volatile uint16_t rx_head;
static volatile uint16_t rx_tail;
static volatile uint8_t rx_paused; /* a byte waits in the UART because the ring was full */
static volatile uint8_t wake_fired;
static uint32_t wake_period; /* wake-up period in ticks while armed, 0 when stopped */
static uint32_t idle_ticks;
static board_rx_counts_t rx_counts;

/* ---- timers -------------------------------------------------------------------------
 * hw_timer_init, board_ticks, hw_wake_arm(period): a wake-up every `period` ticks
 * (0: none), which sets wake_fired (Board_Timer_Handler on BOARD_WAKE_IRQ, or SysTick). */
#if defined(BOARD_TIMER_CMSDK)
/* TIMER0 runs free from 0xFFFFFFFF; TIMER1 is periodic while wake-ups are wanted. */
static inline void hw_timer_init(void) {
    TIMER_CTRL(TIMER0_BASE) = 0u;
    TIMER_RELOAD(TIMER0_BASE) = 0xFFFFFFFFu;
    TIMER_VALUE(TIMER0_BASE) = 0xFFFFFFFFu;
    TIMER_CTRL(TIMER0_BASE) = TIMER_CTRL_EN;
    TIMER_CTRL(TIMER1_BASE) = 0u;
    TIMER_INTCLEAR(TIMER1_BASE) = 1u;
    nvic_enable(TIMER1_IRQ);
}
uint32_t board_ticks(void) { return 0xFFFFFFFFu - TIMER_VALUE(TIMER0_BASE); }
static inline void hw_wake_arm(uint32_t period) {
    TIMER_CTRL(TIMER1_BASE) = 0u;
    TIMER_INTCLEAR(TIMER1_BASE) = 1u;
    if (period) {
        TIMER_RELOAD(TIMER1_BASE) = period;
        TIMER_VALUE(TIMER1_BASE) = period;
        TIMER_CTRL(TIMER1_BASE) = TIMER_CTRL_EN | TIMER_CTRL_IRQEN;
    }
}
void Board_Timer_Handler(void) {
    TIMER_INTCLEAR(TIMER1_BASE) = 1u; /* periodic: it keeps running while armed */
    wake_fired = 1;
}
#elif defined(BOARD_TIMER_NRF51)
/* nRF51 TIMER0 (nRF51 Series Reference Manual, TIMER): 32-bit, prescaler 0 = 16 MHz. The
 * count is read by a capture task into CC[0] (thread mode only; the interrupt uses CC[2]);
 * CC[1] is the wake-up compare, advanced by the period at each match. */
#define NRF_TIMER(off) REG32(BOARD_TIMER0_BASE + (off))
#define NRF_TIMER_START NRF_TIMER(0x000u)
#define NRF_TIMER_STOP NRF_TIMER(0x004u)
#define NRF_TIMER_CLEAR NRF_TIMER(0x00Cu)
#define NRF_TIMER_CAPTURE(n) NRF_TIMER(0x040u + 4u * (n))
#define NRF_TIMER_COMPARE(n) NRF_TIMER(0x140u + 4u * (n))
#define NRF_TIMER_INTENSET NRF_TIMER(0x304u)
#define NRF_TIMER_INTENCLR NRF_TIMER(0x308u)
#define NRF_TIMER_MODE NRF_TIMER(0x504u)
#define NRF_TIMER_BITMODE NRF_TIMER(0x508u)
#define NRF_TIMER_PRESCALER NRF_TIMER(0x510u)
#define NRF_TIMER_CC(n) NRF_TIMER(0x540u + 4u * (n))
#define NRF_TIMER_INT_COMPARE1 (1u << 17)
static inline void hw_timer_init(void) {
    NRF_TIMER_STOP = 1u;
    NRF_TIMER_MODE = 0u;      /* timer */
    NRF_TIMER_BITMODE = 3u;   /* 32 bits */
    NRF_TIMER_PRESCALER = 0u; /* 16 MHz */
    NRF_TIMER_INTENCLR = 0xFFFFFFFFu;
    NRF_TIMER_CLEAR = 1u;
    NRF_TIMER_START = 1u;
    nvic_enable(BOARD_WAKE_IRQ);
}
uint32_t board_ticks(void) {
    NRF_TIMER_CAPTURE(0) = 1u;
    return NRF_TIMER_CC(0);
}
static inline void hw_wake_arm(uint32_t period) {
    NRF_TIMER_INTENCLR = NRF_TIMER_INT_COMPARE1;
    NRF_TIMER_COMPARE(1) = 0u;
    if (period) {
        NRF_TIMER_CC(1) = board_ticks() + period;
        NRF_TIMER_INTENSET = NRF_TIMER_INT_COMPARE1;
    }
}
void Board_Timer_Handler(void) {
    NRF_TIMER_COMPARE(1) = 0u;
    NRF_TIMER_CAPTURE(2) = 1u;
    const uint32_t now = NRF_TIMER_CC(2);
    uint32_t next = NRF_TIMER_CC(1) + wake_period;
    if ((int32_t)(next - now) <= 0) next = now + wake_period; /* fell behind: from now */
    NRF_TIMER_CC(1) = next;
    wake_fired = 1;
}
#elif defined(BOARD_TIMER_SYSTICK)
/* SysTick on the core clock, wrapping every 2^24 ticks (0.1 s at 168 MHz, 0.52 s at
 * 32 MHz); its interrupt counts the wraps, so ticks = wraps * 2^24 + the count within the
 * current one. A wrap that happened while interrupts were masked (the interrupt pending,
 * the counter just reloaded) is counted by board_ticks itself. Wake-ups are deadlines
 * checked at each wrap, so one comes up to a wrap late (the link's only use is its 200 ms
 * receive timeout). The long period also keeps the core asleep: with 10 ms periods QEMU's
 * -icount accounting of the sleeps drifted from run to run (129 to 585 busy instructions
 * per received byte measured on mps3-an547; 121-122 with 2^24). */
#define SYSTICK_PERIOD (1u << 24)
static volatile uint32_t systick_periods;
static uint32_t wake_next;
static inline void hw_timer_init(void) {
    SYST_CSR = 0u;
    SYST_RVR = SYSTICK_PERIOD - 1u;
    SYST_CVR = 0u;
    SYST_CSR = 7u; /* ENABLE, TICKINT, CLKSOURCE = core clock */
}
uint32_t board_ticks(void) {
    uint32_t p, v, pend;
    do {
        p = systick_periods;
        v = SYST_CVR;
        pend = SCB_ICSR & ICSR_PENDSTSET;
    } while (p != systick_periods);
    if (pend && v >= SYSTICK_PERIOD / 2u) p++; /* wrapped before v was read */
    return p * SYSTICK_PERIOD + (SYSTICK_PERIOD - 1u - v);
}
static inline void hw_wake_arm(uint32_t period) { wake_next = board_ticks() + period; }
void SysTick_Handler(void) {
    systick_periods++;
    const uint32_t period = wake_period;
    if (period && (int32_t)(systick_periods * SYSTICK_PERIOD - wake_next) >= 0) {
        wake_fired = 1;
        wake_next = systick_periods * SYSTICK_PERIOD + period;
    }
}
#endif

const char *board_name(void) { return BOARD_NAME; }

/* Move bytes from the UART into the ring until it is empty or the ring is full. Runs in
 * the RX interrupt, or in thread mode with interrupts off. Leaving a byte in the UART
 * keeps it from accepting more (QEMU's models too, and the host keeps to its window on
 * hardware): that is the back-pressure that stops the host from overrunning us. */
static void rx_drain(void) {
    for (;;) {
        const uint32_t state = hw_rx_state();
        if (hw_rx_overrun(state)) rx_counts.overruns++;
        if (!hw_rx_ready(state)) {
            if (rx_paused) hw_rx_resume();
            rx_paused = 0;
            return;
        }
        if ((uint16_t)(rx_head - rx_tail) >= BOARD_RX_RING) {
            if (!rx_paused) {
                rx_counts.pauses++;
                hw_rx_pause();
            }
            rx_paused = 1;
            return;
        }
        rx_ring[rx_head & RING_MASK] = hw_rx_take();
        rx_head = (uint16_t)(rx_head + 1u);
        rx_counts.bytes++;
    }
}

void Board_UART_Handler(void) {
    hw_rx_ack();
    rx_drain();
}

void board_init(void) {
    clock_init();
    hw_uart_init();
    hw_timer_init();
    nvic_enable(BOARD_UART_IRQ);
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
    for (size_t i = 0; i < n; i++) hw_tx(src[i]);
}

void board_wait(size_t min_bytes, uint32_t max_ticks) {
    if (min_bytes < 1u) min_bytes = 1u;
    if (min_bytes > BOARD_RX_RING) min_bytes = BOARD_RX_RING;
    /* The wake-up runs periodically while wanted, so a wait costs no timer programming
     * per received byte; it is re-armed only when the period changes. */
    if (max_ticks != wake_period) {
        wake_period = 0u;
        hw_wake_arm(max_ticks);
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
