/* Population count of 32-bit words: the inner operation of every binary layer.
 *
 * Two variants, selected at compile time:
 *   default               portable SWAR (shifts, masks and adds; no multiply, no table)
 *   BK_POPCOUNT_BUILTIN=1 __builtin_popcount, for cores with a popcount instruction
 *                         (x86 with -mpopcnt, Armv8.1-M MVE ...). On Cortex-M3/M4 gcc
 *                         lowers it to a libgcc call, so the SWAR default is faster there.
 * Both return the same value for every input (tests/test_kernels.py).
 */
#ifndef BK_POPCOUNT_H
#define BK_POPCOUNT_H

#include <stdint.h>

/* SWAR: count bits in parallel in ever wider fields of the same word.
 *   step 1: x - ((x >> 1) & 0x5555...)   each 2-bit field holds its own count (0..2):
 *           for a field ab, ab - a = a + b.
 *   step 2: add neighbouring 2-bit fields -> 4-bit fields holding 0..4.
 *   step 3: add neighbouring 4-bit fields -> bytes holding 0..8 (no carry out of a byte).
 *   step 4: fold bytes: x + (x >> 8) puts b0 + b1 in byte 0 and b2 + b3 in byte 2
 *           (<= 16 each); x + (x >> 16) adds them into byte 0 (<= 32 < 64), the
 *           other bytes hold partial sums that the final mask drops.
 * The usual (x * 0x01010101) >> 24 finish is replaced by the two shift-adds of step 4:
 * no multiplier in the hot loop. */
static inline uint32_t bk_popcount32_swar(uint32_t x) {
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    x = x + (x >> 8);
    x = x + (x >> 16);
    return x & 0x3Fu;
}

#if defined(BK_POPCOUNT_BUILTIN) && BK_POPCOUNT_BUILTIN
static inline uint32_t bk_popcount32(uint32_t x) { return (uint32_t)__builtin_popcount(x); }
#else
static inline uint32_t bk_popcount32(uint32_t x) { return bk_popcount32_swar(x); }
#endif

/* Popcount of (a[i] OP b[i]) over the bit range [lo, hi) of two packed vectors
 * (hi > lo; bits numbered as in bnn.h: bit j of the vector is bit j % 32 of word j / 32).
 * The edge words are masked; the words between are counted whole. OP is fixed per call
 * site, so after inlining the switch disappears. */
enum { BK_POP_AND = 0, BK_POP_XOR = 1, BK_POP_A = 2 };

static inline uint32_t bk_pop_op(uint32_t a, uint32_t b, int op) {
    return op == BK_POP_AND ? (a & b) : op == BK_POP_XOR ? (a ^ b) : a;
}

static inline uint32_t bk_popcount_range(const uint32_t *a, const uint32_t *b, uint32_t lo,
                                         uint32_t hi, int op) {
    const uint32_t w0 = lo >> 5, w1 = (hi - 1u) >> 5;
    const uint32_t first = 0xFFFFFFFFu << (lo & 31u);
    const uint32_t last = 0xFFFFFFFFu >> (31u - ((hi - 1u) & 31u));
    if (w0 == w1) return bk_popcount32(bk_pop_op(a[w0], b[w0], op) & first & last);
    uint32_t c = bk_popcount32(bk_pop_op(a[w0], b[w0], op) & first);
    for (uint32_t i = w0 + 1u; i < w1; i++) c += bk_popcount32(bk_pop_op(a[i], b[i], op));
    return c + bk_popcount32(bk_pop_op(a[w1], b[w1], op) & last);
}

#endif
