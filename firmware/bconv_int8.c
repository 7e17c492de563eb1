/* First layer: int8 input times binary (+1/-1) weights, N-bit accumulator.
 *
 * Fan-in of output (t, o), group g = o / (c_out / groups), cg = c_in / groups:
 *   element i = k * cg + c  ->  x[t * stride + k][g * cg + c] * w[o][i],  w = +1 or -1.
 * A weight bit b selects +x (b = 1) or -x (b = 0) without a multiply:
 *   with n = 1 - b (0 or 1) and -n = 0 or all ones,  (x ^ -n) + n = x or ~x + 1 = -x.
 * wrap: the terms go into a uint32 sum (exact mod 2^32) reduced once (accumulator.h).
 * saturate: terms form exact tile partials (|partial| <= 128 * tile < 2^23), added to the
 * accumulator with saturation after every `tile` elements in fan-in order.
 */
#include "accumulator.h"
#include "bnn.h"

static inline int32_t signed_term(int32_t x, uint32_t wbit) {
    const int32_t n = (int32_t)(wbit ^ 1u);
    return (x ^ -n) + n;
}

void bk_bconv_int8_step(const bk_layer_t *L, const int8_t *x, uint32_t t, int32_t *acc) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups, og = (uint32_t)L->c_out / L->groups;
    const uint32_t fan_in = (uint32_t)L->kernel * cg, fw = BK_WORDS(fan_in);
    const int8_t *x0 = x + (size_t)t * L->stride * L->c_in;
    for (uint32_t o = 0; o < L->c_out; o++) {
        const uint32_t g = o / og;
        const uint32_t *w = L->weights + (size_t)o * fw;
        const int8_t *xg = x0 + g * cg;
        if (L->acc_mode == BK_ACC_WRAP) {
            uint32_t sum = 0;
            uint32_t i = 0;
            for (uint32_t k = 0; k < L->kernel; k++) {
                const int8_t *row = xg + (size_t)k * L->c_in;
                for (uint32_t c = 0; c < cg; c++, i++)
                    sum += (uint32_t)signed_term(row[c], (w[i >> 5] >> (i & 31u)) & 1u);
            }
            acc[o] = bk_acc_wrap(sum, L->acc_bits);
        } else {
            int32_t a = 0, part = 0;
            uint32_t left = L->tile, i = 0;
            for (uint32_t k = 0; k < L->kernel; k++) {
                const int8_t *row = xg + (size_t)k * L->c_in;
                for (uint32_t c = 0; c < cg; c++, i++) {
                    part += signed_term(row[c], (w[i >> 5] >> (i & 31u)) & 1u);
                    if (--left == 0u) {
                        a = bk_acc_sat_add(a, part, L->acc_bits);
                        part = 0;
                        left = L->tile;
                    }
                }
            }
            if (left != L->tile) a = bk_acc_sat_add(a, part, L->acc_bits); /* short last tile */
            acc[o] = a;
        }
    }
}
