/* Binary-input layers (pm1 or 01 activations) with binary weights, N-bit accumulator.
 *
 * Fan-in vector of output (t, o), group g, cg = c_in / groups (docs/INTEGER_MODEL.md):
 *   element i = k * cg + c  ->  bit (x[t * stride + k], channel g * cg + c),
 * gathered into one packed vector f (packed like the weight row of o, so element i of
 * both sits at word i / 32, bit i % 32). When groups = 1 and c_in % 32 = 0 the kernel
 * rows are consecutive whole words and f is the input itself: no copy.
 *
 * Exact partial sum of L elements (bits: 1 = +1 weight; 1 = +1 / 1 activation):
 *   pm1:  x, w in {-1,+1}: the product is +1 where the bits agree and -1 where they
 *         differ. With d = popcount(f XOR w) differing bits: (L - d) - d = L - 2 d.
 *   01:   x in {0,1}: the product is w where x = 1 and 0 elsewhere, so it is
 *         popcount(f AND w) - popcount(f AND NOT w) = 2 popcount(f AND w) - popcount(f).
 * Padding bits past the fan-in are 0 in f and in w, so XOR, AND and popcount(f) see
 * nothing there and whole words can be counted.
 * wrap: one sum over the whole vector in uint32 (exact mod 2^32), reduced once.
 * saturate: the vector is cut into tiles of `tile` elements (the last may be shorter);
 *   each tile's exact partial is added with saturation (accumulator.h). Tiles that are a
 *   multiple of 32 elements are whole words; others are counted with edge masks.
 */
#include "accumulator.h"
#include "bnn.h"
#include "popcount.h"

enum { OP_XOR, OP_AND, OP_ONE };

static inline uint32_t combine(uint32_t f, uint32_t w, int op) {
    return op == OP_XOR ? (f ^ w) : op == OP_AND ? (f & w) : f;
}

/* popcount of combine(f, w) over elements [lo, hi), hi > lo. */
static uint32_t count_range(const uint32_t *f, const uint32_t *w, uint32_t lo, uint32_t hi,
                            int op) {
    uint32_t c = 0;
    const uint32_t last = (hi - 1u) >> 5;
    for (uint32_t i = lo >> 5; i <= last; i++) {
        const uint32_t base = i << 5;
        uint32_t m = 0xFFFFFFFFu;
        if (lo > base) m &= 0xFFFFFFFFu << (lo - base);
        if (hi < base + 32u) m &= (1u << (hi - base)) - 1u;
        c += bk_popcount32(combine(f[i], w[i], op) & m);
    }
    return c;
}

/* popcount of combine(f, w) over whole words [w0, w1). */
static inline uint32_t count_words(const uint32_t *f, const uint32_t *w, uint32_t w0,
                                   uint32_t w1, int op) {
    uint32_t c = 0;
    for (uint32_t i = w0; i < w1; i++) c += bk_popcount32(combine(f[i], w[i], op));
    return c;
}

/* Exact partial sum of elements [lo, lo + n). */
static int32_t tile_partial(const bk_layer_t *L, const uint32_t *f, const uint32_t *w,
                            uint32_t lo, uint32_t n, uint32_t fw) {
    uint32_t a, b;
    const int op = L->input == BK_IN_PM1 ? OP_XOR : OP_AND;
    if (((lo | L->tile) & 31u) == 0u) { /* whole words; past the fan-in only zeros */
        const uint32_t w0 = lo >> 5, w1 = (lo + L->tile) >> 5;
        const uint32_t end = w1 < fw ? w1 : fw;
        a = count_words(f, w, w0, end, op);
        b = L->input == BK_IN_PM1 ? 0u : count_words(f, w, w0, end, OP_ONE);
    } else {
        a = count_range(f, w, lo, lo + n, op);
        b = L->input == BK_IN_PM1 ? 0u : count_range(f, w, lo, lo + n, OP_ONE);
    }
    return L->input == BK_IN_PM1 ? (int32_t)n - 2 * (int32_t)a : 2 * (int32_t)a - (int32_t)b;
}

static int32_t dot(const bk_layer_t *L, const uint32_t *f, const uint32_t *w,
                   uint32_t fan_in, uint32_t ones) {
    const uint32_t fw = BK_WORDS(fan_in);
    if (L->acc_mode == BK_ACC_WRAP) {
        if (L->input == BK_IN_PM1)
            return bk_acc_wrap(fan_in - 2u * count_words(f, w, 0, fw, OP_XOR), L->acc_bits);
        return bk_acc_wrap(2u * count_words(f, w, 0, fw, OP_AND) - ones, L->acc_bits);
    }
    int32_t acc = 0;
    for (uint32_t lo = 0; lo < fan_in; lo += L->tile) {
        const uint32_t n = fan_in - lo < L->tile ? fan_in - lo : L->tile;
        acc = bk_acc_sat_add(acc, tile_partial(L, f, w, lo, n, fw), L->acc_bits);
    }
    return acc;
}

uint32_t bk_bconv_bin_scratch_words(const bk_layer_t *L) {
    return BK_WORDS((uint32_t)L->kernel * (L->c_in / L->groups));
}

void bk_bconv_bin_step(const bk_layer_t *L, const uint32_t *x, uint32_t t, int32_t *acc,
                       uint32_t *scratch) {
    const uint32_t cg = (uint32_t)L->c_in / L->groups, og = (uint32_t)L->c_out / L->groups;
    const uint32_t fan_in = (uint32_t)L->kernel * cg, fw = BK_WORDS(fan_in);
    const uint32_t row_words = BK_WORDS(L->c_in);
    const uint32_t *rows = x + (size_t)t * L->stride * row_words;
    const int direct = L->groups == 1u && (L->c_in & 31u) == 0u;
    for (uint32_t g = 0; g < L->groups; g++) {
        const uint32_t *f = rows;
        if (!direct) {
            scratch[fw - 1u] = 0; /* padding bits past the fan-in */
            for (uint32_t k = 0; k < L->kernel; k++)
                bk_bits_copy(scratch, k * cg, rows + (size_t)k * row_words, g * cg, cg);
            f = scratch;
        }
        const uint32_t ones = L->input == BK_IN_01 ? bk_popcount_words(f, fw) : 0u;
        for (uint32_t o = g * og; o < (g + 1u) * og; o++)
            acc[o] = dot(L, f, L->weights + (size_t)o * fw, fan_in, ones);
    }
}
