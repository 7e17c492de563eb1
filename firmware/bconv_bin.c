/* Binary-input layers (pm1 or 01 activations) with binary weights, N-bit accumulator.
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
#include "accumulator.h"
#include "bnn.h"
#include "popcount.h"

#if defined(BK_COUNT_OPS) && BK_COUNT_OPS
bk_op_counts_t bk_op_counts; /* bnn.h: operation counters, host counting builds only */
#endif

static uint32_t n_ranges(const bk_layer_t *L, uint32_t fan_in) {
    return L->acc_mode == BK_ACC_WRAP ? 1u : (fan_in + L->tile - 1u) / L->tile;
}

#define COL_MIN_OUTPUTS 24u
#define COL_PREP_EXTRA 3u /* flip, constant and constant-one masks after the N planes */

int bk_weights_by_column(const bk_layer_t *L) {
    if (L->kind != BK_LAYER_CONV || L->input == BK_IN_INT8 || L->output != BK_OUT_THRESHOLD)
        return 0;
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    const uint32_t og = (uint32_t)L->c_out / L->groups, nwo = BK_WORDS(og);
    if (L->acc_mode != BK_ACC_WRAP && fan_in > (uint32_t)bk_acc_hi(L->acc_bits)) return 0;
    if (og < COL_MIN_OUTPUTS || (nwo & (nwo - 1u)) != 0u || nwo > 8u) return 0;
    if (L->groups > 1u && (og & 31u) != 0u) return 0;
    return fan_in * nwo * 4u <= 0xFFFFu; /* column offsets fit uint16 */
}

uint32_t bk_bconv_bin_scratch_words(const bk_layer_t *L) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    if (bk_weights_by_column(L))
        return BK_WORDS(fan_in) + ((fan_in + 1u) >> 1) +
               (uint32_t)L->groups * BK_WORDS(L->c_out / L->groups) * (L->acc_bits + COL_PREP_EXTRA);
    return BK_WORDS(fan_in) + n_ranges(L, fan_in);
}

/* Fan-in elements from the start whose exact sum is the accumulator (see above). */
static uint32_t safe_elements(const bk_layer_t *L, uint32_t fan_in) {
    if (L->acc_mode == BK_ACC_WRAP) return fan_in;
    const uint32_t e = (uint32_t)bk_acc_hi(L->acc_bits);
    if (e >= fan_in) return fan_in;
    return e - e % L->tile;
}

/* The fan-in vector of group g (rows: the kernel's first input row), into f when it has
 * to be copied. */
static const uint32_t *gather(const bk_layer_t *L, const uint32_t *rows, uint32_t g,
                              uint32_t *f) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups, row_words = BK_WORDS(L->c_in);
    const uint32_t kernel = L->kernel, fw = BK_WORDS(kernel * cg);
    if (L->groups == 1u && (L->c_in & 31u) == 0u) return rows;
    const uint32_t *row = rows;
    if ((cg & 31u) == 0u) {
        const uint32_t n = cg >> 5, src = g * n;
        for (uint32_t k = 0, at = 0; k < kernel; k++, row += row_words)
            for (uint32_t j = 0; j < n; j++) f[at++] = row[src + j];
        return f;
    }
    for (uint32_t i = 0; i < fw; i++) f[i] = 0; /* padding bits past the fan-in stay 0 */
    if ((32u % cg) == 0u) { /* cg in {1, 2, 4, 8, 16}: fields never straddle a word */
        const uint32_t mask = (1u << cg) - 1u, src = (g * cg) >> 5, sh = (g * cg) & 31u;
        for (uint32_t k = 0, at = 0; k < kernel; k++, row += row_words, at += cg)
            f[at >> 5] |= ((row[src] >> sh) & mask) << (at & 31u);
        return f;
    }
    for (uint32_t k = 0, at = 0; k < kernel; k++, at += cg, row += row_words)
        bk_bits_copy(f, at, row, g * cg, cg);
    return f;
}

/* popcount(a OP b) over elements [lo, hi): whole words when the range starts on a word
 * and ends on one or at the fan-in end. */
static inline uint32_t range_pop(const uint32_t *a, const uint32_t *b, uint32_t lo, uint32_t hi,
                                 uint32_t fan_in, int op) {
    if ((lo & 31u) == 0u && ((hi & 31u) == 0u || hi == fan_in))
        return bk_popcount_op_words(a + (lo >> 5), b + (lo >> 5), BK_WORDS(hi) - (lo >> 5), op);
    return bk_popcount_range(a, b, lo, hi, op);
}

#if defined(BK_COUNT_OPS) && BK_COUNT_OPS
/* Weight words an output reads over its tiles (the accelerator's count; bnn.h). */
static uint32_t tile_words(uint32_t fan_in, uint32_t tile) {
    uint32_t n = 0;
    for (uint32_t lo = 0; lo < fan_in; lo += tile)
        n += BK_SPAN_WORDS(lo, fan_in - lo < tile ? fan_in : lo + tile);
    return n;
}
#endif

/* One group's outputs when the whole fan-in is one range (wrap, or no saturation
 * possible): acc = wrap_N(exact sum), the wrap being the identity in the second case. */
static void outputs_one_range(const uint32_t *f, const uint32_t *w, uint32_t fw, uint32_t og,
                              uint32_t fan_in, int pm1, unsigned bits, int32_t *acc) {
    if (pm1) {
        for (uint32_t o = 0; o < og; o++, w += fw)
            acc[o] = bk_acc_wrap(fan_in - (bk_popcount_op_words(f, w, fw, BK_POP_XOR) << 1), bits);
        return;
    }
    const uint32_t ones = bk_popcount_op_words(f, f, fw, BK_POP_A);
    for (uint32_t o = 0; o < og; o++, w += fw)
        acc[o] = bk_acc_wrap((bk_popcount_op_words(f, w, fw, BK_POP_AND) << 1) - ones, bits);
}

static void col_step_acc(const bk_layer_t *L, const uint32_t *x, uint32_t t, int32_t *acc,
                         uint32_t *scratch);

void bk_bconv_bin_step(const bk_layer_t *L, const uint32_t *x, uint32_t t, int32_t *acc,
                       uint32_t *scratch) {
    if (bk_weights_by_column(L)) {
        col_step_acc(L, x, t, acc, scratch);
        return;
    }
    const uint32_t cg = (uint32_t)L->c_in / L->groups, og = (uint32_t)L->c_out / L->groups;
    const uint32_t fan_in = (uint32_t)L->kernel * cg, fw = BK_WORDS(fan_in);
    const uint32_t row_words = BK_WORDS(L->c_in);
    const uint32_t *rows = x + (size_t)t * L->stride * row_words;
    uint32_t *gathered = scratch, *ones = scratch + fw;
    /* layer fields in locals: stores through acc may alias the uint8_t fields of *L */
    const int pm1 = L->input == BK_IN_PM1;
    const int op = pm1 ? BK_POP_XOR : BK_POP_AND;
    const unsigned bits = L->acc_bits;
    const uint32_t tile = L->tile, groups = L->groups;
    const int32_t lo_lim = bk_acc_lo(bits), hi_lim = bk_acc_hi(bits);
    const uint32_t safe = safe_elements(L, fan_in);
    const uint32_t *weights = L->weights;
    BK_COUNT(elements, (uint64_t)L->c_out * fan_in);
    if (L->acc_mode == BK_ACC_WRAP) {
        BK_COUNT(words, (uint64_t)L->c_out * fw);
    } else {
        BK_COUNT(words, (uint64_t)L->c_out * tile_words(fan_in, tile));
        BK_COUNT(sat_adds, (uint64_t)L->c_out * ((fan_in + tile - 1u) / tile));
    }
    for (uint32_t g = 0; g < groups; g++) {
        const uint32_t *f = gather(L, rows, g, gathered);
        const uint32_t *w = weights + (size_t)g * og * fw;
        int32_t *a = acc + g * og;
        if (safe == fan_in) {
            outputs_one_range(f, w, fw, og, fan_in, pm1, bits, a);
            continue;
        }
        /* popcount(f) of the safe prefix and of each tile after it (01 only) */
        const uint32_t nr = (fan_in - safe + tile - 1u) / tile;
        uint32_t prefix_ones = 0;
        if (!pm1) {
            if (safe) prefix_ones = range_pop(f, f, 0, safe, fan_in, BK_POP_A);
            for (uint32_t r = 0, lo = safe; r < nr; r++, lo += tile)
                ones[r] = range_pop(f, f, lo, fan_in - lo < tile ? fan_in : lo + tile, fan_in,
                                    BK_POP_A);
        }
        for (uint32_t o = 0; o < og; o++, w += fw) {
            int32_t s = 0;
            if (safe) {
                const uint32_t d = range_pop(f, w, 0, safe, fan_in, op);
                s = pm1 ? (int32_t)safe - (int32_t)(d << 1) : (int32_t)(d << 1) - (int32_t)prefix_ones;
            }
            for (uint32_t r = 0, lo = safe; r < nr; r++, lo += tile) {
                const uint32_t hi = fan_in - lo < tile ? fan_in : lo + tile;
                const uint32_t d = range_pop(f, w, lo, hi, fan_in, op);
                const int32_t p = pm1 ? (int32_t)(hi - lo) - (int32_t)(d << 1)
                                      : (int32_t)(d << 1) - (int32_t)ones[r];
                s = bk_acc_sat_add_lim(s, p, lo_lim, hi_lim);
            }
            a[o] = s;
        }
    }
}

/* ======================================================================================
 * Column layout: layers where bk_weights_by_column(L) holds (threshold output, binary
 * input, wrap or a fan-in that cannot saturate, 24 or more outputs per group).
 *
 * Weights are stored by column (bnn.h): for group g and fan-in element i, BK_WORDS(og)
 * words whose bit l of word j is the weight of output g * og + 32 j + l (unused lanes 0).
 * One 32-bit column word then holds element i's weight for 32 outputs ("lanes"), and the
 * outputs' counts are accumulated bit-sliced ("vertical counters"): plane b holds bit b
 * of every lane's count. Adding the columns of a list of elements to the planes with
 * carry-save adders (Harley-Seal: 16 columns through 15 CSAs into ones/twos/fours/eights,
 * the carry-out of weight 16 rippled into the higher planes) costs about 5 logic
 * operations per column and block of 32 outputs, where a row layout costs a popcount
 * per weight word and output.
 *
 *   01:  count c = sum over the elements with x = 1 of w (bit) = popcount(f AND w); only
 *        the set bits of f are listed (about half of them), K = popcount(f), and the
 *        exact sum is 2 c - K (see above).
 *   pm1: count c = agreements = sum_{x=1} w + sum_{x=0} (1 - w) = fan_in - popcount(f XOR w):
 *        every element is listed, the x = 0 columns complemented; K = fan_in, sum 2 c - K.
 * The lists hold byte offsets of the columns (uint16) and are built once per (t, g) for
 * all of the group's blocks.
 *
 * Output transform, bit-sliced too (32 outputs per step): V = (2 c - K) mod 2^N is a shift
 * of the planes and a subtraction of the constant K (ripple borrow over N planes); that is
 * wrap_N of the exact sum (and the exact sum itself when the layer cannot saturate). The
 * threshold rule (output_transform.c) per lane:
 *   flip = 0:  V >= thr     flip = 1:  V <= thr  <=>  not (V >= thr + 1)
 * with V in [lo, hi] = N-bit range: thresholds outside it give a constant bit (flip 0:
 * thr <= lo -> 1, thr > hi -> 0; flip 1: thr >= hi -> 1, thr < lo -> 0), and otherwise
 * the lane compares V >= T (T = thr or thr + 1, in range) and flips the result. V >= T
 * for N-bit signed values is an unsigned compare after inverting both sign bits, i.e. no
 * borrow out of V - T. bk_bconv_bin_prepare turns thr and flip into these T planes and
 * masks once per layer call: per block N planes, then the flip mask, the constant mask
 * and the constant-one mask.
 * ====================================================================================== */

/* carry-save adder: (h, l) = (majority, parity) of a, b, c; l may be a */
#define CSA(h, l, a, b, c)                \
    do {                                  \
        const uint32_t u_ = (a) ^ (b);    \
        (h) = ((a) & (b)) | (u_ & (c));   \
        (l) = u_ ^ (c);                   \
    } while (0)

#define VC_PLANES 16u /* counts below 2^16 (fan_in * 4 * nwo <= 0xFFFF) */

/* log2 of the bytes of one column (4 * BK_WORDS(og), a power of two) */
static uint32_t col_shift(const bk_layer_t *L) {
    const uint32_t nwo = BK_WORDS((uint32_t)L->c_out / L->groups);
    uint32_t sh = 2;
    while ((1u << sh) < 4u * nwo) sh++;
    return sh;
}

/* Byte offsets (element i -> i << sh) of the elements whose bit in f, XOR inv, is 1.
 * Set bits are taken from the top of each word (CLZ; the order does not matter to a
 * sum). sh is a constant per call site (col_shift: 2..5). */
BK_INLINE uint32_t list_elements_sh(const uint32_t *f, uint32_t fan_in, const uint32_t sh,
                                    uint32_t inv, uint16_t *off) {
    const uint32_t fw = BK_WORDS(fan_in);
    uint16_t *o = off;
    for (uint32_t i = 0; i < fw; i++) {
        uint32_t v = f[i] ^ inv;
        if (i + 1u == fw && (fan_in & 31u)) v &= (1u << (fan_in & 31u)) - 1u;
        const uint32_t top = (i << (5u + sh)) + (31u << sh); /* offset of bit 31 */
        while (v) {
            const uint32_t z = bk_clz32(v);
            *o++ = (uint16_t)(top - (z << sh));
            v &= ~(0x80000000u >> z);
        }
    }
    return (uint32_t)(o - off);
}

static uint32_t list_elements(const uint32_t *f, uint32_t fan_in, uint32_t sh, uint32_t inv,
                              uint16_t *off) {
    switch (sh) {
    case 2: return list_elements_sh(f, fan_in, 2u, inv, off);
    case 3: return list_elements_sh(f, fan_in, 3u, inv, off);
    case 4: return list_elements_sh(f, fan_in, 4u, inv, off);
    default: return list_elements_sh(f, fan_in, 5u, inv, off);
    }
}

/* Add the m columns at byte offsets off[] from col (each XOR inv, a constant) to the
 * planes pl. */
BK_INLINE void vcount_inv(uint32_t *pl, const uint32_t *col, const uint16_t *off, uint32_t m,
                          const uint32_t inv) {
    const uint8_t *base = (const uint8_t *)col;
    uint32_t ones = pl[0], twos = pl[1], fours = pl[2], eights = pl[3];
#define COLUMN(k) (*(const uint32_t *)(const void *)(base + off[k]) ^ inv)
    for (; m >= 16u; m -= 16u, off += 16) {
        uint32_t twos_a, twos_b, fours_a, fours_b, eights_a, eights_b, sixteens, a, b;
        a = COLUMN(0), b = COLUMN(1);
        CSA(twos_a, ones, ones, a, b);
        a = COLUMN(2), b = COLUMN(3);
        CSA(twos_b, ones, ones, a, b);
        CSA(fours_a, twos, twos, twos_a, twos_b);
        a = COLUMN(4), b = COLUMN(5);
        CSA(twos_a, ones, ones, a, b);
        a = COLUMN(6), b = COLUMN(7);
        CSA(twos_b, ones, ones, a, b);
        CSA(fours_b, twos, twos, twos_a, twos_b);
        CSA(eights_a, fours, fours, fours_a, fours_b);
        a = COLUMN(8), b = COLUMN(9);
        CSA(twos_a, ones, ones, a, b);
        a = COLUMN(10), b = COLUMN(11);
        CSA(twos_b, ones, ones, a, b);
        CSA(fours_a, twos, twos, twos_a, twos_b);
        a = COLUMN(12), b = COLUMN(13);
        CSA(twos_a, ones, ones, a, b);
        a = COLUMN(14), b = COLUMN(15);
        CSA(twos_b, ones, ones, a, b);
        CSA(fours_b, twos, twos, twos_a, twos_b);
        CSA(eights_b, fours, fours, fours_a, fours_b);
        CSA(sixteens, eights, eights, eights_a, eights_b);
        for (uint32_t k = 4; sixteens; k++) { /* ripple: the count never exceeds the planes */
            const uint32_t c = pl[k] & sixteens;
            pl[k] ^= sixteens;
            sixteens = c;
        }
    }
    /* the last m < 16 columns: two at a time through one CSA, then a ripple */
    for (; m; m -= m > 1u ? 2u : 1u, off += 2) {
        uint32_t carry, c, a = COLUMN(0), b = m > 1u ? COLUMN(1) : 0u;
        CSA(carry, ones, ones, a, b);
        c = twos & carry, twos ^= carry, carry = c;
        c = fours & carry, fours ^= carry, carry = c;
        c = eights & carry, eights ^= carry, carry = c;
        for (uint32_t k = 4; carry; k++) {
            c = pl[k] & carry;
            pl[k] ^= carry;
            carry = c;
        }
    }
#undef COLUMN
    pl[0] = ones, pl[1] = twos, pl[2] = fours, pl[3] = eights;
}

static void vcount(uint32_t *pl, const uint32_t *col, const uint16_t *off, uint32_t m) {
    vcount_inv(pl, col, off, m, 0u);
}

static void vcount_complement(uint32_t *pl, const uint32_t *col, const uint16_t *off,
                              uint32_t m) {
    vcount_inv(pl, col, off, m, 0xFFFFFFFFu);
}

/* The planes of one block of 32 outputs of group g for the fan-in f. Returns K. */
static uint32_t col_block_planes(const bk_layer_t *L, const uint16_t *off, uint32_t m1,
                                 uint32_t m0, uint32_t g, uint32_t j, uint32_t *pl) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    const uint32_t nwo = BK_WORDS((uint32_t)L->c_out / L->groups);
    const uint32_t *col = L->weights + (size_t)g * fan_in * nwo + j;
    uint32_t zero = 0;
    BK_OPAQUE(zero); /* a short loop of stores, not a memset call */
    for (uint32_t b = 0; b < VC_PLANES; b++) pl[b] = zero;
    vcount(pl, col, off, m1);
    if (L->input == BK_IN_PM1) {
        vcount_complement(pl, col, off + m1, m0);
        return fan_in;
    }
    return m1;
}

/* Lists of group g's fan-in: set elements first (m1), then (pm1) the clear ones (m0). */
static void col_lists(const bk_layer_t *L, const uint32_t *f, uint16_t *off, uint32_t *m1,
                      uint32_t *m0) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups), sh = col_shift(L);
    *m1 = list_elements(f, fan_in, sh, 0u, off);
    *m0 = L->input == BK_IN_PM1 ? list_elements(f, fan_in, sh, 0xFFFFFFFFu, off + *m1) : 0u;
}

static uint16_t *col_offsets(const bk_layer_t *L, uint32_t *scratch) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    return (uint16_t *)(void *)(scratch + BK_WORDS(fan_in));
}

static uint32_t *col_prep(const bk_layer_t *L, uint32_t *scratch) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    return scratch + BK_WORDS(fan_in) + ((fan_in + 1u) >> 1);
}

static void col_count_ops(const bk_layer_t *L, uint32_t fan_in) {
    BK_COUNT(elements, (uint64_t)L->c_out * fan_in);
    if (L->acc_mode == BK_ACC_WRAP) {
        BK_COUNT(words, (uint64_t)L->c_out * BK_WORDS(fan_in));
    } else {
        BK_COUNT(words, (uint64_t)L->c_out * tile_words(fan_in, L->tile));
        BK_COUNT(sat_adds, (uint64_t)L->c_out * ((fan_in + L->tile - 1u) / L->tile));
    }
    (void)L, (void)fan_in;
}

static void col_step_acc(const bk_layer_t *L, const uint32_t *x, uint32_t t, int32_t *acc,
                         uint32_t *scratch) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups, og = (uint32_t)L->c_out / L->groups;
    const uint32_t fan_in = (uint32_t)L->kernel * cg, nwo = BK_WORDS(og);
    const uint32_t *rows = x + (size_t)t * L->stride * BK_WORDS(L->c_in);
    const unsigned bits = L->acc_bits;
    uint16_t *off = col_offsets(L, scratch);
    col_count_ops(L, fan_in);
    for (uint32_t g = 0; g < L->groups; g++) {
        const uint32_t *f = gather(L, rows, g, scratch);
        uint32_t m1, m0, pl[VC_PLANES];
        col_lists(L, f, off, &m1, &m0);
        for (uint32_t j = 0; j < nwo; j++) {
            const uint32_t K = col_block_planes(L, off, m1, m0, g, j, pl);
            for (uint32_t l = 0; l < 32u && 32u * j + l < og; l++) {
                uint32_t c = 0;
                for (uint32_t b = 0; b < VC_PLANES; b++) c |= ((pl[b] >> l) & 1u) << b;
                acc[g * og + 32u * j + l] = bk_acc_wrap((c << 1) - K, bits);
            }
        }
    }
}

void bk_bconv_bin_prepare(const bk_layer_t *L, uint32_t *scratch) {
    const uint32_t og = (uint32_t)L->c_out / L->groups, nwo = BK_WORDS(og);
    const unsigned bits = L->acc_bits;
    const int32_t lo = bk_acc_lo(bits), hi = bk_acc_hi(bits);
    uint32_t *pr = col_prep(L, scratch);
    for (uint32_t g = 0; g < L->groups; g++)
        for (uint32_t j = 0; j < nwo; j++, pr += bits + COL_PREP_EXTRA) {
            uint32_t flip = 0, cmask = 0, cone = 0, tv[32];
            for (uint32_t l = 0; l < 32u; l++) {
                const uint32_t lane = 1u << l, ol = 32u * j + l;
                tv[l] = 0;
                if (ol >= og) {
                    cmask |= lane; /* unused bits of the output row stay 0 */
                    continue;
                }
                const int32_t thr = L->thr[g * og + ol];
                if (L->flip[g * og + ol]) {
                    flip |= lane;
                    if (thr >= hi) cmask |= lane, cone |= lane;
                    else if (thr < lo) cmask |= lane;
                    else tv[l] = (uint32_t)thr + 1u;
                } else {
                    if (thr <= lo) cmask |= lane, cone |= lane;
                    else if (thr > hi) cmask |= lane;
                    else tv[l] = (uint32_t)thr;
                }
            }
            for (uint32_t b = 0; b < bits; b++) { /* plane b: bit b of every lane's T */
                uint32_t plane = 0;
                for (uint32_t l = 32; l-- > 0;) plane = (plane << 1) | ((tv[l] >> b) & 1u);
                pr[b] = plane;
            }
            pr[bits] = flip, pr[bits + 1u] = cmask, pr[bits + 2u] = cone;
        }
}

/* Output bits of one block: V = (2 c - K) mod 2^N from the planes, compared per lane. */
static uint32_t block_bits(const uint32_t *pl, uint32_t K, const uint32_t *pr, unsigned bits) {
    uint32_t bs = 0, bc = 0; /* borrows of 2c - K and of V - T */
    for (unsigned b = 0; b < bits; b++) {
        const uint32_t a = (b >= 1u && b - 1u < VC_PLANES) ? pl[b - 1u] : 0u;
        const uint32_t k = 0u - ((K >> b) & 1u);
        uint32_t v = a ^ k ^ bs, tb = pr[b];
        bs = (~a & k) | (~(a ^ k) & bs);
        if (b + 1u == bits) v = ~v, tb = ~tb; /* signed: invert the sign bits */
        bc = (~v & tb) | (~(v ^ tb) & bc);
    }
    return ((~bc ^ pr[bits]) & ~pr[bits + 1u]) | pr[bits + 2u];
}

void bk_bconv_bin_step_bits(const bk_layer_t *L, const uint32_t *x, uint32_t t, uint32_t *y,
                            uint32_t *scratch) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups, og = (uint32_t)L->c_out / L->groups;
    const uint32_t fan_in = (uint32_t)L->kernel * cg, nwo = BK_WORDS(og);
    const uint32_t *rows = x + (size_t)t * L->stride * BK_WORDS(L->c_in);
    const unsigned bits = L->acc_bits;
    uint16_t *off = col_offsets(L, scratch);
    const uint32_t *pr = col_prep(L, scratch);
    col_count_ops(L, fan_in);
    BK_COUNT(thresholds, L->c_out);
    for (uint32_t g = 0; g < L->groups; g++) {
        const uint32_t *f = gather(L, rows, g, scratch);
        uint32_t m1, m0, pl[VC_PLANES];
        col_lists(L, f, off, &m1, &m0);
        for (uint32_t j = 0; j < nwo; j++, pr += bits + COL_PREP_EXTRA) {
            const uint32_t K = col_block_planes(L, off, m1, m0, g, j, pl);
            y[((g * og) >> 5) + j] = block_bits(pl, K, pr, bits);
        }
    }
}
