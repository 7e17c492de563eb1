/* Integer audio front-end; see frontend.h and generator/frontend.py for the spec. */
#include "frontend.h"

#include <string.h>

static unsigned bit_length32(uint32_t x) {
    unsigned n = 0;
    while (x) {
        n++;
        x >>= 1;
    }
    return n;
}

static unsigned bit_length64(uint64_t x) {
    unsigned n = 0;
    if (x >> 32) {
        n = 32;
        x >>= 32;
    }
    return n + bit_length32((uint32_t)x);
}

int32_t bk_ilog2_q(uint64_t x, unsigned frac_bits) {
    /* x in [2^n, 2^(n+1)): mantissa y in [2^30, 2^31) (Q30 value in [1, 2)).
     * Squaring y doubles log2(y); if it reaches 2 the next fractional bit is 1. */
    unsigned n = bit_length64(x) - 1u;
    uint64_t y = (n >= 30u) ? (x >> (n - 30u)) : (x << (30u - n));
    int32_t r = (int32_t)n;
    for (unsigned i = 0; i < frac_bits; i++) {
        y = (y * y) >> 30;
        r <<= 1;
        if (y >= (1ull << 31)) {
            r |= 1;
            y >>= 1;
        }
    }
    return r;
}

static void fft_q15(const bk_fe_params_t *p, int32_t *restrict re, int32_t *restrict im) {
    const unsigned n = p->frame_len;
    const int16_t *restrict cos_t = p->cos_q15;
    const int16_t *restrict sin_t = p->sin_q15;
    /* Radix-2 DIT butterflies with a halving per stage (spec step 3). The product sums
     * fit int32: |b| <= 2^15 + 9 and |w| <= 2^15, so |br*c + bi*s| < 2^31 - 2^14.
     * Loop order: twiddle outer, groups inner, so each twiddle is loaded once per stage. */
    for (unsigned half = 1, stride = n >> 1; half < n; half <<= 1, stride >>= 1) {
        for (unsigned k = 0; k < half; k++) {
            const int32_t c = cos_t[k * stride];
            const int32_t s = sin_t[k * stride];
            for (unsigned ia = k; ia < n; ia += 2u * half) {
                const unsigned ib = ia + half;
                const int32_t br = re[ib], bi = im[ib];
                const int32_t tr = (br * c + bi * s + (1 << 14)) >> 15;
                const int32_t ti = (bi * c - br * s + (1 << 14)) >> 15;
                const int32_t ar = re[ia], ai = im[ia];
                re[ia] = (ar + tr + 1) >> 1;
                im[ia] = (ai + ti + 1) >> 1;
                re[ib] = (ar - tr + 1) >> 1;
                im[ib] = (ai - ti + 1) >> 1;
            }
        }
    }
}

void bk_fe_frame(const bk_fe_params_t *p, const int16_t *x, int8_t *out, bk_fe_work_t *w) {
    const unsigned n = p->frame_len;
    const uint16_t *restrict win = p->window;
    int32_t *restrict re = w->re;
    int32_t *restrict im = w->im;
    int32_t peak = 0;
    /* 1. window, straight into bit-reversed order for the in-place FFT; r = bitrev(i)
     * is advanced by a reversed increment (add 1 at the top bit, carry downwards). */
    for (unsigned i = 0, r = 0; i < n; i++) {
        const int32_t v = ((int32_t)x[i] * (int32_t)win[i] + (1 << 14)) >> 15;
        re[r] = v;
        im[r] = 0;
        const int32_t a = v < 0 ? -v : v;
        if (a > peak) peak = a;
        unsigned bit = n >> 1;
        while (r & bit) {
            r ^= bit;
            bit >>= 1;
        }
        r |= bit;
    }
    /* 2. block normalisation: max|u| in [2^14, 2^15) */
    const unsigned e = peak ? 15u - bit_length32((uint32_t)peak) : 0u;
    if (e) {
        for (unsigned i = 0; i < n; i++) re[i] = (int32_t)((uint32_t)re[i] << e);
    }
    fft_q15(p, re, im); /* 3 */
    const unsigned fb = p->log_frac_bits;
    const unsigned oshift = p->out_shift;
    const int32_t obias = (1 << (oshift - 1u)) - p->out_offset;
    const int32_t ecomp = (int32_t)((2u * e) << fb);
    const uint16_t *restrict wt = p->mel_weights;
    for (unsigned m = 0; m < p->n_mels; m++) {
        uint64_t energy = 0;
        const unsigned start = p->mel_start[m], len = p->mel_len[m];
        const int32_t *rr = re + start, *ii = im + start;
        for (unsigned j = 0; j < len; j++) {
            const int32_t r = rr[j], i = ii[j];
            const uint32_t power = (uint32_t)(r * r) + (uint32_t)(i * i); /* 4 */
            energy += (uint64_t)power * wt[j];                            /* 5 */
        }
        wt += len;
        const int32_t l = bk_ilog2_q(energy + 1u, fb) - ecomp; /* 6 */
        int32_t q = (l + obias) >> oshift;                     /* 7 */
        if (q > 127) q = 127;
        if (q < -128) q = -128;
        out[m] = (int8_t)q;
    }
}

size_t bk_fe_batch(const bk_fe_params_t *p, const int16_t *x, size_t n, int8_t *out,
                   bk_fe_work_t *w) {
    if (n < p->frame_len) return 0;
    const size_t frames = 1u + (n - p->frame_len) / p->hop;
    for (size_t f = 0; f < frames; f++) bk_fe_frame(p, x + f * p->hop, out + f * p->n_mels, w);
    return frames;
}

void bk_fe_stream_init(bk_fe_stream_t *s) { s->fill = 0; }

int bk_fe_stream_push(bk_fe_stream_t *s, const bk_fe_params_t *p, const int16_t *pcm,
                      size_t n, size_t *consumed, int8_t *out, bk_fe_work_t *w) {
    const size_t room = (size_t)p->frame_len - s->fill;
    const size_t take = n < room ? n : room;
    memcpy(&s->buf[s->fill], pcm, take * sizeof(int16_t));
    s->fill = (uint16_t)(s->fill + take);
    *consumed = take;
    if (s->fill < p->frame_len) return 0;
    bk_fe_frame(p, s->buf, out, w);
    /* keep the overlap: the last frame_len - hop samples start the next frame */
    const size_t keep = (size_t)p->frame_len - p->hop;
    memmove(s->buf, &s->buf[p->hop], keep * sizeof(int16_t));
    s->fill = (uint16_t)keep;
    return 1;
}
