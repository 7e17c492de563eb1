/* Streaming keyword detector: integer posteriors, smoothing, thresholds, refractory time.
 *
 * Integer only, so tools/device/detector.py computes exactly the same detections (tests compare
 * them on random score streams). Per inference window (scores s[c], int32):
 *
 * 1. Posterior (base-2 softmax, Q15). v_c = max(s) - s_c >= 0 in score units; one
 *    factor of 2 in odds is 2^temp_shift units:  i = v_c >> t,  f = ((v_c mod 2^t) << 6) >> t
 *    w_c = EXP2_NEG_Q15[f] >> i   (0 when i >= 16; EXP2_NEG_Q15[k] = round(2^15 * 2^(-k/64)))
 *    p_c = (w_c << 15) / sum(w)    (unsigned, truncating; the top class has w = 2^15)
 * 2. Smoothing: the posteriors of the last `smooth` windows are summed per class.
 *    Nothing fires until `smooth` windows are held (after a start, a reset or a
 *    detection), so one stray window cannot fire on its own.
 * 3. Decision: a class c with thr[c] <= 32768 is a candidate when sum_c >= thr[c] * smooth;
 *    the candidate with the largest sum fires (lowest index on ties), unless fewer than
 *    `refractory` frames have passed since the last detection. The reported posterior
 *    is sum_c / smooth. After a detection the history is cleared.
 */
#ifndef BK_DETECTOR_H
#define BK_DETECTOR_H

#include <stdint.h>

#define BK_DET_MAX_CLASSES 16u
#define BK_DET_MAX_SMOOTH 8u
#define BK_DET_MAX_TEMP_SHIFT 16u
#define BK_DET_NEVER 0xFFFFu /* a threshold that never fires (silence, unknown) */

typedef struct {
    uint8_t n_classes;   /* 1..BK_DET_MAX_CLASSES */
    uint8_t smooth;      /* windows averaged, 1..BK_DET_MAX_SMOOTH */
    uint8_t temp_shift;  /* 0..BK_DET_MAX_TEMP_SHIFT: 2^t score units = a factor 2 in odds */
    uint8_t pad;
    uint16_t refractory; /* frames (hops) after a detection during which none fires */
    uint16_t thr[BK_DET_MAX_CLASSES]; /* Q15 smoothed posterior; > 32768 never fires */
} bk_det_config_t;

typedef struct {
    uint32_t frame;      /* last feature frame of the window that fired */
    uint8_t label;       /* class index */
    uint16_t posterior;  /* smoothed posterior of label, Q15 */
} bk_detection_t;

typedef struct {
    bk_det_config_t cfg;
    uint16_t hist[BK_DET_MAX_SMOOTH][BK_DET_MAX_CLASSES];
    uint32_t sums[BK_DET_MAX_CLASSES];
    uint8_t pos;         /* next history slot */
    uint8_t held;        /* windows in the history, 0..smooth */
    uint8_t have_last;   /* a detection happened since the last reset */
    uint32_t last_frame;
} bk_det_t;

/* 0 when cfg is usable, else BK_ERR_BAD_CONFIG-worthy (returns 1). */
int bk_det_config_check(const bk_det_config_t *cfg);

/* Copies cfg (which must pass bk_det_config_check) and clears the state. */
void bk_det_init(bk_det_t *d, const bk_det_config_t *cfg);

/* Forget history and the last detection; keep the configuration. */
void bk_det_reset(bk_det_t *d);

/* Step 1 alone: Q15 posteriors of n scores (n <= BK_DET_MAX_CLASSES). */
void bk_det_posteriors(const int32_t *scores, unsigned n, unsigned temp_shift, uint16_t *post);

/* One window's scores (cfg.n_classes of them). Returns 1 and fills *out on a detection. */
int bk_det_push(bk_det_t *d, const int32_t *scores, uint32_t frame, bk_detection_t *out);

#endif
