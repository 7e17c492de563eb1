/* The N-bit accumulator of the simulated accelerator (docs/INTEGER_MODEL.md,
 * "Accumulator"; numpy reference: generator/integer/intmodel.py wrap, saturate, accumulate).
 * N = bits, 4..32; lo = -2^(N-1), hi = 2^(N-1) - 1.
 *
 * wrap:  wrap_N(v) = ((v + 2^(N-1)) mod 2^N) - 2^(N-1).
 *   The kernels keep the running sum in a uint32_t, i.e. the exact sum mod 2^32
 *   (unsigned overflow is defined in C). 2^N divides 2^32, so the low N bits of that
 *   word are the exact sum mod 2^N, whatever the order or the number of additions:
 *   reducing once at the end equals wrapping after every addition, as the hardware does.
 *   With h = 2^(N-1), the definition itself, ((v + h) mod 2^N) - h, computed mod 2^32
 *   on the uint32 sum, is the 32-bit two's complement pattern of wrap_N(v): three
 *   instructions (add, and, subtract; a constant added to v folds into the first), the
 *   same for N = 32 (mask all ones: v itself). The pattern becomes an int32_t through
 *   bk_as_int32, which converts only values below 2^31 (nothing implementation-defined;
 *   compilers emit no instruction for it).
 *
 * saturate: acc = sat_N(acc + p) for each tile partial p in fan-in order, from 0.
 *   With acc in [lo, hi] the sum acc + p can leave int32 when N = 32, so the test is
 *   made on the other side of the inequality, where nothing overflows:
 *     p >= 0:  acc + p > hi  <=>  acc > hi - p     (hi - p >= hi - INT32_MAX >= -2^31 + 8)
 *     p <  0:  acc + p < lo  <=>  acc < lo - p     (lo - p <= lo + 2^31 <= 2^31 - 8)
 *   and acc + p is only formed when it lies in [lo, hi].
 */
#ifndef BK_ACCUMULATOR_H
#define BK_ACCUMULATOR_H

#include <stdint.h>

static inline int32_t bk_acc_hi(unsigned bits) { return (int32_t)((1u << (bits - 1u)) - 1u); }

static inline int32_t bk_acc_lo(unsigned bits) { return -bk_acc_hi(bits) - 1; }

/* A two's complement 32-bit pattern as int32_t. */
static inline int32_t bk_as_int32(uint32_t u) {
    return u < 0x80000000u ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* The constants of wrap_N: mask = 2^N - 1, half = 2^(N-1) (loops compute them once). */
static inline uint32_t bk_acc_mask(unsigned bits) {
    return bits >= 32u ? 0xFFFFFFFFu : ((1u << bits) - 1u);
}

static inline uint32_t bk_acc_half(unsigned bits) { return 1u << (bits - 1u); }

/* wrap_N of an exact sum given modulo 2^32, constants given. */
static inline int32_t bk_acc_wrap_lim(uint32_t sum_mod32, uint32_t mask, uint32_t half) {
    return bk_as_int32(((sum_mod32 + half) & mask) - half);
}

/* wrap_N of an exact sum given modulo 2^32. */
static inline int32_t bk_acc_wrap(uint32_t sum_mod32, unsigned bits) {
    return bk_acc_wrap_lim(sum_mod32, bk_acc_mask(bits), bk_acc_half(bits));
}

/* sat(acc + p) to [lo, hi] for acc in [lo, hi] and any int32 partial p (limits given,
 * so loops compute them once). */
static inline int32_t bk_acc_sat_add_lim(int32_t acc, int32_t p, int32_t lo, int32_t hi) {
    if (p >= 0) return acc > hi - p ? hi : acc + p;
    return acc < lo - p ? lo : acc + p;
}

/* sat_N(acc + p) for acc in [lo, hi] and any int32 partial p. */
static inline int32_t bk_acc_sat_add(int32_t acc, int32_t p, unsigned bits) {
    return bk_acc_sat_add_lim(acc, p, bk_acc_lo(bits), bk_acc_hi(bits));
}

#endif
