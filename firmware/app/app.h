/* Firmware application: configuration and the pieces main.c wires together.
 *
 *   link.c    frames in and out over the board UART: sequence numbers, ACK/NAK, dispatch
 *   kws.c     streaming keyword spotting: PCM -> front-end (one frame per hop) -> feature
 *             window -> network every `stride` frames (new time steps only) -> detector
 *   main.c    start-up and the receive loop
 * Everything board-specific goes through board.h.
 */
#ifndef BK_APP_H
#define BK_APP_H

#include <stdint.h>

#include "detector.h"
#include "model.h"

#define BK_FIRMWARE_VERSION "0.1.0"

/* Inference every BK_APP_STRIDE feature frames (hops) once the window is full:
 * 5 x 20 ms = 100 ms. Changeable at run time with a CONFIG message. */
#ifndef BK_APP_STRIDE
#define BK_APP_STRIDE 5u
#endif
/* Streaming inference (firmware/bnn_stream.c): 1 keeps each layer's past outputs in RAM
 * (BK_MODEL_STREAM_WORDS words) and computes only the new time steps; 0 recomputes the
 * whole window every inference (bk_model_run), for parts whose RAM cannot hold that state
 * (`bnnkws build --no-streaming`). The scores are the same bit for bit. */
#ifndef BK_APP_STREAMING
#define BK_APP_STREAMING 1
#endif
/* A partial frame older than this is reported TRUNCATED (NAK) and rescanned. */
#define BK_APP_RX_TIMEOUT_TICKS (BOARD_TICK_HZ / 5u) /* 200 ms */

/* What is sent per inference (CONFIG flags). */
#define BK_APP_SEND_RESULT 0x01u
#define BK_APP_SEND_DETECTION 0x02u
/* Every inference recomputes the whole window (bk_model_run) instead of streaming only
 * the new time steps (bk_stream_run): the reference, for tests and benchmarks. */
#define BK_APP_FULL_WINDOW 0x04u

_Static_assert(BK_MODEL_N_CLASSES <= BK_DET_MAX_CLASSES, "too many classes for the detector");
_Static_assert(BK_MODEL_N_LAYERS <= 32, "STATS carries at most 32 layer timings");

typedef struct {
    uint16_t stride;      /* frames between inferences, >= 1 */
    uint8_t flags;        /* BK_APP_SEND_* */
    bk_det_config_t det;
} kws_config_t;

/* Timer figures (BOARD_TICK_HZ ticks) for STATS. */
typedef struct {
    uint32_t inferences, hops;
    uint32_t infer_last, infer_min, infer_total;
    uint32_t fe_last, fe_max, fe_total;
    uint32_t det_last;
    uint32_t layer[BK_MODEL_N_LAYERS];
} kws_timing_t;

/* What the stream produced for one inference (handed to the link to send). */
typedef struct {
    uint32_t frame; /* index of the window's last feature frame since the stream start */
    int32_t scores[BK_MODEL_N_CLASSES];
    int detected;
    bk_detection_t detection;
} kws_output_t;

typedef void (*kws_emit_fn)(const kws_output_t *out);

/* Stride BK_APP_STRIDE, RESULT and DETECTION sent, and the generated model's detector
 * configuration bk_model_detector (model.h: its calibrated one, else the defaults of
 * generator/export/detector_config.py). */
void kws_default_config(kws_config_t *cfg);
/* Returns 0 when cfg is valid (stride >= 1, detector config valid for this model). */
int kws_set_config(const kws_config_t *cfg);
const kws_config_t *kws_config(void);
void kws_reset(void);
/* n int16 samples (any count, any alignment of frames). */
void kws_push_audio(const int16_t *pcm, uint32_t n, kws_emit_fn emit);
/* One feature row of BK_MODEL_N_MELS int8 values. */
void kws_push_features(const int8_t *row, kws_emit_fn emit);
const kws_timing_t *kws_timing(void);

/* link.c */
void link_init(void);
void link_poll(void); /* read what arrived, handle whole frames; sleeps when idle */

#endif
