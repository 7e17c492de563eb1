/* Binary-input layers, weights by row (bnn.h): one packed fan-in vector per (t, g) and
 * one popcount per weight word and output (bconv_bin.h: the sums and the accumulation).
 * Layers whose weights are stored by column go to bconv_bin_col.c.
 */
#include "bconv_bin.h"

#if defined(BK_COUNT_OPS) && BK_COUNT_OPS
bk_op_counts_t bk_op_counts; /* bnn.h: operation counters, host counting builds only */
#endif

static uint32_t n_ranges(const bk_layer_t *L, uint32_t fan_in) {
    return L->acc_mode == BK_ACC_WRAP ? 1u : (fan_in + L->tile - 1u) / L->tile;
}

uint32_t bk_bconv_bin_scratch_words(const bk_layer_t *L) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    if (bk_weights_by_column(L)) return bk_bin_col_scratch_words(L);
    return BK_WORDS(fan_in) + n_ranges(L, fan_in);
}

/* bconv_bin.h */
const uint32_t *bk_bin_gather(const bk_layer_t *L, const uint32_t *rows, uint32_t g,
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

/* sum_i popcount(a[i] OP b[i]) over n words, out of line (one copy of the loop for the
 * paths that are not the hot loop of a common shape). */
#if defined(__GNUC__)
__attribute__((__noinline__))
#endif
static uint32_t pop_words(const uint32_t *a, const uint32_t *b, uint32_t n, int op) {
    if (op == BK_POP_XOR) return bk_popcount_op_words(a, b, n, BK_POP_XOR);
    return bk_popcount_op_words(a, op == BK_POP_A ? a : b, n, BK_POP_AND); /* a & a = a */
}

/* popcount(a OP b) over elements [lo, hi): whole words when the range starts on a word
 * and ends on one or at the fan-in end. */
static inline uint32_t range_pop(const uint32_t *a, const uint32_t *b, uint32_t lo, uint32_t hi,
                                 uint32_t fan_in, int op) {
    if ((lo & 31u) == 0u && ((hi & 31u) == 0u || hi == fan_in))
        return pop_words(a + (lo >> 5), b + (lo >> 5), BK_WORDS(hi) - (lo >> 5), op);
    return bk_popcount_range(a, b, lo, hi, op);
}


/* One group's outputs when the whole fan-in is one range (wrap, or no saturation
 * possible): acc = wrap_N(exact sum), the wrap being the identity in the second case.
 * v = base + sign * 2 popcount: pm1 fan_in - 2 popcount(f XOR w), 01 2 popcount(f AND w)
 * - popcount(f). Fan-ins of at most 3 words (grouped layers) keep f in registers. */
BK_INLINE void one_range_short(const uint32_t *f, const uint32_t *w, const uint32_t fw,
                               uint32_t og, const int pm1, uint32_t base, uint32_t mask,
                               uint32_t half, int32_t *acc) {
    const bk_pop_masks_t mk = bk_pop_masks();
    const uint32_t f0 = f[0], f1 = fw > 1u ? f[1] : 0u, f2 = fw > 2u ? f[2] : 0u;
    const int op = pm1 ? BK_POP_XOR : BK_POP_AND;
    for (uint32_t o = 0; o < og; o++, w += fw) {
        const uint32_t a = bk_pop_op(f0, w[0], op);
        const uint32_t b = fw > 1u ? bk_pop_op(f1, w[1], op) : 0u;
        const uint32_t c = fw > 2u ? bk_pop_op(f2, w[2], op) : 0u;
        const uint32_t d = bk_sum_bytes(bk_pop3_bytes(a, b, c, mk)) << 1;
        acc[o] = bk_acc_wrap_lim(pm1 ? base - d : base + d, mask, half);
        BK_COUNT(words, fw);
    }
}

static void outputs_one_range(const uint32_t *f, const uint32_t *w, uint32_t fw, uint32_t og,
                              uint32_t fan_in, int pm1, unsigned bits, int32_t *acc) {
    const uint32_t mask = bk_acc_mask(bits), half = bk_acc_half(bits);
    const uint32_t base = pm1 ? fan_in : 0u - pop_words(f, f, fw, BK_POP_A);
    if (fw == 1u && pm1) one_range_short(f, w, 1u, og, 1, base, mask, half, acc);
    else if (fw == 1u) one_range_short(f, w, 1u, og, 0, base, mask, half, acc);
    else if (fw == 2u && pm1) one_range_short(f, w, 2u, og, 1, base, mask, half, acc);
    else if (fw == 2u) one_range_short(f, w, 2u, og, 0, base, mask, half, acc);
    else if (fw == 3u && pm1) one_range_short(f, w, 3u, og, 1, base, mask, half, acc);
    else if (fw == 3u) one_range_short(f, w, 3u, og, 0, base, mask, half, acc);
    else
        for (uint32_t o = 0; o < og; o++, w += fw) {
            const uint32_t d = pop_words(f, w, fw, pm1 ? BK_POP_XOR : BK_POP_AND) << 1;
            acc[o] = bk_acc_wrap_lim(pm1 ? base - d : base + d, mask, half);
            BK_COUNT(words, fw);
        }
}

/* Saturating tiles of whole words (tile = 32 tw): the safe prefix (pw words) as one sum,
 * then each tile's exact partial p = c[r] - 2 d (pm1) or 2 d - c[r] (01) added with
 * saturation. A range ending at the fan-in end counts whole words (padding is 0). */
BK_INLINE void word_tiles(const uint32_t *f, const uint32_t *w, uint32_t fw, uint32_t og,
                          uint32_t pw, const uint32_t tw, const int pm1, const uint32_t *c,
                          uint32_t prefix_c, int32_t lo_lim, int32_t hi_lim, int32_t *acc) {
    const int op = pm1 ? BK_POP_XOR : BK_POP_AND;
    const bk_pop_masks_t mk = bk_pop_masks();
    for (uint32_t o = 0; o < og; o++, w += fw) {
        int32_t s = 0;
        if (pw) {
            const int32_t d = (int32_t)pop_words(f, w, pw, op) << 1;
            s = pm1 ? (int32_t)prefix_c - d : d - (int32_t)prefix_c;
            BK_COUNT(words, pw);
        }
        for (uint32_t i = pw, r = 0; i < fw; i += tw, r++) {
            BK_COUNT(words, fw - i < tw ? fw - i : tw);
            BK_COUNT(sat_adds, 1);
            uint32_t d;
            if (tw == 1u) { /* one word: SWAR to bytes, then their sum */
                const uint32_t n = bk_pop_nibbles(bk_pop_op(f[i], w[i], op), mk);
                d = bk_sum_bytes((n + (n >> 4)) & mk.m4) << 1;
            } else {
                d = pop_words(f + i, w + i, fw - i < tw ? fw - i : tw, op) << 1;
            }
            s = bk_acc_sat_add_lim(s, pm1 ? (int32_t)c[r] - (int32_t)d : (int32_t)d - (int32_t)c[r],
                                   lo_lim, hi_lim);
        }
        acc[o] = s;
    }
}

static void outputs_word_tiles(const uint32_t *f, const uint32_t *w, uint32_t fw, uint32_t og,
                               uint32_t safe, uint32_t tw, int pm1, const uint32_t *c,
                               uint32_t prefix_c, int32_t lo_lim, int32_t hi_lim, int32_t *acc) {
    const uint32_t pw = safe >> 5; /* safe is a multiple of the tile */
    if (tw == 1u && pm1) word_tiles(f, w, fw, og, pw, 1u, 1, c, prefix_c, lo_lim, hi_lim, acc);
    else if (tw == 1u) word_tiles(f, w, fw, og, pw, 1u, 0, c, prefix_c, lo_lim, hi_lim, acc);
    else word_tiles(f, w, fw, og, pw, tw, pm1, c, prefix_c, lo_lim, hi_lim, acc);
}

void bk_bconv_bin_step(const bk_layer_t *L, const uint32_t *x, uint32_t t, int32_t *acc,
                       uint32_t *scratch) {
    if (bk_weights_by_column(L)) {
        bk_bin_col_step(L, x, t, acc, scratch);
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
    for (uint32_t g = 0; g < groups; g++) {
        BK_COUNT(elements, (uint64_t)og * fan_in); /* every product, by popcount */
        const uint32_t *f = bk_bin_gather(L, rows, g, gathered);
        const uint32_t *w = weights + (size_t)g * og * fw;
        int32_t *a = acc + g * og;
        if (safe == fan_in) {
            outputs_one_range(f, w, fw, og, fan_in, pm1, bits, a);
            continue;
        }
        /* per tile after the safe prefix, the constant c of its partial: 01 popcount(f)
         * (p = 2 d - c), pm1 its length (p = c - 2 d) */
        const uint32_t nr = (fan_in - safe + tile - 1u) / tile;
        uint32_t prefix_c = safe;
        if (!pm1 && safe) prefix_c = range_pop(f, f, 0, safe, fan_in, BK_POP_A);
        for (uint32_t r = 0, lo = safe; r < nr; r++, lo += tile) {
            const uint32_t hi = fan_in - lo < tile ? fan_in : lo + tile;
            ones[r] = pm1 ? hi - lo : range_pop(f, f, lo, hi, fan_in, BK_POP_A);
        }
        if ((tile & 31u) == 0u) {
            outputs_word_tiles(f, w, fw, og, safe, tile >> 5, pm1, ones, prefix_c, lo_lim,
                               hi_lim, a);
            continue;
        }
        for (uint32_t o = 0; o < og; o++, w += fw) {
            int32_t s = 0;
            if (safe) {
                const int32_t d = (int32_t)range_pop(f, w, 0, safe, fan_in, op) << 1;
                s = pm1 ? (int32_t)prefix_c - d : d - (int32_t)prefix_c;
                BK_COUNT(words, BK_SPAN_WORDS(0u, safe));
            }
            for (uint32_t r = 0, lo = safe; r < nr; r++, lo += tile) {
                const uint32_t hi = fan_in - lo < tile ? fan_in : lo + tile;
                const int32_t d = (int32_t)range_pop(f, w, lo, hi, fan_in, op) << 1;
                BK_COUNT(words, BK_SPAN_WORDS(lo, hi));
                BK_COUNT(sat_adds, 1);
                s = bk_acc_sat_add_lim(s, pm1 ? (int32_t)ones[r] - d : d - (int32_t)ones[r],
                                       lo_lim, hi_lim);
            }
            a[o] = s;
        }
    }
}
