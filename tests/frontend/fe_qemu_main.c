/* The front-end on an emulated Cortex-M (tests/frontend/test_frontend_qemu.py): frames from
 * a counter hash (the test recomputes them with numpy), features out as hex lines over
 * semihosting. Self-contained: its own vector table and reset, no board code, so it tests
 * firmware/frontend.c as the M4 (DSP path) or the M3 (portable path) compiles it. The
 * test writes fe_qemu_params.c (N_PARAMS parameter sets in `params`, frame counts in
 * `n_frames_of`). */
#include <stdint.h>
#include <string.h>

#include "frontend.h"

extern const bk_fe_params_t params[];
extern const unsigned n_params;
extern const unsigned n_frames_of[];
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

static int semihost(int op, const void *arg) {
    register int r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static uint32_t mix(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* Frame f of the test signal (keep in step with frame_signal in the test). */
static void make_frame(uint32_t f, unsigned n, int16_t *x) {
    const uint32_t s = mix(f ^ 0xA5A5A5A5u);
    for (unsigned i = 0; i < n; i++) {
        const uint32_t h = mix((f << 16) + i);
        int32_t v;
        switch (f % 7u) {
        case 0: v = (int16_t)(h & 0xFFFFu); break;                  /* full-scale noise */
        case 1: v = (int32_t)(int16_t)(h & 0xFFFFu) >> (s % 15u); break; /* any level */
        case 2: v = ((i * (1u + s % 1024u)) >> 8) & 1u ? 32767 : -32768; break; /* square */
        case 3: v = (h & 1u) ? 32767 : -32768; break;                 /* full-scale signs */
        case 4: v = (int32_t)(s % 6u) * 13107 - 32768; break;          /* constant */
        case 5: v = (int32_t)(h % 7u) - 3; break;                      /* near silence */
        default: v = (h % 10u == 0u) ? 0 : (((i * (1u + s % 512u)) >> 7) & 1u ? 32767 : -32767);
        }
        x[i] = (int16_t)v;
    }
}

static bk_fe_work_t work;
static int16_t frame[BK_FE_MAX_FRAME];
static char line[2 * 64 + 2];

int main(void) {
    static const char hexd[] = "0123456789abcdef";
    for (unsigned k = 0; k < n_params; k++) {
        const bk_fe_params_t *p = &params[k];
        for (uint32_t f = 0; f < n_frames_of[k]; f++) {
            int8_t out[64];
            make_frame(f, p->frame_len, frame);
            bk_fe_frame(p, frame, out, &work);
            unsigned j = 0;
            for (unsigned m = 0; m < p->n_mels; m++) {
                line[j++] = hexd[((uint8_t)out[m]) >> 4];
                line[j++] = hexd[((uint8_t)out[m]) & 15u];
            }
            line[j++] = '\n';
            line[j] = 0;
            semihost(0x04, line); /* SYS_WRITE0 */
        }
        /* frames of this set that took the reference path */
        uint32_t fb = bk_fe_fallbacks();
        char *q = line;
        memcpy(q, "fallbacks ", 10);
        q += 10;
        char digits[10];
        unsigned nd = 0;
        do {
            digits[nd++] = (char)('0' + fb % 10u);
            fb /= 10u;
        } while (fb);
        while (nd) *q++ = digits[--nd];
        *q++ = '\n';
        *q = 0;
        semihost(0x04, line);
    }
    return 0;
}

void Reset_Handler(void) {
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0u;
    main();
    static const uint32_t exit_block[2] = {0x20026u, 0u}; /* ApplicationExit, status 0 */
    semihost(0x20, exit_block);                           /* SYS_EXIT_EXTENDED */
    for (;;) {
    }
}

static void Fault_Handler(void) {
    static const uint32_t exit_block[2] = {0x20026u, 3u}; /* ApplicationExit, status 3 */
    semihost(0x20, exit_block);
    for (;;) {
    }
}

__attribute__((section(".vectors"), used)) static const void *const vectors[16] = {
    &_estack,      Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler,
};
