/* Keyword spotting as a library: PCM in, detections out, three calls.
 *
 *     static uint32_t mem[BK_KWS_MEM_WORDS(BK_MODEL_N_FRAMES, BK_MODEL_N_MELS,
 *                                          BK_MODEL_STREAM_WORDS, BK_MODEL_STREAM_WORK_WORDS)];
 *     static bk_kws_t kws;
 *     bk_kws_init(&kws, &bk_model, NULL, mem, sizeof mem, on_event, user);
 *     bk_kws_push(&kws, samples, n);        (any number of int16 samples, any split)
 *     void on_event(const bk_kws_event_t *ev, void *user) { ... ev->label ... }
 *
 * The pipeline is the firmware's (firmware/app/kws.c): the integer front-end makes one
 * int8 feature row per hop (frontend.h); the rows fill a window of n_frames rows (oldest
 * first); once it is full, the network runs on the window every `stride` rows,
 * computing only the time steps earlier windows did not (bk_stream_run, bnn.h: the scores
 * of bk_model_run bit for bit), and the streaming detector (detector.h) turns the scores
 * into detections. Everything is integer and bit-exact with the host library and the numpy
 * reference (generator/integer/intmodel.py, tools/device/detector.py).
 *
 * Memory: bk_kws_t holds the stream and detector state; `mem` (word-aligned, at least
 * bk_kws_mem_bytes(model) bytes) holds the feature window, the layers' past outputs
 * (streaming state) and the work area that the front-end's FFT and the network share
 * (they are never live at the same time). No
 * allocation, no globals: several instances can run side by side. Not re-entrant per
 * instance (one bk_kws_push at a time on one bk_kws_t).
 *
 * The front-end's buffers are sized by BK_FE_MAX_FRAME (frontend.h): every file that
 * includes this header must see the same value (the library's build files set it to
 * the model's frame length). bk_kws_init refuses a model with a longer frame.
 */
#ifndef BK_KWS_LIB_H
#define BK_KWS_LIB_H

#include <stddef.h>
#include <stdint.h>

#include "bnn.h"
#include "detector.h"
#include "frontend.h"

/* bytes of `mem` for a model of n_frames x n_mels features, stream_words of streaming
 * state and work_words of network work memory (a generated model.h:
 * BK_MODEL_STREAM_WORDS, BK_MODEL_STREAM_WORK_WORDS): the window, the streaming state,
 * then max(FFT work, network work) */
#define BK_KWS_WINDOW_BYTES(n_frames, n_mels) ((((size_t)(n_frames) * (n_mels)) + 3u) & ~(size_t)3u)
#define BK_KWS_MAX(a, b) ((a) > (b) ? (a) : (b))
#define BK_KWS_MEM_BYTES(n_frames, n_mels, stream_words, work_words)                      \
    (BK_KWS_WINDOW_BYTES(n_frames, n_mels) + (size_t)(stream_words) * sizeof(uint32_t) +   \
     BK_KWS_MAX(sizeof(bk_fe_work_t), (size_t)(work_words) * sizeof(uint32_t)))
#define BK_KWS_MEM_WORDS(n_frames, n_mels, stream_words, work_words) \
    ((BK_KWS_MEM_BYTES(n_frames, n_mels, stream_words, work_words) + 3u) / 4u)

/* largest n_mels (one feature row lives on the stack of bk_kws_push) */
#define BK_KWS_MAX_MELS 256u

/* bk_kws_init results */
enum {
    BK_KWS_OK = 0,
    BK_KWS_ERR_MEM = 1,    /* mem is NULL, not word-aligned or smaller than bk_kws_mem_bytes */
    BK_KWS_ERR_CONFIG = 2, /* stride 0, or a detector configuration bk_det_config_check refuses */
    BK_KWS_ERR_MODEL = 3,  /* frame longer than BK_FE_MAX_FRAME, n_mels > BK_KWS_MAX_MELS, or
                              more classes than the detector holds */
};

/* bk_kws_config_t.flags */
#define BK_KWS_EVERY_INFERENCE 0x01u /* call back after every inference, not only on detections */

typedef struct {
    uint16_t stride;     /* feature rows (hops) between inferences, >= 1 (5 = 100 ms) */
    uint8_t flags;       /* BK_KWS_* */
    bk_det_config_t det; /* detector settings, det.n_classes = the model's classes */
} bk_kws_config_t;

/* What the callback receives: one inference (with BK_KWS_EVERY_INFERENCE) or one detection. */
typedef struct {
    uint32_t frame;        /* index of the window's last feature row since the start (or reset) */
    const int32_t *scores; /* [n_classes] scores of the network on that window */
    uint16_t n_classes;
    int detected;                /* 1: `detection` and `label` are valid */
    bk_detection_t detection;    /* frame, class index, smoothed posterior (Q15) */
    const char *label;           /* the detected class's name, else NULL */
} bk_kws_event_t;

typedef void (*bk_kws_callback_t)(const bk_kws_event_t *ev, void *user);

typedef struct {
    const bk_model_t *model;
    bk_kws_config_t cfg;
    bk_kws_callback_t callback;
    void *user;
    int8_t *window;  /* [n_frames][n_mels], in mem */
    uint32_t *state; /* streaming state (bk_stream_state_words(model, 1)), in mem */
    uint32_t *work;  /* FFT work / network work, in mem */
    bk_stream_t stream;
    uint32_t frames; /* feature rows since the start or the last reset */
    bk_fe_stream_t fe;
    bk_det_t det;
    int32_t scores[BK_DET_MAX_CLASSES];
} bk_kws_t;

/* Bytes of `mem` that bk_kws_init needs for model m. */
size_t bk_kws_mem_bytes(const bk_model_t *m);

/* The firmware's defaults for model m: stride 5, detections only, smooth 3, temp_shift 0,
 * refractory 50 rows (1 s), threshold 0.6 (19661 in Q15) for every class whose label does
 * not start with '_' (silence and unknown never fire). */
void bk_kws_default_config(const bk_model_t *m, bk_kws_config_t *cfg);

/* Start an instance: cfg NULL = bk_kws_default_config (generic detector settings; a
 * generated model.h has the model's own in bk_model_detector: copy it into cfg.det).
 * Returns BK_KWS_OK or BK_KWS_ERR_*. */
int bk_kws_init(bk_kws_t *k, const bk_model_t *m, const bk_kws_config_t *cfg, void *mem,
                size_t mem_bytes, bk_kws_callback_t callback, void *user);

/* Feed n mono int16 samples at the model's sample rate; calls back from inside. */
void bk_kws_push(bk_kws_t *k, const int16_t *samples, size_t n);

/* Feed one feature row (n_mels int8 values) instead of audio. */
void bk_kws_push_features(bk_kws_t *k, const int8_t *row);

/* Start over (a new stream): front-end, window and detector history cleared. */
void bk_kws_reset(bk_kws_t *k);

#endif
