/* Integer audio front-end: int16 PCM -> int8 log-mel features.
 *
 * The specification (steps, Q formats, rounding) is written once, in
 * generator/frontend.py and docs/FRONTEND.md; this file implements it bit for bit.
 * Tables come from the integer model (generated C on a board, cffi on the host).
 */
#ifndef BK_FRONTEND_H
#define BK_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

/* Largest frame_len the workspace holds; a board build may set it to its model's frame_len
 * (e.g. -DBK_FE_MAX_FRAME=512u) to save RAM. bk_fe_* never checks it: callers do. */
#ifndef BK_FE_MAX_FRAME
#define BK_FE_MAX_FRAME 1024u
#endif

typedef struct {
    uint16_t sample_rate;     /* Hz (informative) */
    uint16_t frame_len;       /* samples = FFT size, power of two 16..BK_FE_MAX_FRAME */
    uint16_t hop;             /* samples between frames */
    uint16_t n_mels;          /* output bands */
    uint8_t log_frac_bits;    /* F: fractional bits of the integer log2 */
    uint8_t out_shift;        /* S: log2 (Q.F) >> S -> int8 */
    int32_t out_offset;       /* Q.F log2 value mapped to feature 0 */
    const uint16_t *window;   /* [frame_len] Q15 */
    const int16_t *cos_q15;   /* [frame_len/2] */
    const int16_t *sin_q15;   /* [frame_len/2] */
    const uint16_t *mel_start;   /* [n_mels] first FFT bin of band */
    const uint16_t *mel_len;     /* [n_mels] bins in band */
    const uint16_t *mel_weights; /* [sum mel_len] Q12 */
} bk_fe_params_t;

/* FFT workspace, frame_len complex int32 values. */
typedef struct {
    int32_t re[BK_FE_MAX_FRAME];
    int32_t im[BK_FE_MAX_FRAME];
} bk_fe_work_t;

/* Streaming state: holds the last frame_len samples. */
typedef struct {
    int16_t buf[BK_FE_MAX_FRAME];
    uint16_t fill;
} bk_fe_stream_t;

/* Integer log2 of x >= 1 in Q.frac_bits by repeated squaring (spec step 6). */
int32_t bk_ilog2_q(uint64_t x, unsigned frac_bits);

/* One frame: frame_len int16 samples -> n_mels int8 features. */
void bk_fe_frame(const bk_fe_params_t *p, const int16_t *x, int8_t *out, bk_fe_work_t *w);

/* Frames since start-up computed by the 32-bit reference path instead of the 16-bit fast
 * path (frontend.c): their twiddle tables were not make_params' rounded unit circle, for
 * which the fast path is proven to stay in 16 bits. Same features either way. */
uint32_t bk_fe_fallbacks(void);

/* Batch form: n_frames = 1 + (n - frame_len) / hop rows written to out (row-major). */
size_t bk_fe_batch(const bk_fe_params_t *p, const int16_t *x, size_t n, int8_t *out,
                   bk_fe_work_t *w);

void bk_fe_stream_init(bk_fe_stream_t *s);

/* Streaming form: consumes samples from pcm until a frame completes or pcm runs out.
 * Returns 1 and writes n_mels features to out when a frame completed, else 0.
 * *consumed receives the number of samples taken; call again with the rest. */
int bk_fe_stream_push(bk_fe_stream_t *s, const bk_fe_params_t *p, const int16_t *pcm,
                      size_t n, size_t *consumed, int8_t *out, bk_fe_work_t *w);

#endif
