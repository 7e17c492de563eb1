/* Streaming keyword detector; the rule is written out in detector.h. */
#include "detector.h"

#include <string.h>

/* round(2^15 * 2^(-k/64)), k = 0..63 (tests/test_detector.py checks the formula) */
static const uint16_t EXP2_NEG_Q15[64] = {
    32768, 32415, 32066, 31720, 31379, 31041, 30706, 30376, 30048, 29725, 29405, 29088, 28774,
    28464, 28158, 27855, 27554, 27258, 26964, 26674, 26386, 26102, 25821, 25543, 25268, 24995,
    24726, 24460, 24196, 23936, 23678, 23423, 23170, 22921, 22674, 22430, 22188, 21949, 21713,
    21479, 21247, 21019, 20792, 20568, 20347, 20127, 19911, 19696, 19484, 19274, 19066, 18861,
    18658, 18457, 18258, 18061, 17867, 17674, 17484, 17296, 17109, 16925, 16743, 16562,
};

int bk_det_config_check(const bk_det_config_t *cfg) {
    if (cfg->n_classes < 1u || cfg->n_classes > BK_DET_MAX_CLASSES) return 1;
    if (cfg->smooth < 1u || cfg->smooth > BK_DET_MAX_SMOOTH) return 1;
    if (cfg->temp_shift > BK_DET_MAX_TEMP_SHIFT) return 1;
    return 0;
}

void bk_det_reset(bk_det_t *d) {
    memset(d->hist, 0, sizeof(d->hist));
    memset(d->sums, 0, sizeof(d->sums));
    d->pos = 0;
    d->held = 0;
    d->have_last = 0;
    d->last_frame = 0;
}

void bk_det_init(bk_det_t *d, const bk_det_config_t *cfg) {
    d->cfg = *cfg;
    bk_det_reset(d);
}

void bk_det_posteriors(const int32_t *scores, unsigned n, unsigned temp_shift, uint16_t *post) {
    uint32_t w[BK_DET_MAX_CLASSES];
    int32_t smax = scores[0];
    for (unsigned c = 1; c < n; c++)
        if (scores[c] > smax) smax = scores[c];
    const uint32_t mask = (1u << temp_shift) - 1u;
    uint32_t total = 0;
    for (unsigned c = 0; c < n; c++) {
        /* max - s fits uint32 for any two int32 values */
        const uint32_t v = (uint32_t)((int64_t)smax - (int64_t)scores[c]);
        const uint32_t ipart = v >> temp_shift;
        const uint32_t frac6 = ((v & mask) << 6) >> temp_shift;
        w[c] = ipart >= 16u ? 0u : (uint32_t)EXP2_NEG_Q15[frac6] >> ipart;
        total += w[c];
    }
    for (unsigned c = 0; c < n; c++) post[c] = (uint16_t)((w[c] << 15) / total);
}

int bk_det_push(bk_det_t *d, const int32_t *scores, uint32_t frame, bk_detection_t *out) {
    const unsigned n = d->cfg.n_classes;
    uint16_t *slot = d->hist[d->pos];
    uint16_t post[BK_DET_MAX_CLASSES];
    bk_det_posteriors(scores, n, d->cfg.temp_shift, post);
    for (unsigned c = 0; c < n; c++) {
        d->sums[c] = d->sums[c] - slot[c] + post[c];
        slot[c] = post[c];
    }
    d->pos = (uint8_t)((d->pos + 1u) % d->cfg.smooth);
    if (d->held < d->cfg.smooth) d->held++;

    if (d->held < d->cfg.smooth) return 0;
    if (d->have_last && frame - d->last_frame < d->cfg.refractory) return 0;
    int best = -1;
    for (unsigned c = 0; c < n; c++) {
        const uint32_t thr = d->cfg.thr[c];
        if (thr > 32768u || d->sums[c] < thr * d->held) continue;
        if (best < 0 || d->sums[c] > d->sums[best]) best = (int)c;
    }
    if (best < 0) return 0;
    out->frame = frame;
    out->label = (uint8_t)best;
    out->posterior = (uint16_t)(d->sums[best] / d->held);
    bk_det_reset(d); /* keeps cfg */
    d->have_last = 1;
    d->last_frame = frame;
    return 1;
}
