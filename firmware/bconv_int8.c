/* First layer: int8 input times binary (+1/-1) weights, N-bit accumulator.
 *
 * Fan-in of output (t, o), group g = o / (c_out / groups), cg = c_in / groups:
 *   element i = k * cg + c  ->  x_i = x[t * stride + k][g * cg + c],  times w_i = +1 or -1.
 * For groups = 1 the fan-in of step t is the k consecutive input rows themselves (row
 * k starts at element k * c_in), so it is read in place; grouped layers copy it (k * cg
 * bytes) into the scratch once per (t, g).
 *
 * Chunk tables (no multiply; about 0.7 instructions per element and output, plus the
 * tables, shared by the outputs of a group). Cut the fan-in into chunks of k consecutive
 * elements that
 * never straddle a 32-bit weight word. For each chunk and each pattern p of its k weight
 * bits (bit j of p = weight bit of element j of the chunk, 1 = +1) tabulate
 *   T[p] = 128 k + sum_j (bit j of p ? +x_j : -x_j)                    (0 <= T[p] <= 256 k)
 * The bias 128 k keeps every entry non-negative (x >= -128), so two entries pack into a
 * 32-bit word as the integer T[2m] + 2^16 T[2m+1] with no borrow between the halves:
 *   T[0] = 128 k - sum_j x_j,   T[1] = T[0] + 2 x_0,
 *   word[m + 2^(j-1)] = word[m] + 2 x_j (1 + 2^16)   for j >= 1, m < 2^(j-1)
 * (element j turns from -x_j to +x_j; both halves stay in [0, 256 k], so the sum, taken
 * mod 2^32, is the exact pair). A table of 2^k entries costs about 2^(k-1) additions,
 * shared by every output of the group. An output's exact sum over a run of whole chunks
 * is then one table read per chunk:
 *   S = sum_chunks T_chunk[bits of w_o in the chunk] - 128 * (elements of the chunks).
 * The weight row is packed LSB first (bnn.h), so a chunk's pattern is a bit field of
 * one weight word. Chunks past the fan-in end read only their entry 0 (weight bits past
 * the end are 0); chunks that straddle the end have x = 0 past it.
 *
 * Plans (chunk shapes per 32-element weight word), chosen per layer by int8_plan():
 *   wide     5 chunks, bits [0,6) [6,12) [12,18) [18,25) [25,32): 448 entries (224
 *            words, an addition and a store each) per weight word, 5 reads per word and
 *            output, one word of all outputs at a time so that the five table bases stay
 *            in registers (21 instructions per word and output). Needs runs of whole
 *            weight words and pays for its tables from 24 outputs per group on.
 *   nibble   8 chunks of 4: 128 entries, 8 reads per word and output; runs of whole
 *            nibbles (tile % 4 = 0).
 *   element  one element at a time: a weight bit b selects +x or -x as (x ^ -n) + n with
 *            n = 1 - b (two's complement negation when n = 1); for tiles that split nibbles.
 *
 * Accumulation (accumulator.h):
 *   wrap: the whole fan-in is one run, summed mod 2^32 and wrapped once.
 *   saturate: tiles of `tile` elements, acc = sat_N(acc + partial) in fan-in order. Every
 *     product lies in [-127, 128], so the exact sum of the first e elements lies in
 *     [-127 e, 128 e]. While 128 e <= 2^(N-1) - 1 no prefix sum at a tile end can leave the
 *     N-bit range, every saturating add is then an exact add, and the first
 *     floor(e_max / tile) tiles are summed as one run (all of them when 128 * fan_in fits:
 *     a 16-bit accumulator and fan-in 120, for instance, never saturates). The remaining
 *     tiles are added one by one with saturation, exactly as the accelerator does.
 *
 * Scratch (bk_bconv_int8_scratch_words): the tables, BK_WORDS(fan_in) * (224 or 64) words,
 * then, for grouped layers, the gathered fan-in (fan_in bytes).
 */
#include "accumulator.h"
#include "bnn.h"
#include "popcount.h" /* BK_INLINE */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bconv_int8.c reads 16-bit table entries out of 32-bit words: little-endian only"
#endif

/* Table entries are written as packed 32-bit pairs and read as 16-bit halves. */
#if defined(__GNUC__)
typedef uint16_t __attribute__((__may_alias__)) entry_t;
#else
typedef uint16_t entry_t;
#endif

enum { PLAN_WIDE = 0, PLAN_NIBBLE = 1, PLAN_ELEMENT = 2 };
#define WIDE_ENTRIES 448u /* per weight word: 64 + 64 + 64 + 128 + 128 */
#define NIB_ENTRIES 128u  /* per weight word: 8 x 16 */
#define WIDE_MIN_OUTPUTS 24u

/* Fan-in elements from the start whose exact sum is the accumulator (see above). */
static uint32_t safe_elements(const bk_layer_t *L, uint32_t fan_in) {
    if (L->acc_mode == BK_ACC_WRAP) return fan_in;
    const uint32_t e = (uint32_t)bk_acc_hi(L->acc_bits) / 128u;
    if (e >= fan_in) return fan_in;
    return e - e % L->tile;
}

static int int8_plan(const bk_layer_t *L, uint32_t fan_in) {
    const int one_run = safe_elements(L, fan_in) == fan_in;
    if ((one_run || L->tile % 32u == 0u) && (uint32_t)L->c_out / L->groups >= WIDE_MIN_OUTPUTS)
        return PLAN_WIDE;
    if (one_run || L->tile % 4u == 0u) return PLAN_NIBBLE;
    return PLAN_ELEMENT;
}

static uint32_t table_words(int plan, uint32_t fan_in) {
    if (plan == PLAN_ELEMENT) return 0;
    return BK_WORDS(fan_in) * (plan == PLAN_WIDE ? WIDE_ENTRIES / 2u : NIB_ENTRIES / 2u);
}

uint32_t bk_bconv_int8_scratch_words(const bk_layer_t *L) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    const uint32_t gather = L->groups > 1u ? (fan_in + 3u) >> 2 : 0u;
    return table_words(int8_plan(L, fan_in), fan_in) + gather;
}

/* (v, v) as a packed pair of 16-bit halves, mod 2^32 */
static inline uint32_t pair16(int32_t v) {
    const uint32_t u = (uint32_t)v;
    return u + (u << 16);
}

/* Store the four words a..d + D at W. */
#define PUT4(W, D, a, b, c, d)                  \
    do {                                        \
        const uint32_t p0_ = (a) + (D);         \
        const uint32_t p1_ = (b) + (D);         \
        const uint32_t p2_ = (c) + (D);         \
        const uint32_t p3_ = (d) + (D);         \
        (W)[0] = p0_, (W)[1] = p1_;             \
        (W)[2] = p2_, (W)[3] = p3_;             \
    } while (0)

/* Words 4 m + (0..3) = w0..w3 + sum of d_j over the bits j of m, m = 0..3 (two more
 * elements: 16 words). */
BK_INLINE void put_combos2(uint32_t *W, uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3,
                           uint32_t da, uint32_t db) {
    PUT4(W, 0u, w0, w1, w2, w3);
    PUT4(W + 4, da, w0, w1, w2, w3);
    w0 += db, w1 += db, w2 += db, w3 += db;
    PUT4(W + 8, 0u, w0, w1, w2, w3);
    PUT4(W + 12, da, w0, w1, w2, w3);
}

/* The 2^kr entries of a chunk with elements x[0 .. kr) (kr = 0..7; more elements of the
 * chunk lie past the fan-in and are 0) and bias 128 k, as 2^(kr-1) packed words (one
 * word when kr <= 1; only entry 0 is read when kr = 0). Words 0..3 (elements 0..2) are
 * made in registers; for 6 and 7 elements the rest is written from them with one
 * addition per word (put_combos2), otherwise by doubling. */
static void build_chunk(uint32_t *W, const int8_t *x, uint32_t kr, uint32_t bias) {
    int32_t s = 0;
    for (uint32_t j = 0; j < kr; j++) s += x[j];
    const uint32_t t0 = bias - (uint32_t)s; /* in [0, 256 k] */
    if (kr == 0u) {
        W[0] = t0;
        return;
    }
    const uint32_t w0 = t0 + ((t0 + (uint32_t)(2 * x[0])) << 16);
    W[0] = w0;
    if (kr == 1u) return;
    const uint32_t w1 = w0 + pair16(2 * x[1]);
    W[1] = w1;
    if (kr == 2u) return;
    const uint32_t d2 = pair16(2 * x[2]), w2 = w0 + d2, w3 = w1 + d2;
    if (kr >= 6u) {
        const uint32_t d3 = pair16(2 * x[3]), d4 = pair16(2 * x[4]), d5 = pair16(2 * x[5]);
        put_combos2(W, w0, w1, w2, w3, d3, d4);
        put_combos2(W + 16, w0 + d5, w1 + d5, w2 + d5, w3 + d5, d3, d4);
        if (kr == 7u) {
            const uint32_t d6 = pair16(2 * x[6]);
            put_combos2(W + 32, w0 + d6, w1 + d6, w2 + d6, w3 + d6, d3, d4);
            put_combos2(W + 48, w0 + d5 + d6, w1 + d5 + d6, w2 + d5 + d6, w3 + d5 + d6, d3, d4);
        }
        return;
    }
    W[2] = w2, W[3] = w3;
    for (uint32_t j = 3, half = 4; j < kr; j++, half <<= 1) {
        const uint32_t d = pair16(2 * x[j]);
        const uint32_t *src = W;
        uint32_t *dst = W + half;
        for (uint32_t m = 0; m < half; m += 4u)
            PUT4(dst + m, d, src[m], src[m + 1u], src[m + 2u], src[m + 3u]);
    }
}

static inline uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }

/* Elements of a chunk starting at element e with k elements that lie in the fan-in. */
static inline uint32_t real_len(uint32_t e, uint32_t k, uint32_t fan_in) {
    return e >= fan_in ? 0u : min_u32(k, fan_in - e);
}

static void build_wide(uint32_t *W, const int8_t *xf, uint32_t fan_in) {
    static const uint8_t pos[5] = {0, 6, 12, 18, 25}, len[5] = {6, 6, 6, 7, 7};
    static const uint16_t off[5] = {0, 32, 64, 96, 160}; /* in words: entries / 2 */
    for (uint32_t e = 0; e < fan_in; e += 32u, W += WIDE_ENTRIES / 2u)
        for (uint32_t c = 0; c < 5u; c++)
            build_chunk(W + off[c], xf + e + pos[c], real_len(e + pos[c], len[c], fan_in),
                        128u * len[c]);
}

static void build_nibbles(uint32_t *W, const int8_t *xf, uint32_t fan_in) {
    const uint32_t chunks = BK_WORDS(fan_in) * 8u;
    for (uint32_t c = 0, e = 0; c < chunks; c++, e += 4u, W += 8)
        build_chunk(W, xf + e, real_len(e, 4u, fan_in), 512u);
}

/* Biased sum of whole weight words [0, n) of w (wide tables T of those words). */
static inline uint32_t sum_wide(const entry_t *T, const uint32_t *w, uint32_t n) {
    uint32_t s = 0;
    for (; n; n--, w++, T += WIDE_ENTRIES) {
        const uint32_t b = *w;
        s += (uint32_t)T[b & 63u] + T[64u + ((b >> 6) & 63u)] + T[128u + ((b >> 12) & 63u)] +
             T[192u + ((b >> 18) & 127u)] + T[320u + (b >> 25)];
    }
    return s;
}

/* Biased sum over nibble chunks [c0, c1) of w (nibble tables T, 16 entries per chunk). */
static inline uint32_t sum_nibbles(const entry_t *T, const uint32_t *w, uint32_t c0, uint32_t c1) {
    uint32_t s = 0, c = c0;
    const entry_t *t = T + ((size_t)c0 << 4);
    for (; c < c1 && (c & 7u); c++, t += 16) s += t[(w[c >> 3] >> ((c & 7u) << 2)) & 15u];
    for (; c + 8u <= c1; c += 8u, t += NIB_ENTRIES) {
        const uint32_t b = w[c >> 3];
        s += (uint32_t)t[b & 15u] + t[16u + ((b >> 4) & 15u)] + t[32u + ((b >> 8) & 15u)] +
             t[48u + ((b >> 12) & 15u)] + t[64u + ((b >> 16) & 15u)] +
             t[80u + ((b >> 20) & 15u)] + t[96u + ((b >> 24) & 15u)] + t[112u + (b >> 28)];
    }
    for (; c < c1; c++, t += 16) s += t[(w[c >> 3] >> ((c & 7u) << 2)) & 15u];
    return s;
}

/* Biased sums of word i of the og weight rows w (row stride fw) into s[0..og): set
 * (first) or add; the fifth chunk is skipped when it lies past the fan-in (chunks = 4).
 * Word by word, so that the five table bases stay in registers for all outputs. */
BK_INLINE void wide_word(const entry_t *T, const uint32_t *w, uint32_t fw, uint32_t og,
                         uint32_t *s, const int first, const int chunks) {
    const entry_t *T0 = T, *T1 = T + 64, *T2 = T + 128, *T3 = T + 192, *T4 = T + 320;
    /* five base registers, so each read is one LDRH with a scaled index (the compiler
     * would otherwise fold them into one base plus an add per read) */
    BK_OPAQUE(T1);
    BK_OPAQUE(T2);
    BK_OPAQUE(T3);
    BK_OPAQUE(T4);
    for (uint32_t o = 0; o < og; o++, w += fw) {
        const uint32_t b = *w;
        uint32_t v = (uint32_t)T0[b & 63u] + T1[(b >> 6) & 63u] + T2[(b >> 12) & 63u] +
                     T3[(b >> 18) & 127u];
        if (chunks == 5) v += T4[b >> 25];
        s[o] = first ? v : s[o] + v;
    }
}

/* One run over the whole fan-in, wide plan: acc = wrap_N(exact sum) (the exact sum itself
 * when the layer cannot saturate). The sums build up in acc (as uint32, mod 2^32). With
 * y, the threshold output follows at once (output_transform.c's rule; outputs o of the
 * row y, which starts at a word). */
static void wide_one_run(const entry_t *T, const uint32_t *w, uint32_t fw, uint32_t fan_in,
                         uint32_t og, unsigned bits, int32_t *acc, const int32_t *thr,
                         const uint8_t *flip, uint32_t *y) {
    uint32_t *s = (uint32_t *)acc;
    const int short_last = ((fan_in - 1u) & 31u) < 25u; /* last word's fifth chunk unused */
    for (uint32_t i = 0; i < fw; i++, T += WIDE_ENTRIES) {
        const int five = i + 1u < fw || !short_last;
        if (i == 0u && five) wide_word(T, w + i, fw, og, s, 1, 5);
        else if (i == 0u) wide_word(T, w + i, fw, og, s, 1, 4);
        else if (five) wide_word(T, w + i, fw, og, s, 0, 5);
        else wide_word(T, w + i, fw, og, s, 0, 4);
    }
    /* bias: 128 per element of every chunk read (32 per word, 25 in a short last word) */
    const uint32_t bias = (fw << 12) - (short_last ? 7u << 7 : 0u);
    const uint32_t mask = bk_acc_mask(bits), half = bk_acc_half(bits), add = half - bias;
    if (!y) {
        for (uint32_t o = 0; o < og; o++) acc[o] = bk_as_int32(((s[o] + add) & mask) - half);
        return;
    }
    for (uint32_t w0 = 0; w0 < og; w0 += 32u) { /* bk_threshold_bits, fused */
        uint32_t word = 0;
        for (uint32_t o = (og - w0 < 32u ? og : w0 + 32u); o-- > w0;) {
            const int32_t a = bk_as_int32(((s[o] + add) & mask) - half), t = thr[o];
            word = (word << 1) | (uint32_t)(flip[o] ? a <= t : a >= t);
        }
        y[w0 >> 5] = word;
    }
}

/* Exact sum over elements [lo, hi) one element at a time. */
static int32_t sum_elements(const int8_t *xf, const uint32_t *w, uint32_t lo, uint32_t hi) {
    int32_t s = 0;
    for (uint32_t i = lo; i < hi; i++) {
        const int32_t n = (int32_t)(((w[i >> 5] >> (i & 31u)) & 1u) ^ 1u);
        s += (xf[i] ^ -n) + n;
    }
    return s;
}

/* Exact sum over [lo, hi) for plans with tables: lo is a multiple of the run alignment
 * (32 for wide, 4 for nibbles) and hi too, or hi = fan_in. |sum| <= 128 * fan_in. */
static inline int32_t run_sum(int plan, const entry_t *T, const uint32_t *w, uint32_t lo,
                              uint32_t hi) {
    if (plan == PLAN_WIDE) {
        const uint32_t w0 = lo >> 5, n = BK_WORDS(hi) - w0;
        return bk_as_int32(sum_wide(T + (size_t)w0 * WIDE_ENTRIES, w + w0, n) - (n << 12));
    }
    const uint32_t c0 = lo >> 2, c1 = (hi + 3u) >> 2;
    return bk_as_int32(sum_nibbles(T, w, c0, c1) - ((c1 - c0) << 9));
}


/* acc of step t; with y, also the threshold bits where they can be fused into the kernel
 * (then returns 1). */
static int int8_step(const bk_layer_t *L, const int8_t *x, uint32_t t, int32_t *acc,
                      uint32_t *scratch, uint32_t *y) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups, og = (uint32_t)L->c_out / L->groups;
    const uint32_t fan_in = (uint32_t)L->kernel * cg, fw = BK_WORDS(fan_in);
    const uint32_t c_in = L->c_in, groups = L->groups, kernel = L->kernel;
    /* layer fields in locals: stores through acc may alias the uint8_t fields of *L */
    const unsigned bits = L->acc_bits;
    const uint32_t tile = L->tile;
    const int32_t lo_lim = bk_acc_lo(bits), hi_lim = bk_acc_hi(bits);
    const uint32_t safe = safe_elements(L, fan_in);
    const int plan = int8_plan(L, fan_in);
    const uint32_t *weights = L->weights;
    const int32_t *thr = L->thr;
    const uint8_t *flip = L->flip;
    const int fuse = y && (groups == 1u || (og & 31u) == 0u) && safe == fan_in &&
                     plan == PLAN_WIDE;
    const int8_t *x0 = x + (size_t)t * L->stride * c_in;
    const entry_t *T = (const entry_t *)scratch;
    int8_t *xg = (int8_t *)(scratch + table_words(plan, fan_in));
    for (uint32_t g = 0; g < groups; g++) {
        /* operations executed (bnn.h): every product; the weight words of each run */
        BK_COUNT(elements, (uint64_t)og * fan_in);
        const int8_t *xf = x0;
        if (groups > 1u) {
            const int8_t *row = x0 + g * cg;
            for (uint32_t k = 0, i = 0; k < kernel; k++, row += c_in)
                for (uint32_t c = 0; c < cg; c++) xg[i++] = row[c];
            xf = xg;
        }
        if (plan == PLAN_WIDE) build_wide(scratch, xf, fan_in);
        if (plan == PLAN_NIBBLE) build_nibbles(scratch, xf, fan_in);
        const uint32_t *w = weights + (size_t)g * og * fw;
        int32_t *a = acc + g * og;
        if (safe == fan_in && plan == PLAN_WIDE) { /* the common case */
            BK_COUNT(words, (uint64_t)og * fw);
            if (fuse)
                wide_one_run(T, w, fw, fan_in, og, bits, a, thr + g * og, flip + g * og,
                             y + ((g * og) >> 5));
            else
                wide_one_run(T, w, fw, fan_in, og, bits, a, 0, 0, 0);
            continue;
        }
        for (uint32_t o = 0; o < og; o++, w += fw) {
            if (safe) BK_COUNT(words, BK_SPAN_WORDS(0u, safe));
            if (plan == PLAN_ELEMENT) {
                int32_t s = sum_elements(xf, w, 0, safe);
                for (uint32_t lo = safe; lo < fan_in; lo += tile) {
                    const uint32_t hi = fan_in - lo < tile ? fan_in : lo + tile;
                    s = bk_acc_sat_add_lim(s, sum_elements(xf, w, lo, hi), lo_lim, hi_lim);
                    BK_COUNT(words, BK_SPAN_WORDS(lo, hi));
                    BK_COUNT(sat_adds, 1);
                }
                a[o] = s;
                continue;
            }
            if (safe == fan_in) { /* one run: wrap, or saturation impossible */
                a[o] = bk_acc_wrap((uint32_t)run_sum(plan, T, w, 0, fan_in), bits);
                continue;
            }
            /* |partial| <= 128 * tile < 2^23 */
            int32_t s = safe ? run_sum(plan, T, w, 0, safe) : 0;
            for (uint32_t lo = safe; lo < fan_in; lo += tile) {
                const uint32_t hi = fan_in - lo < tile ? fan_in : lo + tile;
                s = bk_acc_sat_add_lim(s, run_sum(plan, T, w, lo, hi), lo_lim, hi_lim);
                BK_COUNT(words, BK_SPAN_WORDS(lo, hi));
                BK_COUNT(sat_adds, 1);
            }
            a[o] = s;
        }
    }
    return fuse;
}

void bk_bconv_int8_step(const bk_layer_t *L, const int8_t *x, uint32_t t, int32_t *acc,
                        uint32_t *scratch) {
    (void)int8_step(L, x, t, acc, scratch, 0);
}

void bk_bconv_int8_step_bits(const bk_layer_t *L, const int8_t *x, uint32_t t, uint32_t *y,
                             uint32_t *scratch) {
    int32_t *acc = (int32_t *)scratch;
    if (int8_step(L, x, t, acc, scratch + L->c_out, y)) BK_COUNT(thresholds, L->c_out);
    else bk_threshold_row(L, acc, y);
}
