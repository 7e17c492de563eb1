/* Binary-input layers (pm1 or 01 activations) with binary weights, N-bit accumulator:
 * what the row-layout kernel (bconv_bin_row.c) and the column-layout kernel
 * (bconv_bin_col.c) share. The layout of a layer's weights is bk_weights_by_column(L)
 * (bconv_bin_col.c; bnn.h describes both layouts).
 *
 * Fan-in vector of output (t, o), group g, cg = c_in / groups (docs/INTEGER_MODEL.md):
 *   element i = k * cg + c  ->  bit (x[t * stride + k], channel g * cg + c),
 * gathered into one packed vector f (packed like the weight row of o, so element i of
 * both sits at word i / 32, bit i % 32). When groups = 1 and c_in % 32 = 0 the kernel
 * rows are consecutive whole words and f is the input itself: no copy. Otherwise each
 * kernel row's cg channels are copied: whole words when cg % 32 = 0, one shifted field
 * per row when cg divides 32 (fields then never straddle a word), bk_bits_copy else.
 *
 * Exact partial sum of the L elements of one range (bits: 1 = +1 weight; 1 = +1 or 1
 * activation):
 *   pm1:  x, w in {-1,+1}: the product is +1 where the bits agree and -1 where they
 *         differ. With d = popcount(f XOR w) differing bits: (L - d) - d = L - 2 d.
 *   01:   x in {0,1}: the product is w where x = 1 and 0 elsewhere, so the sum is
 *         popcount(f AND w) - popcount(f AND NOT w) = 2 popcount(f AND w) - popcount(f).
 *         popcount(f) over each tile is the same for every output of the group: it is
 *         counted once per (t, g) into the scratch.
 * Popcounts over whole words use the carry-save sums of popcount.h (padding bits past
 * the fan-in are 0 in f and in w, so a range that ends at the fan-in end counts whole
 * words); other ranges mask their edge words.
 *
 * Accumulation (accumulator.h):
 *   wrap: the whole fan-in is one range, summed in uint32 (exact mod 2^32), wrapped once.
 *   saturate: tiles of `tile` elements (the last may be shorter), each exact partial added
 *     with saturation in fan-in order. Every product is -1, 0 or +1, so the exact sum of
 *     the first e elements lies in [-e, e]: while e <= 2^(N-1) - 1 no prefix sum at a tile
 *     end leaves the N-bit range and every saturating add is an exact add. The first
 *     floor(e_max / tile) tiles are therefore one range (the whole fan-in when it is at
 *     most 2^(N-1) - 1: fan-in 48 at 8 bits never saturates), and only the tiles after
 *     them are added one by one with saturation.
 */
#ifndef BK_BCONV_BIN_H
#define BK_BCONV_BIN_H

#include "accumulator.h"
#include "bnn.h"
#include "popcount.h"

/* GCC's first scheduling pass (before register allocation) lengthens the live ranges of
 * the carry-save loops beyond the 13 free registers of Thumb-2, and the spills cost more
 * than the scheduling gains (measured on Cortex-M4: 4% fewer instructions per network). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

/* Fan-in elements from the start whose exact sum is the accumulator (the
 * accumulation rule above). */
static inline uint32_t safe_elements(const bk_layer_t *L, uint32_t fan_in) {
    if (L->acc_mode == BK_ACC_WRAP) return fan_in;
    const uint32_t e = (uint32_t)bk_acc_hi(L->acc_bits);
    if (e >= fan_in) return fan_in;
    return e - e % L->tile;
}

/* The fan-in vector of group g (rows: the kernel's first input row), into f when it has
 * to be copied (bconv_bin_row.c). */
const uint32_t *bk_bin_gather(const bk_layer_t *L, const uint32_t *rows, uint32_t g,
                              uint32_t *f);

/* bconv_bin_col.c: accumulators acc[c_out] of step t of a column layer (bk_bconv_bin_step
 * for layers where bk_weights_by_column(L) holds), and its scratch words. */
void bk_bin_col_step(const bk_layer_t *L, const uint32_t *x, uint32_t t, int32_t *acc,
                     uint32_t *scratch);
uint32_t bk_bin_col_scratch_words(const bk_layer_t *L);

#endif
