/* First layer: int8 input times binary (+1/-1) weights, N-bit accumulator.
 *
 * Fan-in of output (t, o), group g = o / (c_out / groups), cg = c_in / groups:
 *   element i = k * cg + c  ->  x_i = x[t * stride + k][g * cg + c],  times w_i = +1 or -1.
 *
 * Quad tables (no multiply, about one add per element and output). Cut the fan-in into
 * quads of 4 consecutive elements, q = i / 4 (the last quad padded with x = 0). For each
 * quad and each of the 16 patterns p of 4 weight bits (bit j of p = weight bit of element
 * 4q + j, 1 = +1), tabulate the exact signed sum
 *   T[q][p] = sum_{j<4} (bit j of p ? +x_{4q+j} : -x_{4q+j}),
 * built with 15 additions per quad: T[q][0] = -(x0 + x1 + x2 + x3) and
 * T[q][p + 2^j] = T[q][p] + 2 x_j for p < 2^j (turning element j from -x_j to +x_j).
 * The tables depend only on the input window, so they are built once per (t, g) and
 * shared by the c_out / groups outputs of the group. The weight row is packed LSB first
 * (bnn.h), so quad q's pattern is the nibble (w[q / 8] >> 4 (q % 8)) & 15, and an output's
 * exact sum over a run of quads is one table load and one add per quad:
 *   S = sum_q T[q][nibble_q(w_o)].
 * |T| <= 4 * 128 = 512 fits int16. Padding weight bits are 0 and padding x = 0, so the
 * padded quad adds exactly its real elements.
 * wrap: the whole fan-in is one run, summed as uint32 (exact mod 2^32) and reduced once
 * (accumulator.h). saturate: tiles of `tile` elements, each tile's exact partial added
 * with saturation in fan-in order; when tile % 4 = 0 a tile is a run of whole quads,
 * otherwise (quads would straddle tiles) the elements are added one by one: a weight bit
 * b selects +x or -x as (x ^ -n) + n with n = 1 - b (two's complement negation when n = 1).
 *
 * Scratch (bk_bconv_int8_scratch_words): 16 int16 per quad = 8 words per quad.
 */
#include "accumulator.h"
#include "bnn.h"

uint32_t bk_bconv_int8_scratch_words(const bk_layer_t *L) {
    const uint32_t fan_in = (uint32_t)L->kernel * (L->c_in / L->groups);
    return ((fan_in + 3u) >> 2) << 3;
}

/* The 16 signed sums of one quad (x[0..3]) into T[0..15]. */
static void fill_quad(int16_t *T, const int32_t *x) {
    T[0] = (int16_t)-(x[0] + x[1] + x[2] + x[3]);
    for (uint32_t e = 0, half = 1; e < 4u; e++, half <<= 1)
        for (uint32_t p = 0; p < half; p++) T[p + half] = (int16_t)(T[p] + x[e] + x[e]);
}

/* T[q][16] for every quad of the window of group g starting at row x0. */
static void build_tables(const bk_layer_t *L, const int8_t *x0, uint32_t g, int16_t *T) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups;
    int32_t quad[4];
    uint32_t j = 0;
    for (uint32_t k = 0; k < L->kernel; k++) {
        const int8_t *row = x0 + (size_t)k * L->c_in + g * cg;
        for (uint32_t c = 0; c < cg; c++) {
            quad[j++] = row[c];
            if (j == 4u) {
                fill_quad(T, quad);
                T += 16;
                j = 0;
            }
        }
    }
    if (j) { /* the last quad, padded with x = 0 */
        while (j < 4u) quad[j++] = 0;
        fill_quad(T, quad);
    }
}

/* Table entry of quad q for output weights w: the nibble of w for quad q selects it. */
static inline uint32_t quad_entry(const int16_t *tq, const uint32_t *w, uint32_t q) {
    return (uint32_t)tq[(w[q >> 3] >> ((q & 7u) << 2)) & 15u]; /* mod 2^32 */
}

/* Exact sum over quads [q0, q1) of output weights w: one load and one add per quad;
 * a whole weight word (8 quads) at a time where the range allows. */
static inline uint32_t sum_quads(const int16_t *T, const uint32_t *w, uint32_t q0, uint32_t q1) {
    uint32_t s = 0; /* two's complement, mod 2^32 */
    const int16_t *t = T + ((size_t)q0 << 4);
    uint32_t q = q0;
    for (; q < q1 && (q & 7u); q++, t += 16) s += quad_entry(t, w, q);
    for (; q + 8u <= q1; q += 8u, t += 128) {
        const uint32_t b = w[q >> 3];
        s += (uint32_t)t[b & 15u] + (uint32_t)t[16 + ((b >> 4) & 15u)] +
             (uint32_t)t[32 + ((b >> 8) & 15u)] + (uint32_t)t[48 + ((b >> 12) & 15u)] +
             (uint32_t)t[64 + ((b >> 16) & 15u)] + (uint32_t)t[80 + ((b >> 20) & 15u)] +
             (uint32_t)t[96 + ((b >> 24) & 15u)] + (uint32_t)t[112 + (b >> 28)];
    }
    for (; q < q1; q++, t += 16) s += quad_entry(t, w, q);
    return s;
}

/* Exact sum over elements [lo, hi) one element at a time (tiles that split quads). */
static int32_t sum_elements(const bk_layer_t *L, const int8_t *x0, uint32_t g,
                            const uint32_t *w, uint32_t lo, uint32_t hi) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups;
    uint32_t k = lo / cg, c = lo - k * cg; /* once per tile */
    const int8_t *row = x0 + (size_t)k * L->c_in + g * cg;
    int32_t s = 0;
    for (uint32_t i = lo; i < hi; i++) {
        const int32_t n = (int32_t)(((w[i >> 5] >> (i & 31u)) & 1u) ^ 1u);
        s += (row[c] ^ -n) + n;
        if (++c == cg) {
            c = 0;
            row += L->c_in;
        }
    }
    return s;
}

/* a two's complement uint32 read as int32, without implementation-defined conversion */
static inline int32_t as_int32(uint32_t u) {
    return u < 0x80000000u ? (int32_t)u : -(int32_t)(~u) - 1;
}

void bk_bconv_int8_step(const bk_layer_t *L, const int8_t *x, uint32_t t, int32_t *acc,
                        uint32_t *scratch) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups, og = (uint32_t)L->c_out / L->groups;
    const uint32_t fan_in = (uint32_t)L->kernel * cg, fw = BK_WORDS(fan_in);
    const uint32_t quads = (fan_in + 3u) >> 2;
    /* layer fields in locals: stores through acc may alias the uint8_t fields of *L */
    const int wrap = L->acc_mode == BK_ACC_WRAP;
    const unsigned bits = L->acc_bits;
    const uint32_t tile = L->tile;
    const int32_t lo_lim = bk_acc_lo(bits), hi_lim = bk_acc_hi(bits);
    const int by_quad = wrap || (tile & 3u) == 0u;
    const int8_t *x0 = x + (size_t)t * L->stride * L->c_in;
    int16_t *T = (int16_t *)scratch;
    for (uint32_t g = 0; g < L->groups; g++) {
        if (by_quad) build_tables(L, x0, g, T);
        for (uint32_t o = g * og; o < (g + 1u) * og; o++) {
            const uint32_t *w = L->weights + (size_t)o * fw;
            if (wrap) {
                acc[o] = bk_acc_wrap(sum_quads(T, w, 0, quads), bits);
                BK_COUNT(elements, fan_in);
                BK_COUNT(words, fw);
                continue;
            }
            int32_t s = 0;
            for (uint32_t lo = 0; lo < fan_in; lo += tile) {
                const uint32_t hi = fan_in - lo < tile ? fan_in : lo + tile;
                /* |partial| <= 128 * tile < 2^23 */
                const int32_t p = by_quad ? as_int32(sum_quads(T, w, lo >> 2, (hi + 3u) >> 2))
                                          : sum_elements(L, x0, g, w, lo, hi);
                s = bk_acc_sat_add_lim(s, p, lo_lim, hi_lim);
                BK_COUNT(words, BK_SPAN_WORDS(lo, hi));
                BK_COUNT(sat_adds, 1);
            }
            acc[o] = s;
            BK_COUNT(elements, fan_in);
        }
    }
}
