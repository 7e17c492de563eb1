/* Layers and whole networks from a generated layer table (bnn.h, bk_model_t).
 *
 * Work memory of bk_model_run, in uint32 words:
 *   [ping: A][pong: A][scratch: S]
 *   A = max over layers of t_out * row_words (the largest activation), layer i writes
 *       ping (i even) or pong (i odd) and reads the other one (the features for i = 0);
 *   S = max over layers of bk_layer_scratch_words: one accumulator row (c_out int32)
 *       plus the kernel's scratch (quad tables, or the gathered fan-in and range counts).
 * The generator computes the same number (generator/codegen/emit_c.py work_words) and emits it
 * as bk_model_t.work_words; a test checks both agree.
 */
#include "bnn.h"

uint32_t bk_layer_out_len(const bk_layer_t *L, uint32_t t_in) {
    if (L->kind == BK_LAYER_POOL_OR) return t_in / L->kernel;
    if (t_in < L->kernel) return 0;
    return (t_in - L->kernel) / L->stride + 1u;
}

uint32_t bk_layer_row_words(const bk_layer_t *L) {
    if (L->kind == BK_LAYER_CONV && L->output == BK_OUT_SHIFTBN) return L->c_out;
    return BK_WORDS(L->c_out);
}

uint32_t bk_layer_scratch_words(const bk_layer_t *L) {
    if (L->kind != BK_LAYER_CONV) return 0;
    return L->c_out + (L->input == BK_IN_INT8 ? bk_bconv_int8_scratch_words(L)
                                              : bk_bconv_bin_scratch_words(L));
}

static void conv_step(const bk_layer_t *L, const void *x, uint32_t t, int32_t *acc,
                      uint32_t *fan) {
    if (L->input == BK_IN_INT8)
        bk_bconv_int8_step(L, (const int8_t *)x, t, acc, fan);
    else
        bk_bconv_bin_step(L, (const uint32_t *)x, t, acc, fan);
}

void bk_conv_accumulate(const bk_layer_t *L, const void *x, uint32_t t_in, int32_t *acc,
                        uint32_t *scratch) {
    const uint32_t t_out = bk_layer_out_len(L, t_in);
    for (uint32_t t = 0; t < t_out; t++) conv_step(L, x, t, acc + (size_t)t * L->c_out, scratch);
}

int bk_layer_begin(const bk_layer_t *L, uint32_t *scratch) {
    if (L->kind == BK_LAYER_POOL_OR) return BK_PATH_POOL;
    if (bk_weights_by_column(L)) { /* threshold fused into the kernel: bits directly */
        bk_bconv_bin_prepare(L, scratch + L->c_out);
        return BK_PATH_COLUMN;
    }
    if (L->input == BK_IN_INT8 && L->output == BK_OUT_THRESHOLD) return BK_PATH_INT8_BITS;
    return BK_PATH_ACC;
}

void bk_layer_step(const bk_layer_t *L, int path, const void *x, uint32_t t, void *y,
                   uint32_t *scratch) {
    switch (path) {
    case BK_PATH_POOL: {
        const uint32_t words = BK_WORDS(L->c_in);
        bk_pool_or((const uint32_t *)x + (size_t)t * L->kernel * words, L->kernel, words,
                   L->kernel, (uint32_t *)y);
        return;
    }
    case BK_PATH_COLUMN:
        bk_bconv_bin_step_bits(L, (const uint32_t *)x, t, (uint32_t *)y, scratch + L->c_out);
        return;
    case BK_PATH_INT8_BITS:
        bk_bconv_int8_step_bits(L, (const int8_t *)x, t, (uint32_t *)y, scratch);
        return;
    default: {
        int32_t *acc = (int32_t *)scratch; /* one row of accumulators, then the fan-in */
        conv_step(L, x, t, acc, scratch + L->c_out);
        if (L->output == BK_OUT_SHIFTBN)
            bk_shiftbn_row(L, acc, (int32_t *)y);
        else
            bk_threshold_row(L, acc, (uint32_t *)y);
    }
    }
}

void bk_layer_forward(const bk_layer_t *L, const void *x, uint32_t t_in, void *y,
                      uint32_t *scratch) {
    if (L->kind == BK_LAYER_POOL_OR) {
        bk_pool_or((const uint32_t *)x, t_in, BK_WORDS(L->c_in), L->kernel, (uint32_t *)y);
        return;
    }
    const uint32_t t_out = bk_layer_out_len(L, t_in), row = bk_layer_row_words(L);
    const int path = bk_layer_begin(L, scratch);
    for (uint32_t t = 0; t < t_out; t++)
        bk_layer_step(L, path, x, t, (uint32_t *)y + (size_t)t * row, scratch);
}

static uint32_t activation_words(const bk_model_t *m) {
    uint32_t t = m->n_frames, most = 0;
    for (uint32_t i = 0; i < m->n_layers; i++) {
        const bk_layer_t *L = &m->layers[i];
        t = bk_layer_out_len(L, t);
        const uint32_t need = t * bk_layer_row_words(L);
        if (need > most) most = need;
    }
    return most;
}

uint32_t bk_model_scratch_words(const bk_model_t *m) {
    uint32_t scratch = 0;
    for (uint32_t i = 0; i < m->n_layers; i++) {
        const uint32_t s = bk_layer_scratch_words(&m->layers[i]);
        if (s > scratch) scratch = s;
    }
    return scratch;
}

uint32_t bk_model_work_words_needed(const bk_model_t *m) {
    return 2u * activation_words(m) + bk_model_scratch_words(m);
}

uint32_t bk_model_run(const bk_model_t *m, const int8_t *feats, int32_t *scores,
                      uint32_t *work) {
    return bk_model_run_each(m, feats, scores, work, 0, 0);
}

uint32_t bk_model_run_each(const bk_model_t *m, const int8_t *feats, int32_t *scores,
                           uint32_t *work, bk_layer_done_fn after_layer, void *ctx) {
    const uint32_t act = activation_words(m);
    uint32_t *buf[2] = {work, work + act};
    uint32_t *scratch = work + 2u * act;
    const void *in = feats;
    uint32_t t = m->n_frames;
    for (uint32_t i = 0; i < m->n_layers; i++) {
        const bk_layer_t *L = &m->layers[i];
        bk_layer_forward(L, in, t, buf[i & 1u], scratch);
        t = bk_layer_out_len(L, t);
        in = buf[i & 1u];
        if (after_layer) after_layer(i, ctx);
    }
    const int32_t *last = (const int32_t *)in; /* [1][n_classes] scores */
    for (uint32_t c = 0; c < m->n_classes; c++) scores[c] = last[c];
    return bk_argmax_i32(scores, m->n_classes);
}
