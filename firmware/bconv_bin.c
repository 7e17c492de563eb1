/* Binary-input layers (pm1 or 01 activations) with binary weights, N-bit accumulator.
 *
 * Fan-in vector of output (t, o), group g, cg = c_in / groups (docs/INTEGER_MODEL.md):
 *   element i = k * cg + c  ->  bit (x[t * stride + k], channel g * cg + c),
 * gathered into one packed vector f (packed like the weight row of o, so element i of
 * both sits at word i / 32, bit i % 32). When groups = 1 and c_in % 32 = 0 the kernel
 * rows are consecutive whole words and f is the input itself: no copy.
 *
 * Exact partial sum of the L elements of one tile (bits: 1 = +1 weight; 1 = +1 or 1
 * activation):
 *   pm1:  x, w in {-1,+1}: the product is +1 where the bits agree and -1 where they
 *         differ. With d = popcount(f XOR w) differing bits: (L - d) - d = L - 2 d.
 *   01:   x in {0,1}: the product is w where x = 1 and 0 elsewhere, so the sum is
 *         popcount(f AND w) - popcount(f AND NOT w) = 2 popcount(f AND w) - popcount(f).
 *         popcount(f) over each tile is the same for every output of the group: it is
 *         counted once per (t, g) into the scratch.
 * wrap: the whole fan-in is one range, summed in uint32 (exact mod 2^32), reduced once.
 * saturate: tiles of `tile` elements (the last may be shorter), each exact partial added
 *   with saturation in fan-in order (accumulator.h).
 */
#include "accumulator.h"
#include "bnn.h"
#include "popcount.h"

#if defined(BK_COUNT_OPS) && BK_COUNT_OPS
bk_op_counts_t bk_op_counts; /* bnn.h: operation counters, host counting builds only */
#endif

static uint32_t n_ranges(const bk_layer_t *L, uint32_t fan_in) {
    return L->acc_mode == BK_ACC_WRAP ? 1u : (fan_in + L->tile - 1u) / L->tile;
}

uint32_t bk_bconv_bin_scratch_words(const bk_layer_t *L) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    return BK_WORDS(fan_in) + n_ranges(L, fan_in);
}

void bk_bconv_bin_step(const bk_layer_t *L, const uint32_t *x, uint32_t t, int32_t *acc,
                       uint32_t *scratch) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups, og = (uint32_t)L->c_out / L->groups;
    const uint32_t fan_in = (uint32_t)L->kernel * cg, fw = BK_WORDS(fan_in);
    const uint32_t row_words = BK_WORDS(L->c_in);
    const uint32_t span = L->acc_mode == BK_ACC_WRAP ? fan_in : L->tile; /* elements per range */
    const uint32_t nr = n_ranges(L, fan_in);
    const uint32_t *rows = x + (size_t)t * L->stride * row_words;
    const int direct = L->groups == 1u && (L->c_in & 31u) == 0u;
    uint32_t *gathered = scratch, *ones = scratch + fw;
    const int pm1 = L->input == BK_IN_PM1;
    /* layer fields in locals: stores through acc may alias the uint8_t fields of *L */
    const int wrap = L->acc_mode == BK_ACC_WRAP;
    const unsigned bits = L->acc_bits;
    const int32_t lo_lim = bk_acc_lo(bits), hi_lim = bk_acc_hi(bits);
    for (uint32_t g = 0; g < L->groups; g++) {
        const uint32_t *f = rows;
        if (!direct) {
            gathered[fw - 1u] = 0; /* padding bits past the fan-in */
            const uint32_t *row = rows;
            for (uint32_t k = 0, at = 0; k < L->kernel; k++, at += cg, row += row_words)
                bk_bits_copy(gathered, at, row, g * cg, cg);
            f = gathered;
        }
        if (!pm1)
            for (uint32_t r = 0, lo = 0; r < nr; r++, lo += span) {
                const uint32_t hi = lo + span < fan_in ? lo + span : fan_in;
                ones[r] = bk_popcount_range(f, f, lo, hi, BK_POP_A);
            }
        for (uint32_t o = g * og; o < (g + 1u) * og; o++) {
            const uint32_t *w = L->weights + (size_t)o * fw;
            if (wrap) {
                uint32_t a = 0; /* padding bits are 0 in f and w: whole words */
                if (pm1)
                    for (uint32_t i = 0; i < fw; i++) a += bk_popcount32(f[i] ^ w[i]);
                else
                    for (uint32_t i = 0; i < fw; i++) a += bk_popcount32(f[i] & w[i]);
                acc[o] = bk_acc_wrap(pm1 ? fan_in - (a << 1) : (a << 1) - ones[0], bits);
                BK_COUNT(elements, fan_in);
                BK_COUNT(words, fw);
                continue;
            }
            int32_t s = 0;
            for (uint32_t r = 0, lo = 0; r < nr; r++, lo += span) {
                const uint32_t hi = lo + span < fan_in ? lo + span : fan_in;
                const uint32_t a = bk_popcount_range(f, w, lo, hi, pm1 ? BK_POP_XOR : BK_POP_AND);
                const int32_t p = pm1 ? (int32_t)(hi - lo) - (int32_t)(a << 1)
                                      : (int32_t)(a << 1) - (int32_t)ones[r];
                s = bk_acc_sat_add_lim(s, p, lo_lim, hi_lim);
                BK_COUNT(words, BK_SPAN_WORDS(lo, hi));
                BK_COUNT(sat_adds, 1);
            }
            acc[o] = s;
            BK_COUNT(elements, fan_in);
        }
    }
}
