/* Streaming keyword spotting on the board: see app.h. */
#include <string.h>

#include "app.h"
#include "bnn.h"
#include "board.h"
#include "frontend.h"

/* The FFT work area and the network's work memory are never live at the same time
 * (a hop finishes before an inference starts), so they share memory. */
static union {
    bk_fe_work_t fe;
    uint32_t net[BK_MODEL_WORK_WORDS]; /* full window (BK_APP_FULL_WINDOW) */
#if BK_APP_STREAMING
    uint32_t stream[BK_MODEL_STREAM_WORK_WORDS]; /* streaming inference */
#endif
} work;
#if BK_APP_STREAMING
/* Streaming inference: each layer's past outputs by stream position (bnn.h bk_stream_t),
 * sized for any stride. */
static uint32_t stream_state[BK_MODEL_STREAM_WORDS];
static bk_stream_t stream;
#endif
static bk_fe_stream_t fe_stream;
/* The last n_frames feature rows, oldest first; shifted by one row per hop. */
static int8_t window[BK_MODEL_N_FRAMES][BK_MODEL_N_MELS];
static uint32_t frames;         /* feature frames since the stream start */
static kws_config_t config;
static bk_det_t detector;
static kws_timing_t timing;

void kws_default_config(kws_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->stride = BK_APP_STRIDE;
    cfg->flags = BK_APP_SEND_RESULT | BK_APP_SEND_DETECTION;
    /* the model's detector configuration: calibrated, or the defaults of
     * generator/export/detector_config.py (written into model.c by emit_c.py) */
    cfg->det = bk_model_detector;
}

int kws_set_config(const kws_config_t *cfg) {
    if (cfg->stride < 1u || cfg->det.n_classes != BK_MODEL_N_CLASSES || bk_det_config_check(&cfg->det))
        return 1;
    config = *cfg;
    bk_det_init(&detector, &config.det);
    return 0;
}

const kws_config_t *kws_config(void) { return &config; }

const kws_timing_t *kws_timing(void) { return &timing; }

void kws_reset(void) {
    bk_fe_stream_init(&fe_stream);
#if BK_APP_STREAMING
    bk_stream_init(&stream, &bk_model, 1u, stream_state);
#endif
    frames = 0;
    bk_det_reset(&detector);
}

/* Per-layer timer reads for STATS, called by bk_model_run_each after each layer. */
static uint32_t layer_t0;
static void layer_done(uint32_t i, void *ctx) {
    (void)ctx;
    const uint32_t t1 = board_ticks();
    timing.layer[i] = t1 - layer_t0;
    layer_t0 = t1;
}

/* The network on the window, whose first row is stream frame `start`: streaming (only the
 * new time steps, firmware/bnn_stream.c) or, with BK_APP_FULL_WINDOW, every layer over the
 * whole window (firmware/bnn_model.c); the scores are the same bit for bit. */
static void run_network(uint32_t start, int32_t *scores) {
    layer_t0 = board_ticks();
#if BK_APP_STREAMING
    if (!(config.flags & BK_APP_FULL_WINDOW)) {
        bk_stream_run(&stream, &window[0][0], start, scores, work.stream, layer_done, 0);
        return;
    }
#else
    (void)start;
#endif
    bk_model_run_each(&bk_model, &window[0][0], scores, work.net, layer_done, 0);
}

/* A new feature row is in the last window row: run the network when it is due. */
static void frame_done(kws_emit_fn emit) {
    frames++;
    if (frames < BK_MODEL_N_FRAMES || (frames - BK_MODEL_N_FRAMES) % config.stride) return;
    kws_output_t out;
    out.frame = frames - 1u;
    const uint32_t t0 = board_ticks();
    run_network(frames - BK_MODEL_N_FRAMES, out.scores);
    const uint32_t t1 = board_ticks();
    out.detected = bk_det_push(&detector, out.scores, out.frame, &out.detection);
    const uint32_t t2 = board_ticks();
    const uint32_t dt = t1 - t0;
    timing.infer_last = dt;
    if (timing.inferences == 0u || dt < timing.infer_min) timing.infer_min = dt;
    timing.infer_total += dt;
    timing.inferences++;
    timing.det_last = t2 - t1;
    emit(&out);
}

void kws_push_audio(const int16_t *pcm, uint32_t n, kws_emit_fn emit) {
    int8_t row[BK_MODEL_N_MELS];
    while (n) {
        size_t used;
        const uint32_t t0 = board_ticks();
        const int done =
            bk_fe_stream_push(&fe_stream, &bk_model_frontend, pcm, n, &used, row, &work.fe);
        const uint32_t dt = board_ticks() - t0;
        pcm += used;
        n -= (uint32_t)used;
        if (!done) continue;
        timing.fe_last = dt;
        if (dt > timing.fe_max) timing.fe_max = dt;
        timing.fe_total += dt;
        timing.hops++;
        kws_push_features(row, emit);
    }
}

void kws_push_features(const int8_t *row, kws_emit_fn emit) {
    memmove(window[0], window[1], (size_t)(BK_MODEL_N_FRAMES - 1u) * BK_MODEL_N_MELS);
    memcpy(window[BK_MODEL_N_FRAMES - 1u], row, BK_MODEL_N_MELS);
    frame_done(emit);
}
