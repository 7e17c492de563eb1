/* Streaming inference: bk_model_run's scores, computing only new time steps (bnn.h).
 *
 * State memory, in uint32 words, for every layer but the last, in layer order:
 *   [tags: R_i][rows: R_i x row_words_i][prepared: bk_bconv_bin_prep_words, column layers]
 * A column layer's prepared thresholds and weight counts depend on its parameters only:
 * made once per stream (bk_stream_reset) instead of once per window, they save what
 * bk_layer_begin costs per window.
 * Work memory: [gathered input: max over layers i >= 1 of kernel_i x BK_WORDS(c_in_i)]
 *              [scratch: max over layers of bk_layer_scratch_words]
 * The generator computes the same state size for stride 1 (generator/codegen/emit_c.py
 * stream_state_words, BK_MODEL_STREAM_WORDS) and the same work size
 * (BK_MODEL_STREAM_WORK_WORDS); tests/codegen/test_stream.py checks both agree.
 */
#include <string.h>

#include "bnn.h"

#define NO_STEP 0xFFFFFFFFu /* tag of an empty slot: not a position of any window */

static uint32_t gcd_u32(uint32_t a, uint32_t b) {
    while (b) {
        const uint32_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* Steps of layer L's output per step of its input: the conv stride or the pooling factor. */
static uint32_t layer_step(const bk_layer_t *L) {
    return L->kind == BK_LAYER_POOL_OR ? L->kernel : L->stride;
}

/* Ring geometry of a hidden layer: slots, and the position granule g. */
typedef struct {
    uint32_t slots, granule, row_words;
    uint32_t *tags, *rows;
} ring_t;

/* Words of a hidden layer's prepared part in the state (column layers only). */
static uint32_t prep_words(const bk_layer_t *L) {
    return bk_weights_by_column(L) ? bk_bconv_bin_prep_words(L) : 0u;
}

static void ring_shape(ring_t *r, uint32_t t_out, uint32_t s_out, uint32_t stride,
                       uint32_t row_words) {
    r->granule = gcd_u32(stride, s_out);
    r->slots = (t_out - 1u) * (s_out / r->granule) + 1u;
    r->row_words = row_words;
}

static inline uint32_t ring_slot(const ring_t *r, uint32_t p) {
    return (p / r->granule) % r->slots;
}

uint32_t bk_stream_state_words(const bk_model_t *m, uint32_t stride) {
    uint32_t t = m->n_frames, s = 1, words = 0;
    if (stride < 1u) stride = 1u;
    for (uint32_t i = 0; i + 1u < m->n_layers; i++) {
        const bk_layer_t *L = &m->layers[i];
        ring_t r;
        t = bk_layer_out_len(L, t);
        s *= layer_step(L);
        ring_shape(&r, t, s, stride, bk_layer_row_words(L));
        words += r.slots * (1u + r.row_words) + prep_words(L);
    }
    return words;
}

static uint32_t gather_words(const bk_model_t *m) {
    uint32_t most = 0;
    for (uint32_t i = 1; i < m->n_layers; i++) {
        const bk_layer_t *L = &m->layers[i];
        const uint32_t need = (uint32_t)L->kernel * BK_WORDS(L->c_in);
        if (need > most) most = need;
    }
    return most;
}

uint32_t bk_stream_work_words(const bk_model_t *m) {
    return gather_words(m) + bk_model_scratch_words(m);
}

void bk_stream_init(bk_stream_t *st, const bk_model_t *m, uint32_t stride, uint32_t *state) {
    st->model = m;
    st->state = state;
    st->stride = (uint16_t)(stride < 1u ? 1u : stride);
    bk_stream_reset(st);
}

void bk_stream_reset(bk_stream_t *st) {
    const bk_model_t *m = st->model;
    uint32_t t = m->n_frames, s = 1;
    uint32_t *at = st->state;
    for (uint32_t i = 0; i + 1u < m->n_layers; i++) {
        const bk_layer_t *L = &m->layers[i];
        ring_t r;
        t = bk_layer_out_len(L, t);
        s *= layer_step(L);
        ring_shape(&r, t, s, st->stride, bk_layer_row_words(L));
        for (uint32_t k = 0; k < r.slots; k++) at[k] = NO_STEP;
        at += r.slots * (1u + r.row_words);
        if (prep_words(L)) bk_bconv_bin_prepare_at(L, at);
        at += prep_words(L);
    }
    st->steps = 0;
}

uint32_t bk_stream_run(bk_stream_t *st, const int8_t *feats, uint32_t start, int32_t *scores,
                       uint32_t *work, bk_layer_done_fn after_layer, void *ctx) {
    const bk_model_t *m = st->model;
    uint32_t *gather = work, *scratch = work + gather_words(m), *at = st->state;
    ring_t below = {0, 1, 0, 0, 0}, ring = {0, 1, 0, 0, 0};
    uint32_t t = m->n_frames, s_in = 1;
    for (uint32_t i = 0; i < m->n_layers; i++) {
        const bk_layer_t *L = &m->layers[i];
        const uint32_t t_out = bk_layer_out_len(L, t), s_out = s_in * layer_step(L);
        const int last = i + 1u == m->n_layers;
        uint32_t *prep = 0; /* a hidden column layer's prepared part, made at reset */
        if (!last) {
            ring_shape(&ring, t_out, s_out, st->stride, bk_layer_row_words(L));
            ring.tags = at;
            ring.rows = at + ring.slots;
            at += ring.slots * (1u + ring.row_words);
            if (prep_words(L)) prep = at;
            at += prep_words(L);
        }
        const uint32_t in_words = BK_WORDS(L->c_in), taps = L->kernel;
        int path = -1;
        for (uint32_t k = 0; k < t_out; k++) {
            const uint32_t p = start + s_out * k;
            void *y = scores;
            uint32_t slot = 0;
            if (!last) {
                slot = ring_slot(&ring, p);
                if (ring.tags[slot] == p) continue; /* computed for an earlier window */
                y = ring.rows + (size_t)slot * ring.row_words;
            }
            if (path < 0) path = prep ? BK_PATH_COLUMN : bk_layer_begin(L, scratch);
            const void *x;
            if (i == 0) {
                x = feats + (size_t)(p - start) * m->n_mels;
            } else { /* the taps p, p + S, ..., of the layer below, gathered into one run */
                for (uint32_t j = 0; j < taps; j++) {
                    const uint32_t q = ring_slot(&below, p + s_in * j);
                    memcpy(gather + (size_t)j * in_words, below.rows + (size_t)q * below.row_words,
                           in_words * sizeof(uint32_t));
                }
                x = gather;
            }
            if (prep)
                bk_bconv_bin_step_bits_at(L, (const uint32_t *)x, 0, (uint32_t *)y, scratch + L->c_out,
                                          prep);
            else
                bk_layer_step(L, path, x, 0, y, scratch);
            if (!last) ring.tags[slot] = p;
            st->steps++;
        }
        if (after_layer) after_layer(i, ctx);
        below = ring;
        s_in = s_out;
        t = t_out;
    }
    return bk_argmax_i32(scores, m->n_classes);
}
