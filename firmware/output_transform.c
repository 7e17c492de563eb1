/* Output transforms: accumulator -> next layer's bit, or -> integer score.
 *
 * Shift-based batch norm (Hubara/Courbariaux 2016, AP2): the trained scale is a signed
 * power of two, sign * 2^s, so batch norm of an accumulator is, in integers,
 *     y = sign * shift(acc - mu, s) + beta,
 *     shift(v, s) = v * 2^s for s >= 0,  floor(v / 2^-s) for s < 0.
 *
 * Threshold (a sign() follows the batch norm): the output is +1 where y >= 0, i.e.
 *     sign * 2^s * (acc - mu) + beta >= 0
 *   sign = +1:  acc >= mu - beta * 2^-s   -> acc >= thr,  thr = ceil(mu - beta 2^-s)
 *   sign = -1:  acc <= mu + beta * 2^-s   -> acc <= thr,  thr = floor(mu + beta 2^-s)
 * (dividing by -2^s flips the inequality; acc is an integer, so rounding the bound
 * inward keeps every case, ties included). The generator stores thr and flip = (sign < 0)
 * per channel (generator/integer/intmodel.py fold_threshold); here it is one compare.
 *
 * Ranges in shiftbn: acc and mu are int32, so |acc - mu| < 2^32 and, with s <= 16,
 * |shift(acc - mu, s)| < 2^48: int64 holds every step; the result is clamped to int32.
 * Shifts are written on non-negative values only (left shifts of negative numbers are
 * undefined and right shifts implementation-defined in C11):
 *   v >= 0:  floor(v / 2^k) = v >> k
 *   v <  0:  with u = -(v + 1) >= 0,  floor(v / 2^k) = -(u >> k) - 1
 *   v * 2^k = -((-v) << k) for v < 0.
 */
#include "bnn.h"

int bk_threshold(int32_t acc, int32_t thr, uint8_t flip) {
    return flip ? acc <= thr : acc >= thr;
}

static int64_t shift_floor(int64_t v, int s) {
    if (s >= 0) return v >= 0 ? (int64_t)((uint64_t)v << s) : -(int64_t)((uint64_t)(-v) << s);
    const int k = -s;
    if (v >= 0) return v >> k;
    const int64_t u = -(v + 1);
    return -(u >> k) - 1;
}

int32_t bk_shiftbn(int32_t acc, int32_t mu, int8_t shift, int8_t sign, int32_t beta) {
    int64_t y = shift_floor((int64_t)acc - mu, shift);
    if (sign < 0) y = -y;
    y += beta;
    if (y > INT32_MAX) return INT32_MAX;
    if (y < INT32_MIN) return INT32_MIN;
    return (int32_t)y;
}

/* n accumulators -> n threshold bits in packed words (bits past n in the last word 0).
 * One output word at a time, built from its highest channel down so that each bit is one
 * shift-or into a register (no read-modify-write of the row). */
void bk_threshold_bits(const int32_t *acc, const int32_t *thr, const uint8_t *flip, uint32_t n,
                       uint32_t *bits) {
    for (uint32_t w0 = 0; w0 < n; w0 += 32u) {
        uint32_t word = 0;
        for (uint32_t o = (n - w0 < 32u ? n : w0 + 32u); o-- > w0;) {
            const int32_t a = acc[o], t = thr[o];
            word = (word << 1) | (uint32_t)(flip[o] ? a <= t : a >= t);
        }
        bits[w0 >> 5] = word;
    }
}

void bk_threshold_row(const bk_layer_t *L, const int32_t *acc, uint32_t *bits) {
    bk_threshold_bits(acc, L->thr, L->flip, L->c_out, bits);
    BK_COUNT(thresholds, L->c_out);
}

void bk_shiftbn_row(const bk_layer_t *L, const int32_t *acc, int32_t *out) {
    for (uint32_t o = 0; o < L->c_out; o++)
        out[o] = bk_shiftbn(acc[o], L->mu[o], L->shift[o], L->sign[o], L->beta[o]);
    BK_COUNT(shiftbns, L->c_out);
}
