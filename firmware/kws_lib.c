/* Keyword spotting as a library: see kws_lib.h. The same pipeline as the firmware's
 * firmware/app/kws.c (front-end row per hop, window, streaming network every `stride`
 * rows, detector), without the board: no timers, no globals. */
#include "kws_lib.h"

#include <string.h>

size_t bk_kws_mem_bytes(const bk_model_t *m) {
    return BK_KWS_MEM_BYTES(m->n_frames, m->n_mels, bk_stream_state_words(m, 1u),
                            bk_stream_work_words(m));
}

void bk_kws_default_config(const bk_model_t *m, bk_kws_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->stride = 5u;
    cfg->det.n_classes = (uint8_t)(m->n_classes <= BK_DET_MAX_CLASSES ? m->n_classes : 0u);
    cfg->det.smooth = 3u;
    cfg->det.temp_shift = 0u;
    cfg->det.refractory = 50u; /* 1 s of 20 ms hops */
    for (unsigned c = 0; c < cfg->det.n_classes; c++)
        cfg->det.thr[c] = m->labels[c][0] == '_' ? BK_DET_NEVER : 19661u; /* 0.6 */
}

int bk_kws_init(bk_kws_t *k, const bk_model_t *m, const bk_kws_config_t *cfg, void *mem,
                size_t mem_bytes, bk_kws_callback_t callback, void *user) {
    if (m->frontend->frame_len > BK_FE_MAX_FRAME || m->n_mels > BK_KWS_MAX_MELS ||
        m->n_classes > BK_DET_MAX_CLASSES || m->n_classes < 1u)
        return BK_KWS_ERR_MODEL;
    if (!mem || ((uintptr_t)mem & 3u) || mem_bytes < bk_kws_mem_bytes(m)) return BK_KWS_ERR_MEM;
    bk_kws_config_t def;
    if (!cfg) {
        bk_kws_default_config(m, &def);
        cfg = &def;
    }
    if (cfg->stride < 1u || cfg->det.n_classes != m->n_classes || bk_det_config_check(&cfg->det))
        return BK_KWS_ERR_CONFIG;
    memset(k, 0, sizeof(*k));
    k->model = m;
    k->cfg = *cfg;
    k->callback = callback;
    k->user = user;
    k->window = (int8_t *)mem;
    k->state = (uint32_t *)((uint8_t *)mem + BK_KWS_WINDOW_BYTES(m->n_frames, m->n_mels));
    k->work = k->state + bk_stream_state_words(m, 1u);
    bk_det_init(&k->det, &k->cfg.det);
    bk_kws_reset(k);
    return BK_KWS_OK;
}

void bk_kws_reset(bk_kws_t *k) {
    bk_fe_stream_init(&k->fe);
    bk_det_reset(&k->det);
    bk_stream_init(&k->stream, k->model, 1u, k->state);
    k->frames = 0;
}

void bk_kws_push_features(bk_kws_t *k, const int8_t *row) {
    const bk_model_t *m = k->model;
    const size_t n_mels = m->n_mels, last = (size_t)(m->n_frames - 1u) * n_mels;
    memmove(k->window, k->window + n_mels, last);
    memcpy(k->window + last, row, n_mels);
    k->frames++;
    if (k->frames < m->n_frames || (k->frames - m->n_frames) % k->cfg.stride) return;
    bk_kws_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.frame = k->frames - 1u;
    bk_stream_run(&k->stream, k->window, k->frames - m->n_frames, k->scores, k->work, 0, 0);
    ev.scores = k->scores;
    ev.n_classes = m->n_classes;
    ev.detected = bk_det_push(&k->det, k->scores, ev.frame, &ev.detection);
    if (ev.detected) ev.label = m->labels[ev.detection.label];
    if (k->callback && (ev.detected || (k->cfg.flags & BK_KWS_EVERY_INFERENCE)))
        k->callback(&ev, k->user);
}

void bk_kws_push(bk_kws_t *k, const int16_t *samples, size_t n) {
    int8_t row[BK_KWS_MAX_MELS];
    const bk_model_t *m = k->model;
    while (n) {
        size_t used;
        const int done =
            bk_fe_stream_push(&k->fe, m->frontend, samples, n, &used, row, (bk_fe_work_t *)k->work);
        samples += used;
        n -= used;
        if (done) bk_kws_push_features(k, row);
    }
}
