/* Population count of 32-bit words: the inner operation of every binary layer.
 *
 * Two variants, selected at compile time:
 *   default               portable SWAR (shifts, masks and adds; no multiply, no table)
 *   BK_POPCOUNT_BUILTIN=1 __builtin_popcount, for cores with a popcount instruction
 *                         (x86 with -mpopcnt, Armv8.1-M MVE ...). On Cortex-M3/M4 gcc
 *                         lowers it to a libgcc call, so the SWAR default is faster there.
 * Both return the same value for every input (tests/codegen/test_kernels.py). Sums over many
 * words (bk_popcount_op_words, the row-layout layers' inner loop) use carry-save blocks
 * of three words in the default variant (below), the instruction per word in the other.
 */
#ifndef BK_POPCOUNT_H
#define BK_POPCOUNT_H

#include <stdint.h>

/* BK_INLINE: always inlined (hot loops whose operation is fixed per call site);
 * BK_OPAQUE(v): the compiler forgets what it knows about v's value (keeps a constant in a
 * register instead of re-materialising it). */
#if defined(__GNUC__)
#define BK_OPAQUE(v) __asm__("" : "+r"(v))
#define BK_INLINE static inline __attribute__((__always_inline__))
#else
#define BK_OPAQUE(v) ((void)0)
#define BK_INLINE static inline
#endif

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

/* Leading zeros of x != 0 (CLZ on Armv7-M). */
BK_INLINE uint32_t bk_clz32(uint32_t x) {
#if defined(__GNUC__)
    return (uint32_t)__builtin_clz(x);
#else
    uint32_t n = 0;
    while (!(x & 0x80000000u)) x <<= 1, n++;
    return n;
#endif
}

/* The operation between the two vectors: fixed per call site, so after inlining the
 * switch disappears. */
enum { BK_POP_AND = 0, BK_POP_XOR = 1, BK_POP_A = 2 };

BK_INLINE uint32_t bk_pop_op(uint32_t a, uint32_t b, int op) {
    return op == BK_POP_AND ? (a & b) : op == BK_POP_XOR ? (a ^ b) : a;
}

/* Sums of popcounts over many words, for the binary layers' inner loop.
 *
 * Three words a, b, c at once: a carry-save adder turns them into two words whose
 * weighted popcount is the same,
 *   ones = a ^ b ^ c,  twos = majority(a, b, c) = (a & b) | ((a ^ b) & c),
 *   popcount(a) + popcount(b) + popcount(c) = popcount(ones) + 2 popcount(twos)
 * (per bit position, the full adder's sum and carry). SWAR steps 1-2 on each give 4-bit
 * fields holding 0..4; ones + 2 twos fits a field (<= 12); step 3 (two masks, the fields
 * reach 12) gives bytes holding 0..24. Ten such blocks (30 words) are added bytewise
 * before a byte can overflow (240 < 256), then the four bytes are summed once (M4:
 * one __usada8; elsewhere two shift-mask-adds). About 8 instructions per word. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#endif

/* The masks live in registers (BK_OPAQUE hides their values from the compiler), so that
 * Thumb-2 applies "(x >> k) & m" in one instruction (AND with a shifted operand) rather
 * than a shift and an AND with an immediate. */
typedef struct {
    uint32_t m1, m2, m4; /* 0x55555555, 0x33333333, 0x0F0F0F0F */
} bk_pop_masks_t;

BK_INLINE bk_pop_masks_t bk_pop_masks(void) {
    bk_pop_masks_t m = {0x55555555u, 0x33333333u, 0x0F0F0F0Fu};
    BK_OPAQUE(m.m1);
    BK_OPAQUE(m.m2);
    BK_OPAQUE(m.m4);
    return m;
}

BK_INLINE uint32_t bk_pop_nibbles(uint32_t x, bk_pop_masks_t m) { /* 4-bit fields: counts */
    x = x - ((x >> 1) & m.m1);
    return (x & m.m2) + ((x >> 2) & m.m2);
}

BK_INLINE uint32_t bk_pop3_bytes(uint32_t a, uint32_t b, uint32_t c, bk_pop_masks_t m) {
    const uint32_t u = a ^ b;
    const uint32_t ones = u ^ c, twos = (a & b) | (u & c);
    const uint32_t s = bk_pop_nibbles(ones, m) + (bk_pop_nibbles(twos, m) << 1); /* <= 12 */
    return (s & m.m4) + ((s >> 4) & m.m4);                                       /* <= 24 */
}

BK_INLINE uint32_t bk_sum_bytes(uint32_t b) { /* b0 + b1 + b2 + b3 */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    return __usada8(b, 0u, 0u);
#else
    b = (b & 0x00FF00FFu) + ((b >> 8) & 0x00FF00FFu);
    return (b & 0xFFFFu) + (b >> 16);
#endif
}

/* Bytes whose sum is sum_i popcount(a[i] OP b[i]) over n <= 30 whole words. */
BK_INLINE uint32_t bk_pop_bytes_words(const uint32_t *a, const uint32_t *b, uint32_t n, int op,
                                      bk_pop_masks_t mk) {
    uint32_t bytes = 0;
    for (; n >= 3u; n -= 3u, a += 3, b += 3)
        bytes += bk_pop3_bytes(bk_pop_op(a[0], b[0], op), bk_pop_op(a[1], b[1], op),
                               bk_pop_op(a[2], b[2], op), mk);
    if (n)
        bytes += bk_pop3_bytes(bk_pop_op(a[0], b[0], op), n > 1u ? bk_pop_op(a[1], b[1], op) : 0u,
                               0u, mk);
    return bytes;
}

/* sum_i popcount(a[i] OP b[i]) over n whole words (the carry-save blocks above). */
BK_INLINE uint32_t bk_popcount_op_words(const uint32_t *a, const uint32_t *b, uint32_t n,
                                       int op) {
    uint32_t total = 0;
#if defined(BK_POPCOUNT_BUILTIN) && BK_POPCOUNT_BUILTIN
    for (uint32_t i = 0; i < n; i++) total += bk_popcount32(bk_pop_op(a[i], b[i], op));
#else
    const bk_pop_masks_t mk = bk_pop_masks();
    for (; n > 30u; n -= 30u, a += 30, b += 30)
        total += bk_sum_bytes(bk_pop_bytes_words(a, b, 30u, op, mk));
    total += bk_sum_bytes(bk_pop_bytes_words(a, b, n, op, mk));
#endif
    return total;
}

/* Popcount of (a[i] OP b[i]) over the bit range [lo, hi) of two packed vectors
 * (hi > lo; bits numbered as in bnn.h: bit j of the vector is bit j % 32 of word j / 32).
 * The edge words are masked; the words between are counted whole. */
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
