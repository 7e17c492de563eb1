/* Binary-input layers, weights by column: layers where bk_weights_by_column(L) holds
 * (threshold output, binary input, wrap or a fan-in that cannot saturate, 24 or more
 * outputs per group). The sums and the accumulation rule: bconv_bin.h.
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
 *        exact sum is 2 c - K (bconv_bin.h).
 *   pm1: count c = agreements = sum_{x=1} w + sum_{x=0} (1 - w) = fan_in - popcount(f XOR w):
 *        every element is listed, the x = 0 columns complemented; K = fan_in, sum 2 c - K.
 * The lists hold byte offsets of the columns (uint16) and are built once per (t, g) for
 * all of the group's blocks. With the lanes' weight counts W = sum of all columns (made
 * by the first step of a layer call that needs them, col_one_range_bits), only the fewer
 * of the set and clear elements need counting: 01 c = W - (count over the clear ones)
 * when the input is dense, pm1 always the fewer. That bounds the work of a dense input.
 *
 * Output transform, bit-sliced too (32 outputs at once): V = (2 c - K) mod 2^N, read as a
 * signed N-bit number, is wrap_N of the exact sum (the exact sum itself when the layer
 * cannot saturate). The threshold rule (output_transform.c) per lane:
 *   flip = 0:  V >= thr     flip = 1:  V <= thr  <=>  not (V >= thr + 1)
 * with V in [lo, hi] = N-bit range: thresholds outside it give a constant bit (flip 0:
 * thr <= lo -> 1, thr > hi -> 0; flip 1: thr >= hi -> 1, thr < lo -> 0), and otherwise
 * the lane compares V >= T (T = thr or thr + 1, in range) and flips the result. Signed
 * N-bit order is the unsigned order of the values plus 2^(N-1) mod 2^N (the sign bit
 * inverted), so block_bits forms U = 2 c + (2^(N-1) - K) mod 2^N (the planes shifted by
 * one, plus a constant: a ripple carry over N planes) and V >= T exactly when U minus
 * (T with its top bit inverted) does not borrow. bk_bconv_bin_prepare turns thr and flip
 * into these T planes (top plane inverted) and masks once per layer call: per block N
 * planes, then the flip mask, the constant mask and the constant-one mask.
 */
#include "bconv_bin.h"

#define COL_MIN_OUTPUTS 24u
#define VC_PLANES 16u /* counts up to fan_in < 2^14 (fan_in * 4 * nwo <= 0xFFFF) */
/* Per block of 32 outputs, once per layer call (bk_bconv_bin_prepare): N threshold planes,
 * the flip, constant and constant-one masks, a flag and VC_PLANES planes of the lanes'
 * weight counts W (made by the first step that needs them). */
#define COL_PREP_EXTRA 4u
#define COL_PREP_WORDS(bits) ((bits) + COL_PREP_EXTRA + VC_PLANES)

int bk_weights_by_column(const bk_layer_t *L) {
    if (L->kind != BK_LAYER_CONV || L->input == BK_IN_INT8 || L->output != BK_OUT_THRESHOLD)
        return 0;
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    const uint32_t og = (uint32_t)L->c_out / L->groups, nwo = BK_WORDS(og);
    /* saturating: no saturation possible, or tiles of whole words */
    if (L->acc_mode != BK_ACC_WRAP && fan_in > (uint32_t)bk_acc_hi(L->acc_bits) &&
        (L->tile & 31u) != 0u)
        return 0;
    if (og < COL_MIN_OUTPUTS) return 0;
    if (L->groups > 1u && (og & 31u) != 0u) return 0;
    return fan_in * nwo * 4u <= 0xFFFFu; /* column offsets fit uint16 */
}

/* gathered fan-in, lists and word starts, thresholds */
uint32_t bk_bin_col_scratch_words(const bk_layer_t *L) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    return 2u * BK_WORDS(fan_in) + 1u + ((fan_in + 1u) >> 1) +
           (uint32_t)L->groups * BK_WORDS(L->c_out / L->groups) * COL_PREP_WORDS(L->acc_bits);
}

/* carry-save adder: (h, l) = (majority, parity) of a, b, c; l may be a */
#define CSA(h, l, a, b, c)                \
    do {                                  \
        const uint32_t u_ = (a) ^ (b);    \
        (h) = ((a) & (b)) | (u_ & (c));   \
        (l) = u_ ^ (c);                   \
    } while (0)


/* log2 of the bytes of one column (4 * BK_WORDS(og)) when that is a power of two, else 0 */
static uint32_t col_shift(const bk_layer_t *L) {
    const uint32_t nwo = BK_WORDS((uint32_t)L->c_out / L->groups);
    uint32_t sh = 2;
    while ((1u << sh) < 4u * nwo) sh++;
    return (1u << sh) == 4u * nwo ? sh : 0u;
}

/* The list of the elements whose bit in f, XOR inv, is 1, appended at off[at]: byte
 * offsets of their columns (element i -> i * bytes); starts[i] = list index where word i's
 * elements begin, starts[fw] = the end (saturating tiles count word ranges). Set bits are
 * taken from the top of each word (CLZ; the order within a word does not matter to a
 * sum). Returns the end. The power-of-two column sizes (sh = log2 bytes, 2..5) get a
 * shift, the others an offset table made by repeated addition (no multiply). */
BK_INLINE uint32_t list_elements_sh(const uint32_t *f, uint32_t fan_in, const uint32_t sh,
                                    uint32_t bytes, uint32_t inv, uint16_t *off, uint32_t at,
                                    uint16_t *starts) {
    const uint32_t fw = BK_WORDS(fan_in);
    uint32_t down[32]; /* down[z] = z * bytes, offset of bit 31 - z below bit 31 */
    if (!sh)
        for (uint32_t z = 0, d = 0; z < 32u; z++, d += bytes) down[z] = d;
    uint16_t *o = off + at;
    for (uint32_t i = 0, top = 31u * bytes; i < fw; i++, top += 32u * bytes) {
        uint32_t v = f[i] ^ inv;
        if (i + 1u == fw && (fan_in & 31u)) v &= (1u << (fan_in & 31u)) - 1u;
        starts[i] = (uint16_t)(o - off);
        while (v) {
            const uint32_t z = bk_clz32(v);
            *o++ = (uint16_t)(top - (sh ? z << sh : down[z]));
            v &= ~(0x80000000u >> z);
        }
    }
    starts[fw] = (uint16_t)(o - off);
    return (uint32_t)(o - off);
}

static uint32_t list_elements(const uint32_t *f, uint32_t fan_in, uint32_t sh, uint32_t bytes,
                              uint32_t inv, uint16_t *off, uint32_t at, uint16_t *starts) {
    switch (sh) {
    case 2: return list_elements_sh(f, fan_in, 2u, bytes, inv, off, at, starts);
    case 3: return list_elements_sh(f, fan_in, 3u, bytes, inv, off, at, starts);
    case 4: return list_elements_sh(f, fan_in, 4u, bytes, inv, off, at, starts);
    case 5: return list_elements_sh(f, fan_in, 5u, bytes, inv, off, at, starts);
    default: return list_elements_sh(f, fan_in, 0u, bytes, inv, off, at, starts);
    }
}

/* Add the m columns at byte offsets off[] from col (each XOR inv, a constant) to the
 * planes pl. */
BK_INLINE void vcount_inv(uint32_t *pl, const uint32_t *col, const uint16_t *off, uint32_t m,
                          const uint32_t inv) {
    const uint8_t *base = (const uint8_t *)col;
    uint32_t ones = pl[0], twos = pl[1], fours = pl[2], eights = pl[3];
#define COLUMN(k) (*(const uint32_t *)(const void *)(base + off[k]) ^ inv)
/* Columns k..k+3 into ones/twos; the carry of weight 4 out (in twos_a, twos_b, fours_x). */
#define HS4(k, fours_x)                        \
    a = COLUMN(k), b = COLUMN((k) + 1);         \
    CSA(twos_a, ones, ones, a, b);              \
    a = COLUMN((k) + 2), b = COLUMN((k) + 3);   \
    CSA(twos_b, ones, ones, a, b);              \
    CSA(fours_x, twos, twos, twos_a, twos_b)
    for (; m >= 16u; m -= 16u, off += 16) {
        uint32_t twos_a, twos_b, fours_a, fours_b, eights_a, eights_b, sixteens, a, b;
        HS4(0, fours_a);
        HS4(4, fours_b);
        CSA(eights_a, fours, fours, fours_a, fours_b);
        HS4(8, fours_a);
        HS4(12, fours_b);
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
#undef HS4
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

/* One (t, g) of a column layer: the lists and what every block needs. */
typedef struct {
    const uint16_t *off;     /* set elements, then (pm1) the clear ones */
    const uint16_t *s1, *s0; /* per word: where its set / clear elements start in off */
    uint32_t fw, fan_in;
    uint32_t pw, tw; /* saturating: words of the safe prefix, words per tile (else 0) */
    uint32_t np;     /* planes to clear for a count over the whole fan-in */
    uint32_t npc;    /* planes of a count over the whole fan-in */
    uint32_t m1, m0; /* set elements; clear ones (listed: pm1, or 01 when clearly fewer) */
    unsigned bits;
    int pm1, tiles, clear;
} col_ctx_t;

static uint16_t *col_offsets(const bk_layer_t *L, uint32_t *scratch) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    return (uint16_t *)(void *)(scratch + BK_WORDS(fan_in));
}

static uint32_t *col_prep(const bk_layer_t *L, uint32_t *scratch) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    return scratch + 2u * BK_WORDS(fan_in) + 1u + ((fan_in + 1u) >> 1);
}

/* Planes to clear for a count up to n: its bits (counts never carry past them; at least
 * the four Harley-Seal planes) and the `least` planes a reader looks at, <= VC_PLANES. */
static uint32_t count_planes(uint32_t n, uint32_t least) {
    uint32_t np = 4;
    while (np < VC_PLANES && (n >> np)) np++;
    if (np < least) np = least < VC_PLANES ? least : VC_PLANES;
    return np;
}

/* The context of group g: lists built from its fan-in f (scratch: bk_bconv_bin_scratch_words). */
static void col_context(const bk_layer_t *L, const uint32_t *f, uint32_t *scratch,
                        col_ctx_t *c) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups), fw = BK_WORDS(fan_in);
    const uint32_t sh = col_shift(L), bytes = 4u * BK_WORDS((uint32_t)L->c_out / L->groups);
    uint16_t *off = col_offsets(L, scratch);
    uint16_t *s1 = off + 2u * ((fan_in + 1u) >> 1), *s0 = s1 + fw + 1u;
    const uint32_t m1 = list_elements(f, fan_in, sh, bytes, 0u, off, 0u, s1);
    c->pm1 = L->input == BK_IN_PM1;
    const uint32_t safe = safe_elements(L, fan_in);
    c->tiles = safe < fan_in;
    c->pw = safe >> 5, c->tw = L->tile >> 5; /* safe and tile: multiples of 32 here */
    c->m1 = m1, c->m0 = fan_in - m1;
    /* the clear elements: always for pm1; for 01 (one range) only when they are clearly
     * the fewer (density above 2/3: then the count over them and the lanes' weight
     * counts W give c = W - count, worth a second list and a subtraction per block) */
    c->clear = c->pm1 || (!c->tiles && 3u * m1 > 2u * fan_in);
    if (c->clear) list_elements(f, fan_in, sh, bytes, 0xFFFFFFFFu, off, m1, s0);
    c->off = off, c->s1 = s1, c->s0 = s0;
    c->fw = fw, c->fan_in = fan_in, c->bits = L->acc_bits;
    c->np = count_planes(fan_in, L->acc_bits);
    c->npc = count_planes(fan_in, 0);
}

/* Count planes pl (np cleared) of one block (columns col) over the elements of the words
 * [wa, wb); returns K, the constant of the exact sum 2 c - K of those elements (01: the
 * set elements; pm1: all of them, agreements counted). */
static uint32_t col_count(const col_ctx_t *c, const uint32_t *col, uint32_t wa, uint32_t wb,
                          uint32_t np, uint32_t *pl) {
    uint32_t zero = 0;
    BK_OPAQUE(zero); /* a short loop of stores, not a memset call */
    for (uint32_t b = 0; b < np; b++) pl[b] = zero;
    const uint32_t a1 = c->s1[wa], m1 = c->s1[wb] - a1;
    vcount(pl, col, c->off + a1, m1);
    BK_COUNT(words, m1); /* column words: one element's weights of 32 outputs each */
    BK_COUNT(elements, 32u * m1);
    if (!c->pm1) return m1;
    const uint32_t a0 = c->s0[wa];
    vcount_complement(pl, col, c->off + a0, c->s0[wb] - a0);
    BK_COUNT(words, c->s0[wb] - a0);
    BK_COUNT(elements, 32u * (c->s0[wb] - a0));
    return (32u * wb < c->fan_in ? 32u * wb : c->fan_in) - 32u * wa;
}

/* Count planes pl (np cleared) of one block over the set (set = 1) or clear elements of
 * the whole fan-in, without complementing. */
static void col_count_list(const col_ctx_t *c, const uint32_t *col, int set, uint32_t np,
                           uint32_t *pl) {
    uint32_t zero = 0;
    BK_OPAQUE(zero);
    for (uint32_t b = 0; b < np; b++) pl[b] = zero;
    const uint16_t *s = set ? c->s1 : c->s0;
    vcount(pl, col, c->off + s[0], s[c->fw] - s[0]);
    BK_COUNT(words, s[c->fw] - s[0]);
    BK_COUNT(elements, 32u * (s[c->fw] - s[0]));
}

/* Z = (X << sx) + (Y << sy), or minus (sub), mod 2^n, bit-sliced (X, Y: nx, ny planes,
 * zero above; subtraction as X + NOT Y + 1). */
static void planes_addsub(uint32_t *Z, const uint32_t *X, uint32_t nx, uint32_t sx,
                          const uint32_t *Y, uint32_t ny, uint32_t sy, int sub, uint32_t n) {
    const uint32_t inv = sub ? 0xFFFFFFFFu : 0u;
    uint32_t cy = inv;
    for (uint32_t b = 0; b < n; b++) {
        const uint32_t x = b >= sx && b - sx < nx ? X[b - sx] : 0u;
        const uint32_t y = (b >= sy && b - sy < ny ? Y[b - sy] : 0u) ^ inv;
        Z[b] = x ^ y ^ cy;
        cy = (x & y) | ((x ^ y) & cy);
    }
}

/* A = (2 c - K) mod 2^N: the planes shifted by one plus the constant -K (ripple carry). */
static void planes_2c_minus(const uint32_t *pl, uint32_t np, uint32_t K, unsigned bits,
                            uint32_t *A) {
    uint32_t C = 0u - K, cy = 0, a = 0;
    for (unsigned b = 0; b < bits; b++, C >>= 1) {
        if (C & 1u) A[b] = ~(a ^ cy), cy = a | cy;
        else A[b] = a ^ cy, cy = a & cy;
        a = b < np ? pl[b] : 0u;
    }
}

/* A = sat_N(A + 2 c - K) lane by lane, bit-sliced: A (N planes, two's complement), c in
 * q (nq planes), |2 c - K| <= 32 tw < 2^tb. W = max(N, tb + 1) + 1 planes hold A + 2 c - K
 * exactly (|A + p| <= 2^(N-1) + 2^tb - 1 < 2^(W-1)); the sum fits N bits where its planes
 * N-1 .. W-1 agree, else it is clamped: sign 0 -> hi = 0111..1, sign 1 -> lo = 1000..0. */
static void planes_sat_add(uint32_t *A, const uint32_t *q, uint32_t nq, uint32_t K,
                           unsigned bits, unsigned W) {
    uint32_t S[34], C = 0u - K, cy1 = 0, cy2 = 0, d = 0; /* d: plane b of 2 c */
    const uint32_t sign_a = A[bits - 1u];
    for (unsigned b = 0; b < W; b++) {
        uint32_t t; /* plane b of p = 2 c - K: 2 c plus the constant -K (ripple carry) */
        if (C & 1u) t = ~(d ^ cy1), cy1 = d | cy1;
        else t = d ^ cy1, cy1 = d & cy1;
        C = (C >> 1) | (C & 0x80000000u); /* -K's sign bit repeats above bit 31 */
        const uint32_t a = b < bits ? A[b] : sign_a; /* A sign-extended */
        S[b] = a ^ t ^ cy2;
        cy2 = (a & t) | ((a ^ t) & cy2);
        d = b < nq ? q[b] : 0u;
    }
    uint32_t any = 0, all = 0xFFFFFFFFu;
    for (unsigned b = bits - 1u; b + 1u < W; b++) any |= S[b], all &= S[b];
    const uint32_t sign = S[W - 1u], hi = ~sign & any, lo = sign & ~all, keep = ~(hi | lo);
    for (unsigned b = 0; b + 1u < bits; b++) A[b] = (S[b] & keep) | hi;
    A[bits - 1u] = (S[bits - 1u] & keep) | lo;
}

/* The accumulator planes A (N, two's complement) of one block: wrap_N of the exact sum,
 * or for saturating tiles the safe prefix exactly, then each tile with saturation. */
static void col_acc_planes(const col_ctx_t *c, const uint32_t *col, uint32_t *A) {
    uint32_t pl[VC_PLANES];
    if (!c->tiles) {
        const uint32_t K = col_count(c, col, 0, c->fw, c->np, pl);
        planes_2c_minus(pl, c->np, K, c->bits, A);
        return;
    }
    const uint32_t n = 32u * c->tw;
    uint32_t tb = 0;
    while (n >> tb) tb++;
    const unsigned W = (c->bits > tb + 1u ? c->bits : tb + 1u) + 1u;
    const uint32_t nq = count_planes(n, 0);
    if (c->pw) {
        const uint32_t np = count_planes(32u * c->pw, 0);
        planes_2c_minus(pl, np, col_count(c, col, 0, c->pw, np, pl), c->bits, A);
    } else {
        for (unsigned b = 0; b < c->bits; b++) A[b] = 0;
    }
    for (uint32_t wa = c->pw; wa < c->fw; wa += c->tw) {
        const uint32_t wb = c->fw - wa < c->tw ? c->fw : wa + c->tw;
        const uint32_t K = col_count(c, col, wa, wb, nq, pl);
        planes_sat_add(A, pl, nq, K, c->bits, W);
        BK_COUNT(sat_adds, 32u); /* bit-sliced: 32 lanes at once */
    }
}

void bk_bin_col_step(const bk_layer_t *L, const uint32_t *x, uint32_t t, int32_t *acc,
                     uint32_t *scratch) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups, og = (uint32_t)L->c_out / L->groups;
    const uint32_t fan_in = (uint32_t)L->kernel * cg, nwo = BK_WORDS(og);
    const uint32_t *rows = x + (size_t)t * L->stride * BK_WORDS(L->c_in);
    const unsigned bits = L->acc_bits;
    for (uint32_t g = 0; g < L->groups; g++) {
        col_ctx_t c;
        col_context(L, bk_bin_gather(L, rows, g, scratch), scratch, &c);
        const uint32_t *col = L->weights + (size_t)g * fan_in * nwo;
        for (uint32_t j = 0; j < nwo; j++) {
            uint32_t A[32];
            col_acc_planes(&c, col + j, A);
            for (uint32_t l = 0; l < 32u && 32u * j + l < og; l++) {
                uint32_t v = 0; /* the N-bit pattern of lane l, sign-extended by the wrap */
                for (uint32_t b = 0; b < bits; b++) v |= ((A[b] >> l) & 1u) << b;
                acc[g * og + 32u * j + l] = bk_acc_wrap(v, bits);
            }
        }
    }
}

/* In-place transpose of a 32 x 32 bit matrix, rows [0, rows) of the result wanted:
 * afterwards bit l of a[b] is what bit b of a[l] was, for b < rows. Five rounds of block
 * swaps (Hacker's Delight 7-3, LSB-first): round j exchanges the j x j blocks off the
 * diagonal of each 2j x 2j block; a round only needs the 2j-row blocks that the later
 * rounds read (rows below rows rounded up to 2j). */
static void transpose32(uint32_t *a, uint32_t rows) {
    uint32_t m = 0x0000FFFFu;
    for (uint32_t j = 16; j; j >>= 1, m ^= m << j)
        for (uint32_t *p = a; p < a + rows; p += 2u * j)
            for (uint32_t *q = p; q < p + j; q++) {
                const uint32_t t = ((q[0] >> j) ^ q[j]) & m;
                q[j] ^= t;
                q[0] ^= t << j;
            }
}

uint32_t bk_bconv_bin_prep_words(const bk_layer_t *L) {
    return (uint32_t)L->groups * BK_WORDS(L->c_out / L->groups) * COL_PREP_WORDS(L->acc_bits);
}

void bk_bconv_bin_prepare(const bk_layer_t *L, uint32_t *scratch) {
    bk_bconv_bin_prepare_at(L, col_prep(L, scratch));
}

void bk_bconv_bin_prepare_at(const bk_layer_t *L, uint32_t *pr) {
    const uint32_t og = (uint32_t)L->c_out / L->groups, nwo = BK_WORDS(og);
    const unsigned bits = L->acc_bits;
    const int32_t lo = bk_acc_lo(bits), hi = bk_acc_hi(bits);
    for (uint32_t g = 0; g < L->groups; g++)
        for (uint32_t j = 0; j < nwo; j++, pr += COL_PREP_WORDS(bits)) {
            const int32_t *th = L->thr + g * og + 32u * j;
            const uint8_t *fl = L->flip + g * og + 32u * j;
            const uint32_t lanes = og - 32u * j < 32u ? og - 32u * j : 32u;
            /* lanes past og: constant 0 (unused bits of the output row stay 0) */
            uint32_t flip = 0, cmask = lanes < 32u ? 0xFFFFFFFFu << lanes : 0u, cone = 0, tv[32];
            for (uint32_t l = lanes; l < 32u; l++) tv[l] = 0;
            for (uint32_t l = 0; l < lanes; l++) {
                const uint32_t lane = 1u << l;
                const int32_t thr = th[l];
                uint32_t T = (uint32_t)thr;
                if (fl[l]) {
                    flip |= lane;
                    if (thr >= hi) cmask |= lane, cone |= lane;
                    else if (thr < lo) cmask |= lane;
                    else T += 1u;
                } else if (thr <= lo) {
                    cmask |= lane, cone |= lane;
                } else if (thr > hi) {
                    cmask |= lane;
                }
                tv[l] = T; /* don't care where cmask is set */
            }
            transpose32(tv, bits); /* tv[b]: bit b of every lane's T */
            for (uint32_t b = 0; b < bits; b++) pr[b] = tv[b];
            pr[bits - 1u] = ~pr[bits - 1u]; /* T ^ 2^(N-1): see block_bits */
            pr[bits] = flip, pr[bits + 1u] = cmask, pr[bits + 2u] = cone;
            pr[bits + 3u] = 0; /* weight counts W not made yet */
        }
}

/* The threshold bits of one block from V >= T per lane: no borrow out of U - T', U = V
 * with its sign bit inverted, T' = the prepared planes (top plane inverted). */
static uint32_t threshold_word(uint32_t bc, const uint32_t *pr, unsigned bits) {
    return ((~bc ^ pr[bits]) & ~pr[bits + 1u]) | pr[bits + 2u];
}

/* Output bits of one block from the count planes: V = (2 c - K) mod 2^N, so
 * U = V + 2^(N-1) = 2 c + (2^(N-1) - K) mod 2^N is built on the fly (ripple carry of a
 * constant) and compared with the prepared planes. */
static uint32_t block_bits(const uint32_t *pl, uint32_t np, uint32_t ext, uint32_t K,
                           const uint32_t *pr, unsigned bits) {
    uint32_t C = (1u << (bits - 1u)) - K; /* mod 2^32; only its low N bits are used */
    uint32_t cy = 0, bc = 0, a = 0;       /* a: plane b of 2c = plane b - 1 of c */
    for (unsigned b = 0; b < bits; b++, C >>= 1) {
        uint32_t u;
        if (C & 1u) u = ~(a ^ cy), cy = a | cy;
        else u = a ^ cy, cy = a & cy;
        const uint32_t t = pr[b];
        bc = (~u & t) | (~(u ^ t) & bc);
        a = b < np ? pl[b] : ext; /* ext: 0, or the sign plane of a signed count */
    }
    return threshold_word(bc, pr, bits);
}

/* The threshold word of one block of a one-range layer. c per lane: 01 the set elements'
 * weight count (V = 2 c - m1); pm1 the agreements c1 + (m0 - c0) (V = 2 c - fan_in).
 * With the lanes' weight counts W (made by the first step that needs them, kept for the
 * layer call), only the fewer of the set / clear elements are counted:
 *   01:  c = W - c0 when the clear ones are fewer;
 *   pm1: D = c1 - c0 = 2 c1 - W = W - 2 c0, V = 2 D - (fan_in - 2 m0) (D signed). */
static uint32_t col_one_range_bits(const col_ctx_t *c, const uint32_t *col, uint32_t *pr) {
    uint32_t pl[VC_PLANES], q[VC_PLANES];
    uint32_t *valid = pr + c->bits + 3u, *W = pr + c->bits + 4u;
    const uint32_t npc = c->npc, nd = npc + 2u <= VC_PLANES ? npc + 2u : VC_PLANES;
    if (!c->pm1) {
        if (!c->clear) { /* set elements not clearly more: listed alone */
            col_count_list(c, col, 1, c->np, pl);
            return block_bits(pl, c->np, 0u, c->m1, pr, c->bits);
        }
        col_count_list(c, col, 0, npc, q);
        if (*valid) {
            planes_addsub(pl, W, npc, 0, q, npc, 0, 1, npc); /* c = W - c0 */
        } else {
            col_count_list(c, col, 1, npc, pl);
            planes_addsub(W, pl, npc, 0, q, npc, 0, 0, npc); /* W = c1 + c0 */
            *valid = 1;
        }
        return block_bits(pl, npc, 0u, c->m1, pr, c->bits);
    }
    if (!*valid) {
        col_count_list(c, col, 1, npc, pl);
        col_count_list(c, col, 0, npc, q);
        planes_addsub(W, pl, npc, 0, q, npc, 0, 0, npc);
        *valid = 1;
        planes_addsub(pl, pl, npc, 0, q, npc, 0, 1, nd); /* D = c1 - c0 */
    } else if (c->m1 <= c->m0) {
        col_count_list(c, col, 1, npc, q);
        planes_addsub(pl, q, npc, 1, W, npc, 0, 1, nd); /* D = 2 c1 - W */
    } else {
        col_count_list(c, col, 0, npc, q);
        planes_addsub(pl, W, npc, 0, q, npc, 1, 1, nd); /* D = W - 2 c0 */
    }
    return block_bits(pl, nd, pl[nd - 1u], c->fan_in - 2u * c->m0, pr, c->bits);
}

/* Output bits of one block from accumulator planes A (two's complement). */
static uint32_t acc_planes_bits(const uint32_t *A, const uint32_t *pr, unsigned bits) {
    uint32_t bc = 0;
    for (unsigned b = 0; b < bits; b++) {
        const uint32_t u = b + 1u < bits ? A[b] : ~A[b], t = pr[b];
        bc = (~u & t) | (~(u ^ t) & bc);
    }
    return threshold_word(bc, pr, bits);
}

void bk_bconv_bin_step_bits(const bk_layer_t *L, const uint32_t *x, uint32_t t, uint32_t *y,
                            uint32_t *scratch) {
    bk_bconv_bin_step_bits_at(L, x, t, y, scratch, col_prep(L, scratch));
}

void bk_bconv_bin_step_bits_at(const bk_layer_t *L, const uint32_t *x, uint32_t t, uint32_t *y,
                               uint32_t *scratch, uint32_t *pr) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups, og = (uint32_t)L->c_out / L->groups;
    const uint32_t fan_in = (uint32_t)L->kernel * cg, nwo = BK_WORDS(og);
    const uint32_t *rows = x + (size_t)t * L->stride * BK_WORDS(L->c_in);
    const unsigned bits = L->acc_bits;
    const uint32_t groups = L->groups;
    const uint32_t *weights = L->weights;
    BK_COUNT(thresholds, L->c_out);
    for (uint32_t g = 0; g < groups; g++) {
        col_ctx_t c;
        col_context(L, bk_bin_gather(L, rows, g, scratch), scratch, &c);
        const uint32_t *col = weights + (size_t)g * fan_in * nwo;
        for (uint32_t j = 0; j < nwo; j++, pr += COL_PREP_WORDS(bits)) {
            uint32_t word;
            if (c.tiles) {
                uint32_t A[32];
                col_acc_planes(&c, col + j, A);
                word = acc_planes_bits(A, pr, bits);
            } else {
                word = col_one_range_bits(&c, col + j, pr);
            }
            y[((g * og) >> 5) + j] = word;
        }
    }
}
