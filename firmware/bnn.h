/* bnnkws binary network kernels: the one public header.
 *
 * Everything here computes the integer model of docs/INTEGER_MODEL.md bit for bit
 * (numpy reference: generator/integer/intmodel.py). Layouts:
 *   int8 features     [T][C] int8, time-major, channel-minor
 *   binary activation [T][W] uint32, W = BK_WORDS(C): channel i of a step in word i / 32,
 *                     bit i % 32 (LSB first); bit 1 = the positive value (+1 for pm1,
 *                     1 for 01); unused high bits of the last word are 0
 *   int32 scores      [T][C] int32
 *   binary weights    by row (default): [c_out][BK_WORDS(fan_in)] uint32: the fan-in
 *                     vector of output o, element i = k * cg + c (k = kernel tap, c = channel
 *                     in the group), packed like an activation row; bit 1 = +1.
 *                     by column, where bk_weights_by_column(L) holds (binary-input threshold
 *                     layers that wrap or cannot saturate, 24 or more outputs per group; see
 *                     bconv_bin_col.c): [groups][fan_in][BK_WORDS(c_out / groups)] uint32: for
 *                     group g and element i, bit l of word j is the weight of output
 *                     g * (c_out / groups) + 32 j + l; unused bits 0
 * One source file per operator: bitpack.c, bconv_int8.c, bconv_bin_row.c and
 * bconv_bin_col.c (binary input, weights by row / by column; shared: bconv_bin.h),
 * output_transform.c, pool_or.c, argmax.c; bnn_model.c runs a generated layer table.
 * Multiplications: none per element, word or output channel (adds, shifts, masks and
 * popcounts only). The only products are address arithmetic done once per output time
 * step or group (t * stride * row size, g * channels per group) and in the shape/size
 * helpers; shiftbn applies its +1/-1 sign by negation.
 */
#ifndef BK_BNN_H
#define BK_BNN_H

#include <stddef.h>
#include <stdint.h>

#include "frontend.h"

#define BK_WORDS(bits) (((uint32_t)(bits) + 31u) / 32u)

/* The layer codes of the blob format (docs/FORMAT.md): generator/export/layer_codes.py is
 * their one table, and tests/host/test_c_headers.py checks these enums against it. */
enum { BK_LAYER_CONV = 0, BK_LAYER_POOL_OR = 1 };
enum { BK_IN_INT8 = 0, BK_IN_PM1 = 1, BK_IN_01 = 2 };
enum { BK_OUT_THRESHOLD = 0, BK_OUT_SHIFTBN = 1 };
enum { BK_ACT_PM1 = 0, BK_ACT_01 = 1, BK_ACT_NONE = 255 };
enum { BK_ACC_WRAP = 0, BK_ACC_SATURATE = 1 };

/* One layer of a generated layer table. For BK_LAYER_POOL_OR only kernel (= stride),
 * c_in = c_out (channels), t_in and t_out are used. */
typedef struct {
    uint8_t kind;     /* BK_LAYER_* */
    uint8_t input;    /* BK_IN_* */
    uint8_t output;   /* BK_OUT_* */
    uint8_t out_act;  /* BK_ACT_* (threshold output) */
    uint8_t acc_bits; /* N, 4..32 */
    uint8_t acc_mode; /* BK_ACC_* */
    uint16_t tile;    /* saturate: elements per exact partial sum */
    uint16_t c_in, c_out, kernel, stride, groups;
    uint16_t t_in, t_out;    /* compile-time shapes of this layer in its model */
    const uint32_t *weights; /* [c_out][BK_WORDS(kernel * c_in / groups)] */
    const int32_t *thr;      /* threshold: [c_out] */
    const uint8_t *flip;     /* threshold: [c_out], 1 = compare acc <= thr */
    const int32_t *mu;       /* shiftbn: [c_out] */
    const int32_t *beta;     /* shiftbn: [c_out] */
    const int8_t *shift;     /* shiftbn: [c_out], -16..16 */
    const int8_t *sign;      /* shiftbn: [c_out], +1 or -1 */
} bk_layer_t;

typedef struct {
    uint16_t n_layers;
    uint16_t n_frames; /* T of the features */
    uint16_t n_mels;   /* C of the features */
    uint16_t n_classes;
    uint32_t work_words; /* uint32 words of work memory bk_model_run needs */
    const bk_layer_t *layers;
    const bk_fe_params_t *frontend;
    const char *const *labels; /* [n_classes] */
    const char *hash;          /* sha256 (hex) of the integer model blob body */
} bk_model_t;

/* ---- bitpack.c: the packing order above -------------------------------------------- */
void bk_pack_bits(const uint8_t *bits, uint32_t n, uint32_t *words);   /* bits[i] & 1 */
void bk_unpack_bits(const uint32_t *words, uint32_t n, uint8_t *bits); /* 0 or 1 */
/* Copy n bits from src (starting at bit src_off) to dst (at bit dst_off); other bits of
 * dst are kept. Reads only words that hold copied bits. */
void bk_bits_copy(uint32_t *dst, uint32_t dst_off, const uint32_t *src, uint32_t src_off,
                  uint32_t n);
/* Sum of popcounts of n words (the variant chosen in popcount.h). */
uint32_t bk_popcount_words(const uint32_t *words, uint32_t n);
/* The two popcount variants, exported for tests. */
uint32_t bk_popcount32_portable(uint32_t x);
uint32_t bk_popcount32_instruction(uint32_t x);

/* ---- accumulator.c: N-bit accumulation of exact partial sums (accumulator.h) ------- */
int32_t bk_accumulate(const int32_t *partials, uint32_t n, unsigned bits, unsigned mode);

/* ---- bconv_int8.c / bconv_bin_row.c / bconv_bin_col.c: one output time step ------- */
/* acc[c_out] for step t of a layer with int8 input x [t_in][c_in];
 * scratch: bk_bconv_int8_scratch_words(L) words. */
void bk_bconv_int8_step(const bk_layer_t *L, const int8_t *x, uint32_t t, int32_t *acc,
                        uint32_t *scratch);
uint32_t bk_bconv_int8_scratch_words(const bk_layer_t *L);
/* Threshold layers: output bits y [BK_WORDS(c_out)] of step t (the transform fused where
 * the kernel can); scratch: bk_layer_scratch_words(L) words (an accumulator row first). */
void bk_bconv_int8_step_bits(const bk_layer_t *L, const int8_t *x, uint32_t t, uint32_t *y,
                             uint32_t *scratch);
/* acc[c_out] for step t of a layer with binary input x [t_in][BK_WORDS(c_in)];
 * scratch: bk_bconv_bin_scratch_words(L) words. */
void bk_bconv_bin_step(const bk_layer_t *L, const uint32_t *x, uint32_t t, int32_t *acc,
                       uint32_t *scratch);
uint32_t bk_bconv_bin_scratch_words(const bk_layer_t *L);
/* 1 when L's weights are stored by column (the layout note above), else 0. */
int bk_weights_by_column(const bk_layer_t *L);
/* Column layers: output bits y [BK_WORDS(c_out)] of step t, the threshold fused (no
 * accumulator row). bk_bconv_bin_prepare fills the scratch's threshold part once per
 * layer call; the same scratch then serves every step. */
void bk_bconv_bin_prepare(const bk_layer_t *L, uint32_t *scratch);
/* The same with the prepared part in its own memory pr (bk_bconv_bin_prep_words(L) words),
 * kept as long as the caller likes: the streaming inference prepares each column layer
 * once per stream instead of once per window (bnn_stream.c). The lanes' weight counts in
 * it are made by the first step that needs them and then reused. */
uint32_t bk_bconv_bin_prep_words(const bk_layer_t *L);
void bk_bconv_bin_prepare_at(const bk_layer_t *L, uint32_t *pr);
void bk_bconv_bin_step_bits_at(const bk_layer_t *L, const uint32_t *x, uint32_t t, uint32_t *y,
                               uint32_t *scratch, uint32_t *pr);
void bk_bconv_bin_step_bits(const bk_layer_t *L, const uint32_t *x, uint32_t t, uint32_t *y,
                            uint32_t *scratch);

/* ---- output_transform.c ----------------------------------------------------------- */
int bk_threshold(int32_t acc, int32_t thr, uint8_t flip); /* 1 or 0 */
int32_t bk_shiftbn(int32_t acc, int32_t mu, int8_t shift, int8_t sign, int32_t beta);
/* One time step: acc[c_out] -> packed bits [BK_WORDS(c_out)] or int32 [c_out]. */
void bk_threshold_row(const bk_layer_t *L, const int32_t *acc, uint32_t *bits);
/* The same rule on n accumulators with their thr, flip: packed bits [BK_WORDS(n)]. */
void bk_threshold_bits(const int32_t *acc, const int32_t *thr, const uint8_t *flip, uint32_t n,
                       uint32_t *bits);
void bk_shiftbn_row(const bk_layer_t *L, const int32_t *acc, int32_t *out);

/* ---- pool_or.c --------------------------------------------------------------------- */
/* y[t] = OR of x[t*kernel .. t*kernel + kernel - 1], rows of `words` words;
 * t_out = t_in / kernel rows. */
void bk_pool_or(const uint32_t *x, uint32_t t_in, uint32_t words, uint32_t kernel,
                uint32_t *y);

/* ---- argmax.c ---------------------------------------------------------------------- */
uint32_t bk_argmax_i32(const int32_t *v, uint32_t n); /* first index of the maximum */

/* ---- bnn_model.c: layers and whole networks ---------------------------------------- */
uint32_t bk_layer_out_len(const bk_layer_t *L, uint32_t t_in);
/* Words of one output row: BK_WORDS(c_out) for bits, c_out for int32 scores. */
uint32_t bk_layer_row_words(const bk_layer_t *L);
/* Scratch words that bk_layer_forward / bk_conv_accumulate need: one accumulator row
 * (c_out) plus the kernel's own scratch. */
uint32_t bk_layer_scratch_words(const bk_layer_t *L);
/* Accumulators acc[t_out][c_out] of a conv layer over an input of t_in steps. */
void bk_conv_accumulate(const bk_layer_t *L, const void *x, uint32_t t_in, int32_t *acc,
                        uint32_t *scratch);
/* Output y of one layer (bits rows, or int32 rows) over an input of t_in steps. */
void bk_layer_forward(const bk_layer_t *L, const void *x, uint32_t t_in, void *y,
                      uint32_t *scratch);
/* One output step at a time (bk_layer_forward is these two over every step): the layer's
 * kernel path (BK_PATH_*) after its once-per-call preparation in scratch (the column
 * kernel's threshold planes), then output step t of input x into the row y. The scratch
 * must stay untouched between bk_layer_begin and the steps that follow it. */
enum { BK_PATH_POOL = 0, BK_PATH_COLUMN = 1, BK_PATH_INT8_BITS = 2, BK_PATH_ACC = 3 };
int bk_layer_begin(const bk_layer_t *L, uint32_t *scratch);
void bk_layer_step(const bk_layer_t *L, int path, const void *x, uint32_t t, void *y,
                   uint32_t *scratch);
/* The largest bk_layer_scratch_words of m's layers. */
uint32_t bk_model_scratch_words(const bk_model_t *m);
/* Words of work memory bk_model_run needs (equals m->work_words of generated models). */
uint32_t bk_model_work_words_needed(const bk_model_t *m);
/* Scores [n_classes] of features [n_frames][n_mels]; returns the predicted class. */
uint32_t bk_model_run(const bk_model_t *m, const int8_t *feats, int32_t *scores,
                      uint32_t *work);
/* bk_model_run calling after_layer(i, ctx) when layer i is done (the firmware times the
 * layers with it, firmware/app/kws.c); after_layer may be NULL. */
typedef void (*bk_layer_done_fn)(uint32_t i, void *ctx);
uint32_t bk_model_run_each(const bk_model_t *m, const int8_t *feats, int32_t *scores,
                           uint32_t *work, bk_layer_done_fn after_layer, void *ctx);

/* ---- bnn_stream.c: streaming inference ------------------------------------------------
 * The scores of bk_model_run on a window, computing only the time steps the previous
 * windows did not. Output step t of layer i on the window whose first feature row is the
 * stream's frame `start` depends on the frames start + S_i t .. onwards only (S_i: the
 * product of the strides and pooling factors of layers 0..i), never on where the window
 * starts. So each hidden layer keeps its outputs in a ring keyed by that absolute position
 * p = start + S_i t (a tag per slot); a window computes, layer by layer, only the positions
 * its ring does not hold, each from the rows it reads of the layer below (gathered from
 * that layer's ring; the features for layer 0). The last layer runs once per window.
 * Results equal bk_model_run on the same window bit for bit for any sequence of windows
 * (tests/codegen/test_stream.py); the stride only sizes the rings:
 *   ring i holds R_i = (T_i - 1) S_i / g_i + 1 rows, g_i = gcd(stride, S_i),
 * enough for one window whatever its start, with slot (p / g_i) mod R_i. When every window
 * starts `stride` frames after the last one, layer i computes stride / g_i new steps per
 * window (at stride 4 on a net of total stride 4: 2, 2, 1, 1, 1 instead of 24, 22, 11, 9, 7).
 * Positions are uint32 frame counts: a stream longer than 2^32 - n_frames frames must be
 * reset (bk_stream_reset). */
typedef struct {
    const bk_model_t *model;
    uint32_t *state;  /* bk_stream_state_words(model, stride) words: the rings and tags */
    uint16_t stride;  /* the stride the rings are sized for */
    uint32_t steps;   /* output steps computed since init or reset (all layers) */
} bk_stream_t;
/* Words of ring state for windows `stride` frames apart (stride 1: any stride at full
 * efficiency; generated models: BK_MODEL_STREAM_WORDS). */
uint32_t bk_stream_state_words(const bk_model_t *m, uint32_t stride);
/* Words of work memory for bk_stream_run (gathered inputs and a layer's scratch; not
 * kept between windows: may share memory with the front-end's FFT work). */
uint32_t bk_stream_work_words(const bk_model_t *m);
/* state: bk_stream_state_words(m, stride) words; stride >= 1. Starts empty. */
void bk_stream_init(bk_stream_t *s, const bk_model_t *m, uint32_t stride, uint32_t *state);
/* Forget every stored step (a new stream). */
void bk_stream_reset(bk_stream_t *s);
/* Scores [n_classes] of the window feats [n_frames][n_mels] whose first row is frame
 * `start` of the stream; returns the predicted class. after_layer as in bk_model_run_each
 * (called for every layer, also one that had nothing new to compute). */
uint32_t bk_stream_run(bk_stream_t *s, const int8_t *feats, uint32_t start, int32_t *scores,
                       uint32_t *work, bk_layer_done_fn after_layer, void *ctx);

/* ---- operation counters (host library built with BK_COUNT_OPS=1 only) -------------
 * The operations these kernels execute, in the units of the accelerator model
 * (tools/bench/accelerator_model.py), counted where they are executed: a safe prefix summed
 * without saturation counts no saturating adds, the column kernel counts the column words
 * (32 outputs' weights of one element) it adds and 32 products per word.
 * tests/bench/test_accelerator.py relates them to the model's counts. Without BK_COUNT_OPS,
 * BK_COUNT expands to nothing and its arguments are never evaluated: the firmware and the
 * default host library pay nothing. The counters live in bconv_bin_row.c. */
typedef struct {
    uint64_t elements;   /* fan-in products: XNOR/AND bits, int8 adds/subtracts */
    uint64_t words;      /* weight words read (row: 32 elements of one output; column: 1 of 32) */
    uint64_t sat_adds;   /* saturating additions of a partial into an accumulator */
    uint64_t thresholds; /* threshold comparisons (one per output bit) */
    uint64_t shiftbns;   /* shift-BN outputs (one per score) */
    uint64_t pool_ors;   /* ORs of two 32-bit words in OR pooling */
} bk_op_counts_t;
#if defined(BK_COUNT_OPS) && BK_COUNT_OPS
extern bk_op_counts_t bk_op_counts;
#define BK_COUNT(field, n) (bk_op_counts.field += (uint64_t)(n))
#else
#define BK_COUNT(field, n) ((void)0)
#endif
/* 32-bit words spanned by the element range [lo, hi), hi > lo */
#define BK_SPAN_WORDS(lo, hi) ((((hi) - 1u) >> 5) - ((lo) >> 5) + 1u)

#endif
