/* First layer: int8 input times binary (+1/-1) weights, N-bit accumulator.
 *
 * Fan-in of output (t, o), group g = o / (c_out / groups), cg = c_in / groups:
 *   element i = k * cg + c  ->  x_i = x[t * stride + k][g * cg + c],  times w_i = +1 or -1.
 *
 * Sum over any range R of the fan-in (a tile, or all of it), with P = {i : w_i = +1}:
 *   S_R = sum_{P} x_i - sum_{not P} x_i = 2 * sum_{i in R, w_i = +1} x_i - sum_{i in R} x_i.
 * The last term is the same for every output of the group: computed once per (t, g).
 * The first is done bit-serially, without a multiply: write each int8 in two's
 * complement, x = -128 b7 + sum_{j<7} 2^j b_j, and pack bit j of every element of the
 * fan-in into a bit plane X_j (packed like the weight row). Then
 *   sum_{i in R, w_i = +1} x_i = sum_{j<7} popcount_R(X_j AND W) << j
 *                                - (popcount_R(X_7 AND W) << 7),
 * eight AND + popcount passes over the fan-in words per output, exact.
 * wrap: the whole fan-in is one range, summed as uint32 (exact mod 2^32) and reduced
 * once (accumulator.h). saturate: one range per tile (the last may be shorter), each
 * exact partial (|partial| <= 128 * tile < 2^23) added with saturation in fan-in order.
 *
 * Scratch (bk_bconv_int8_scratch_words): 8 planes of BK_WORDS(fan_in) words, then one
 * int32 range sum of x per range.
 */
#include "accumulator.h"
#include "bnn.h"
#include "popcount.h"

static uint32_t n_ranges(const bk_layer_t *L, uint32_t fan_in) {
    return L->acc_mode == BK_ACC_WRAP ? 1u : (fan_in + L->tile - 1u) / L->tile;
}

uint32_t bk_bconv_int8_scratch_words(const bk_layer_t *L) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    return 8u * BK_WORDS(fan_in) + n_ranges(L, fan_in);
}

/* Bit planes of the window of group g at step t, and the plain sum of x per range. */
static void make_planes(const bk_layer_t *L, const int8_t *x0, uint32_t g, uint32_t fan_in,
                        uint32_t span, uint32_t *planes, int32_t *sums) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups, fw = BK_WORDS(fan_in);
    for (uint32_t j = 0; j < (fw << 3); j++) planes[j] = 0;
    for (uint32_t r = 0, lo = 0; lo < fan_in; r++, lo += span) sums[r] = 0;
    uint32_t i = 0, r = 0, in_range = 0;
    for (uint32_t k = 0; k < L->kernel; k++) {
        const int8_t *row = x0 + (size_t)k * L->c_in + g * cg;
        for (uint32_t c = 0; c < cg; c++, i++) {
            const uint32_t v = (uint8_t)row[c]; /* two's complement bits b7..b0 */
            const uint32_t word = i >> 5, bit = i & 31u;
            uint32_t *pw = planes + word;
            for (uint32_t j = 0; j < 8u; j++, pw += fw) *pw |= ((v >> j) & 1u) << bit;
            sums[r] += row[c];
            if (++in_range == span) { /* next accumulation range */
                r++;
                in_range = 0;
            }
        }
    }
}

/* sum of x where w = +1 over the whole words [w0, w1), mod 2^32 (padding bits are 0) */
static inline uint32_t pos_words(const uint32_t *planes, const uint32_t *w, uint32_t fw,
                                 uint32_t w0, uint32_t w1) {
    uint32_t pos = 0;
    for (uint32_t i = w0; i < w1; i++) {
        const uint32_t m = w[i];
        const uint32_t *p = planes + i; /* plane j of word i at p[j * fw] */
        for (uint32_t j = 0; j < 7u; j++, p += fw) pos += bk_popcount32(*p & m) << j;
        pos -= bk_popcount32(*p & m) << 7;
    }
    return pos;
}

/* the same over the element range [lo, hi) (edge words masked) */
static inline uint32_t pos_range(const uint32_t *planes, const uint32_t *w, uint32_t fw,
                                 uint32_t lo, uint32_t hi) {
    uint32_t pos = 0;
    for (uint32_t j = 0; j < 7u; j++, planes += fw)
        pos += bk_popcount_range(planes, w, lo, hi, BK_POP_AND) << j;
    return pos - (bk_popcount_range(planes, w, lo, hi, BK_POP_AND) << 7);
}

/* a two's complement uint32 read as int32, without implementation-defined conversion */
static inline int32_t as_int32(uint32_t u) {
    return u < 0x80000000u ? (int32_t)u : -(int32_t)(~u) - 1;
}

void bk_bconv_int8_step(const bk_layer_t *L, const int8_t *x, uint32_t t, int32_t *acc,
                        uint32_t *scratch) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups, og = (uint32_t)L->c_out / L->groups;
    const uint32_t fan_in = (uint32_t)L->kernel * cg, fw = BK_WORDS(fan_in);
    const uint32_t span = L->acc_mode == BK_ACC_WRAP ? fan_in : L->tile;
    const uint32_t nr = n_ranges(L, fan_in);
    /* ranges of whole words: wrap (one range), or tiles of a multiple of 32 elements */
    const int whole = L->acc_mode == BK_ACC_WRAP || (L->tile & 31u) == 0u;
    const uint32_t span_w = L->acc_mode == BK_ACC_WRAP ? fw : L->tile >> 5;
    const int8_t *x0 = x + (size_t)t * L->stride * L->c_in;
    /* layer fields in locals: stores through acc may alias the uint8_t fields of *L */
    const int wrap = L->acc_mode == BK_ACC_WRAP;
    const unsigned bits = L->acc_bits;
    const int32_t lo_lim = bk_acc_lo(bits), hi_lim = bk_acc_hi(bits);
    uint32_t *planes = scratch;
    int32_t *sums = (int32_t *)(scratch + 8u * fw);
    for (uint32_t g = 0; g < L->groups; g++) {
        make_planes(L, x0, g, fan_in, span, planes, sums);
        for (uint32_t o = g * og; o < (g + 1u) * og; o++) {
            const uint32_t *w = L->weights + (size_t)o * fw;
            uint32_t total = 0; /* wrap: exact sum mod 2^32 */
            int32_t s = 0;      /* saturate: the accumulator */
            for (uint32_t r = 0, lo = 0, w0 = 0; r < nr; r++, lo += span, w0 += span_w) {
                uint32_t pos;
                if (whole) {
                    const uint32_t w1 = w0 + span_w < fw ? w0 + span_w : fw;
                    pos = pos_words(planes, w, fw, w0, w1);
                } else {
                    pos = pos_range(planes, w, fw, lo, lo + span < fan_in ? lo + span : fan_in);
                }
                const uint32_t part = (pos << 1) - (uint32_t)sums[r];
                if (wrap)
                    total += part;
                else /* |part| <= 128 * tile < 2^23 */
                    s = bk_acc_sat_add_lim(s, as_int32(part), lo_lim, hi_lim);
            }
            acc[o] = wrap ? bk_acc_wrap(total, bits) : s;
        }
    }
}
