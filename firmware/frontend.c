/* Integer audio front-end; see frontend.h and generator/frontend.py for the spec.
 *
 * Two implementations of the same integers:
 *
 * - frame_reference: the specification written out (32-bit radix-2 butterflies, one
 *   stage at a time). It is the fallback for anything the fast path does not handle.
 * - frame_fast: the same arithmetic, reorganised (docs/FIRMWARE.md, "Front-end"):
 *     * complex values live as two int16 halves of one 32-bit word (re low, im high),
 *       stored negated: -x. The spec's rounding halving (a + t + 1) >> 1 of x is exactly
 *       (-a - t) >> 1 of -x, a floor halving, which the M4 does for both halves in one
 *       SHADD16/SHSUB16; the twiddle product of -b rounds with 2^14 - 1 instead of 2^14
 *       (-floor((P + 2^14) / 2^15) == floor((-P + 2^14 - 1) / 2^15)). The power
 *       re^2 + im^2 does not see the sign.
 *     * stages 1-3 go in one pass over the real input: their twiddles are w_0 = (32767, 0)
 *       and w_{N/4} = (0, 32767) (no multiplier) except stage 3's w_{N/8} and w_{3N/8}.
 *     * stages 3.. go two at a time (radix-2^2 passes, four values loaded and stored once
 *       for four butterflies, each butterfly rounding exactly as the spec's).
 *     * the last stage computes only the bins 0..N/2 the mel bands read.
 *   Every stage output is a floor halving of two int16 values, so it fits int16. The
 *   twiddle products t = w * b fit int16 too, for the twiddle tables of make_params
 *   (generator/frontend.py: round(32767 cos), round(32767 sin)), any window, any input:
 *     - b real (a sub-block's DC or Nyquist bin) meets only w_0 = (32767, 0) or
 *       w_{N/4} = (0, 32767): |t| <= |b| <= 32768 * 32767 / 32768.
 *     - any other b is a non-DC, non-Nyquist bin of a sub-block of M real values
 *       |u| <= 32767: the exact value (1/M) sum u_j W^jk is at most
 *       32767 * max_phi (1/M) sum |cos(2 pi j k / M - phi)| <= 32767 / sqrt(2) (M' = 4
 *       is the worst case), and the fixed-point value differs from it by less than
 *       1.92 per stage (rounding 0.71, twiddle error 5.2e-5 * 2^15 = 1.71, halved) so
 *       |b| < 23170 + 18 and |t| < 23200.
 *   Tables with another hash (twiddle_hash below) take frame_reference instead.
 */
#include "frontend.h"

#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__ARM_FEATURE_QBIT)
#include <arm_acle.h>
#define FE_DSP 1
#else
#define FE_DSP 0
#endif

static unsigned bit_length32(uint32_t x) {
    return x ? 32u - (unsigned)__builtin_clz(x) : 0u; /* CLZ, or libgcc on cores without */
}

static unsigned bit_length64(uint64_t x) {
    if (x >> 32) return 32u + bit_length32((uint32_t)(x >> 32));
    return bit_length32((uint32_t)x);
}

/* For frac_bits 6. The six squaring steps of bk_ilog2_q are monotonic in the mantissa y
 * (a larger square stays larger or sets an earlier bit), so the fraction is the number
 * of its 63 step edges (the least y giving each fraction 1..63) at or below y. Split
 * [2^30, 2^31) into 128 buckets of 2^23 by y's bits 23..29: no bucket holds two edges
 * (they are >= 2^30 * (2^(1/64) - 1) > 2^23 apart). LOG_FRAC6[i] = (edges at or below
 * the bucket's start) << 24 | (offset of the edge inside the bucket, or 2^23 if none).
 * Computed from the definition (generator/frontend.py ilog2_q);
 * tests/frontend/test_frontend.py checks both sides of every edge. */
static const uint32_t LOG_FRAC6[128] = {
    0x00800000u, 0x003268fbu, 0x0166c34du, 0x02800000u, 0x021d1463u, 0x035561b5u,
    0x04800000u, 0x040fb0ccu, 0x054c0741u, 0x06800000u, 0x060a6abbu, 0x074ae0f3u,
    0x08800000u, 0x080d6fafu, 0x09521cc6u, 0x0a800000u, 0x0a18ee23u, 0x0b61e9bbu,
    0x0c800000u, 0x0c2d1598u, 0x0d7a77d5u, 0x0e800000u, 0x0e4a169du, 0x0f800000u,
    0x0f1bf829u, 0x107022cbu, 0x11800000u, 0x11469cdeu, 0x12800000u, 0x121f6cd4u,
    0x137a9931u, 0x14800000u, 0x14582889u, 0x15800000u, 0x15382183u, 0x16800000u,
    0x161a8ad8u, 0x177f6b56u, 0x18800000u, 0x1866c9dbu, 0x19800000u, 0x1950ad5bu,
    0x1a800000u, 0x1a3d1cdcu, 0x1b800000u, 0x1b2c1f76u, 0x1c800000u, 0x1c1dbc58u,
    0x1d800000u, 0x1d11fac2u, 0x1e800000u, 0x1e08e20au, 0x1f800000u, 0x1f02799au,
    0x207ec8f3u, 0x21800000u, 0x217dd7a5u, 0x22800000u, 0x227fad5au, 0x23800000u,
    0x23800000u, 0x230451d1u, 0x24800000u, 0x240bccdcu, 0x25800000u, 0x25162666u,
    0x26800000u, 0x2623666eu, 0x27800000u, 0x27339509u, 0x28800000u, 0x2846ba66u,
    0x29800000u, 0x295cdec4u, 0x2a800000u, 0x2a760a81u, 0x2b800000u, 0x2b800000u,
    0x2b12460cu, 0x2c800000u, 0x2c3199eeu, 0x2d800000u, 0x2d540ecau, 0x2e800000u,
    0x2e79ad57u, 0x2f800000u, 0x2f800000u, 0x2f227e66u, 0x30800000u, 0x304e8ae3u,
    0x31800000u, 0x317ddbcdu, 0x32800000u, 0x32800000u, 0x32307a42u, 0x33800000u,
    0x33666f77u, 0x34800000u, 0x34800000u, 0x341fc4bau, 0x35800000u, 0x355c8375u,
    0x36800000u, 0x36800000u, 0x361cb529u, 0x37800000u, 0x37606375u, 0x38800000u,
    0x38800000u, 0x38279811u, 0x39800000u, 0x39725ccfu, 0x3a800000u, 0x3a800000u,
    0x3a40bb9fu, 0x3b800000u, 0x3b800000u, 0x3b12be8cu, 0x3c800000u, 0x3c686fbbu,
    0x3d800000u, 0x3d800000u, 0x3d41d96fu, 0x3e800000u, 0x3e800000u, 0x3e1f0608u,
    0x3f800000u, 0x3f800000u,
};

/* Q.6 log2 of x >= 1 through LOG_FRAC6, with 32-bit operations only. */
static inline int32_t ilog2_q6(uint64_t x) {
    const uint32_t hi = (uint32_t)(x >> 32), lo = (uint32_t)x;
    unsigned n;
    uint32_t m; /* the mantissa y of bk_ilog2_q, in [2^30, 2^31) */
    if (hi) {
        const unsigned s = (unsigned)__builtin_clz(hi); /* n = 63 - s, y = x >> (33 - s) */
        n = 63u - s;
        m = s ? (hi << (s - 1u)) | (lo >> (33u - s)) : hi >> 1;
    } else {
        const unsigned s = (unsigned)__builtin_clz(lo); /* n = 31 - s */
        n = 31u - s;
        m = s ? lo << (s - 1u) : lo >> 1;
    }
    const uint32_t e = LOG_FRAC6[(m >> 23) & 127u];
    const unsigned r = (e >> 24) + ((m & 0x7FFFFFu) >= (e & 0xFFFFFFu));
    return (int32_t)((n << 6) | r);
}

int32_t bk_ilog2_q(uint64_t x, unsigned frac_bits) {
    if (frac_bits == 6u) return ilog2_q6(x);
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

/* Steps 6 and 7 for band m: energy -> int8 feature. */
static void quantise_band(const bk_fe_params_t *p, uint64_t energy, int32_t ecomp,
                          int8_t *out) {
    const unsigned oshift = p->out_shift;
    const int32_t obias = (1 << (oshift - 1u)) - p->out_offset;
    const unsigned fb = p->log_frac_bits;
    const int32_t l = (fb == 6u ? ilog2_q6(energy + 1u) : bk_ilog2_q(energy + 1u, fb)) - ecomp; /* 6 */
    int32_t q = (l + obias) >> oshift;                                    /* 7 */
    if (q > 127) q = 127;
    if (q < -128) q = -128;
    *out = (int8_t)q;
}

/* ---- the specification, written out ------------------------------------------------ */

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

static void frame_reference(const bk_fe_params_t *p, const int16_t *x, int8_t *out,
                            bk_fe_work_t *w) {
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
    const int32_t ecomp = (int32_t)((2u * e) << p->log_frac_bits);
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
        quantise_band(p, energy, ecomp, &out[m]);
    }
}

/* ---- the fast path ------------------------------------------------------------------ */

/* A complex value as one word: re in bits 0..15, im in bits 16..31 (two's complement). */
static inline uint32_t cpack(int32_t re, int32_t im) {
#if FE_DSP
    uint32_t z;
    __asm("pkhbt %0, %1, %2, lsl #16" : "=r"(z) : "r"(re), "r"(im));
    return z;
#else
    return ((uint32_t)re & 0xFFFFu) | ((uint32_t)im << 16);
#endif
}
static inline int32_t cre(uint32_t z) { return (int32_t)(int16_t)(uint16_t)(z & 0xFFFFu); }
static inline int32_t cim(uint32_t z) { return (int32_t)(int16_t)(uint16_t)(z >> 16); }

static inline uint32_t load32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v); /* one LDR on cores with unaligned access */
    return v;
}

#if FE_DSP
/* t = w * b for the negated b (twiddle w = cos + i sin packed, rounding 2^14 - 1):
 * SMLAD, SMLSDX, and the two >> 15 merged into one word by ASR + PKHBT. */
static inline uint32_t twiddle(uint32_t nb, uint32_t w) {
    const int32_t r = __smlad((int16x2_t)nb, (int16x2_t)w, (1 << 14) - 1) >> 15;
    const int32_t i = __smlsdx((int16x2_t)w, (int16x2_t)nb, (1 << 14) - 1);
    uint32_t z;
    __asm("pkhbt %0, %1, %2, lsl #1" : "=r"(z) : "r"(r), "r"(i)); /* high half: i >> 15 */
    return z;
}
static inline uint32_t hadd(uint32_t a, uint32_t b) {
    return (uint32_t)__shadd16((int16x2_t)a, (int16x2_t)b);
}
static inline uint32_t hsub(uint32_t a, uint32_t b) {
    return (uint32_t)__shsub16((int16x2_t)a, (int16x2_t)b);
}
/* re^2 + im^2 < 2^31 + 1: exact as uint32 (SMUAD's Q flag is not read afterwards). */
static inline uint32_t cpower(uint32_t z) { return (uint32_t)__smuad((int16x2_t)z, (int16x2_t)z); }
#else
static inline uint32_t twiddle(uint32_t nb, uint32_t w) {
    const int32_t br = cre(nb), bi = cim(nb), c = cre(w), s = cim(w);
    const int32_t r = (br * c + bi * s + ((1 << 14) - 1)) >> 15;
    const int32_t i = (bi * c - br * s + ((1 << 14) - 1)) >> 15;
    return cpack(r, i);
}
static inline uint32_t hadd(uint32_t a, uint32_t b) {
    return cpack((cre(a) + cre(b)) >> 1, (cim(a) + cim(b)) >> 1);
}
static inline uint32_t hsub(uint32_t a, uint32_t b) {
    return cpack((cre(a) - cre(b)) >> 1, (cim(a) - cim(b)) >> 1);
}
static inline uint32_t cpower(uint32_t z) {
    const int32_t r = cre(z), i = cim(z);
    return (uint32_t)(r * r) + (uint32_t)(i * i);
}
#endif

static inline uint32_t tw(const int16_t *cos_t, const int16_t *sin_t, unsigned k) {
    return cpack(cos_t[k], sin_t[k]);
}

/* Bit reversal of r in `bits` bits. */
static inline unsigned bitrev(unsigned r, unsigned bits) {
#if defined(__ARM_ARCH_ISA_THUMB) && __ARM_ARCH_ISA_THUMB == 2
    uint32_t out;
    __asm("rbit %0, %1" : "=r"(out) : "r"(r));
    return (unsigned)(out >> (32u - bits));
#else
    unsigned out = 0;
    for (unsigned b = 0; b < bits; b++) out |= ((r >> b) & 1u) << (bits - 1u - b);
    return out;
#endif
}

/* twiddle_hash: h = rotl(h, 5) + w_k over k = 0 .. n/2 - 1 from h = 0, w_k packed
 * (cos, sin); one ADD with a rotated operand per twiddle. */
static inline uint32_t tw_hash_step(uint32_t h, uint32_t wk) { return ((h << 5) | (h >> 27)) + wk; }

/* Step 1: v = window * x (Q15, rounded) into vb; returns the OR of all |v|, whose bit
 * length is the bit length of max|v| (step 2). Also packs the n/2 twiddles (cos, sin)
 * into words, tw[k] = w_k, one per two samples, and hashes them into *hash. */
static uint32_t window_pass(const bk_fe_params_t *p, const int16_t *x, int16_t *vb,
                            uint32_t *tw, uint32_t *hash) {
    const unsigned n = p->frame_len;
    const uint16_t *win = p->window;
    const int16_t *cos_t = p->cos_q15, *sin_t = p->sin_q15;
#if FE_DSP
    uint32_t acc = 0, h = 0, zero = 0;
    __asm("" : "+r"(zero)); /* a register holding 0 for SSUB16 */
    uint32_t *out = (uint32_t *)(void *)vb;
    const int16_t *const xend = x + n;
    while (x != xend) { /* two samples a step; the window is <= 32767, a signed half */
        const uint32_t xx = load32(x), ww = load32(win);
        x += 2;
        win += 2;
        const int32_t v0 = __smlabb((int32_t)xx, (int32_t)ww, 1 << 14) >> 15;
        const int32_t v1 = __smlatt((int32_t)xx, (int32_t)ww, 1 << 14);
        uint32_t v;
        __asm("pkhbt %0, %1, %2, lsl #1" : "=r"(v) : "r"(v0), "r"(v1)); /* v1 >> 15 high */
        uint32_t a;
        __asm("ssub16 %0, %1, %2\n\tsel %0, %0, %2" /* |v|: -v where v <= 0 (GE) */
              : "=&r"(a)
              : "r"(zero), "r"(v)
              : "cc");
        acc |= a; /* |v| <= 32767 */
        *out++ = v;
    }
    const uint32_t *const twend = tw + n / 2u;
    while (tw != twend) { /* two twiddles from one word of each table */
        const uint32_t c2 = load32(cos_t), s2 = load32(sin_t);
        cos_t += 2;
        sin_t += 2;
        uint32_t wa, wb;
        __asm("pkhbt %0, %1, %2, lsl #16" : "=r"(wa) : "r"(c2), "r"(s2)); /* (c0, s0) */
        __asm("pkhtb %0, %1, %2, asr #16" : "=r"(wb) : "r"(s2), "r"(c2)); /* (c1, s1) */
        tw[0] = wa;
        tw[1] = wb;
        tw += 2;
        h = tw_hash_step(tw_hash_step(h, wa), wb);
    }
    *hash = h;
    return (acc | (acc >> 16)) & 0xFFFFu;
#else
    uint32_t acc = 0;
    for (unsigned i = 0; i < n; i++) {
        const int32_t v = ((int32_t)x[i] * (int32_t)win[i] + (1 << 14)) >> 15;
        vb[i] = (int16_t)v;
        acc |= (uint32_t)(v < 0 ? -v : v);
    }
    uint32_t h = 0;
    for (unsigned k = 0; k < n / 2u; k++) {
        tw[k] = cpack(cos_t[k], sin_t[k]);
        h = tw_hash_step(h, tw[k]);
    }
    *hash = h;
    return acc;
#endif
}

/* Products of a negated real b with w_0 = (32767, 0) and with w_{n/4} = (0, 32767) (the
 * latter is purely imaginary): with c = 32767, (b * 32767 + k) >> 15 == b + ((k - b) >> 15)
 * for the rounding constant k = 2^14 - 1, no multiply. */
static inline int32_t mul_w0(int32_t b) { return b + (((1 << 14) - 1 - b) >> 15); }
static inline int32_t mul_wq(int32_t b) { return ((b + (1 << 14) - 1) >> 15) - b; }

/* cpack(lo, hi2 >> 1): the high half taken from bits 1..16 of hi2 (PKHBT's shift). */
static inline uint32_t cpack_h2(int32_t lo, int32_t hi2) {
#if FE_DSP
    uint32_t z;
    __asm("pkhbt %0, %1, %2, lsl #15" : "=r"(z) : "r"(lo), "r"(hi2));
    return z;
#else
    return cpack(lo, hi2 >> 1);
#endif
}

/* Stages 1 and 2 of one 4-block of the real input (bit-reversed positions 0..3 hold
 * u0, u1, u2, u3; u not negated yet): z0, z2 real, z1 and z3 complex (packed) with equal
 * real parts. Stage 1 pairs (0, 1) and (2, 3) with w_0, stage 2 (0, 2) with w_0, (1, 3)
 * with w_{n/4}. */
#define FE_BLOCK4(u0, u1, u2, u3, z0, z2, z1, z3)                                       \
    do {                                                                                \
        const int32_t t1_ = mul_wq(u1), t3_ = mul_wq(u3); /* -u * 32767, rounded */     \
        const int32_t p0_ = (t1_ - u0) >> 1, p1_ = (-u0 - t1_) >> 1;                    \
        const int32_t p2_ = (t3_ - u2) >> 1, p3_ = (-u2 - t3_) >> 1;                    \
        const int32_t t2_ = mul_w0(p2_), ti_ = mul_wq(p3_);                             \
        z0 = (p0_ + t2_) >> 1;                                                          \
        z2 = (p0_ - t2_) >> 1;                                                          \
        z1 = cpack_h2(p1_ >> 1, ti_);                                                   \
        z3 = cpack_h2(p1_ >> 1, -ti_);                                                  \
    } while (0)

/* Stages 1-3 on the real input u = v << e, in the negated packed form. Bit-reversed
 * positions 8g + j hold u[r + rev3(j) * n/8], r = bitrev(g). Stage 3 pairs (j, j + 4)
 * with w_{j n/8}: w_0 and w_{n/4} on real values (no multiply), w_{n/8} and w_{3n/8} on
 * complex ones (the general product). */
static inline void first_pass(uint32_t *d, const int16_t *vb, unsigned n, unsigned e,
                              const uint32_t *tw) {
    const unsigned m = n >> 3, bits = (unsigned)bit_length32(m) - 1u;
    const uint32_t w1 = tw[m], w3 = tw[3u * m];
    for (unsigned r = 0; r < m; r++) {
        const int16_t *v = vb + r;
#define U(j) ((int32_t)((uint32_t)(int32_t)v[(j) * m] << e))
        int32_t z0, z2, z4, z6;
        uint32_t z1, z3, z5, z7;
        FE_BLOCK4(U(0), U(4), U(2), U(6), z0, z2, z1, z3);
        FE_BLOCK4(U(1), U(5), U(3), U(7), z4, z6, z5, z7);
#undef U
        uint32_t *o = d + 8u * bitrev(r, bits);
        const int32_t t4 = mul_w0(z4), t6 = mul_wq(z6);
        o[0] = ((uint32_t)(z0 + t4) >> 1) & 0xFFFFu; /* real: imaginary half 0 */
        o[4] = ((uint32_t)(z0 - t4) >> 1) & 0xFFFFu;
        o[2] = cpack_h2(z2 >> 1, t6);
        o[6] = cpack_h2(z2 >> 1, -t6);
        uint32_t t = twiddle(z5, w1);
        o[1] = hadd(z1, t);
        o[5] = hsub(z1, t);
        t = twiddle(z7, w3);
        o[3] = hadd(z3, t);
        o[7] = hsub(z3, t);
    }
}

#if !FE_DSP
/* The portable path for every frame length: radix-2 and radix-2^2 passes. */
/* One radix-2 stage of half h. */
static void pass2(uint32_t *d, unsigned n, unsigned h, const uint32_t *tw) {
    const unsigned stride = n / (2u * h);
    for (unsigned k = 0; k < h; k++) {
        const uint32_t w = tw[k * stride];
        for (unsigned i = k; i < n; i += 2u * h) {
            const uint32_t a = d[i], t = twiddle(d[i + h], w);
            d[i] = hadd(a, t);
            d[i + h] = hsub(a, t);
        }
    }
}

static inline void group4_any(uint32_t *o, uint32_t hb, uint32_t w1, uint32_t w2,
                              uint32_t w3, int full) {
    const unsigned h = hb >> 2;
    const uint32_t x0 = o[0], x1 = o[h], x2 = o[2u * h], x3 = o[3u * h];
    uint32_t t = twiddle(x1, w1);
    const uint32_t y0 = hadd(x0, t), y1 = hsub(x0, t);
    t = twiddle(x3, w1);
    const uint32_t y2 = hadd(x2, t), y3 = hsub(x2, t);
    t = twiddle(y2, w2);
    o[0] = hadd(y0, t);
    if (full) o[2u * h] = hsub(y0, t);
    t = twiddle(y3, w3);
    o[h] = hadd(y1, t);
    if (full) o[3u * h] = hsub(y1, t);
}
#define GROUP4(o, hb, w1, w2, w3) group4_any(o, hb, w1, w2, w3, 1)
#define GROUP4_LOW(o, hb, w1, w2, w3) group4_any(o, hb, w1, w2, w3, 0)

/* Stages of half h and 2h in one pass. */
static void pass4(uint32_t *d, unsigned n, unsigned h, const uint32_t *tw) {
    const unsigned s2 = n / (4u * h), s1 = 2u * s2;
    const uint32_t hb = 4u * h;
    const uint32_t *tw3 = tw + (n >> 2);
    uint32_t *const end = d + n;
    for (unsigned k = 0; k < h; k++) {
        const uint32_t w1 = tw[k * s1], w2 = tw[k * s2], w3 = tw3[k * s2];
        for (uint32_t *o = d + k; o < end; o += 4u * h) GROUP4(o, hb, w1, w2, w3);
    }
}

/* The last two stages (h = n/4, one group per k): only the bins 0..n/2 are stored. */
static void pass4_last(uint32_t *d, unsigned n, const uint32_t *tw) {
    const unsigned h = n >> 2;
    const uint32_t hb = 4u * h;
    GROUP4(d, hb, tw[0], tw[0], tw[h]); /* k = 0 also gives bin n/2 */
    for (unsigned k = 1; k < h; k++) GROUP4_LOW(d + k, hb, tw[2u * k], tw[k], tw[k + h]);
}
#endif

#if FE_DSP
/* Three stages on the eight values at o[j * h], j = 0..7, h a constant (S = 4h bytes):
 * stage one pairs (0,1) (2,3) (4,5) (6,7) with w[0]; stage two (0,2) (4,6) with w[1] and
 * (1,3) (5,7) with w[2]; stage three (j, j+4) with w[3 + j]. Twelve butterflies on eight
 * loads and at most eight stores; every register of the core is in use. BF: b = a - t,
 * a = a + t (halving), t = w * b as in FE_TW; BF_LOW keeps only a. */
#define R8_BF(a, b)                                                                       \
    "smlad  %[t], %[" b "], %[w], %[k]\n\t"                                               \
    "smlsdx %[" b "], %[w], %[" b "], %[k]\n\t"                                           \
    "asr    %[t], %[t], #15\n\t"                                                          \
    "pkhbt  %[t], %[t], %[" b "], lsl #1\n\t"                                             \
    "shsub16 %[" b "], %[" a "], %[t]\n\t"                                                \
    "shadd16 %[" a "], %[" a "], %[t]\n\t"
#define R8_BF_LOW(a, b)                                                                   \
    "smlad  %[t], %[" b "], %[w], %[k]\n\t"                                               \
    "smlsdx %[" b "], %[w], %[" b "], %[k]\n\t"                                           \
    "asr    %[t], %[t], #15\n\t"                                                          \
    "pkhbt  %[t], %[t], %[" b "], lsl #1\n\t"                                             \
    "shadd16 %[" a "], %[" a "], %[t]\n\t"
#define R8_LOAD(S)                                                                        \
    "ldr %[x0], [%[o]]\n\t"                                                               \
    "ldr %[x1], [%[o], #" #S "]\n\t"                                                      \
    "ldr %[x2], [%[o], #2*" #S "]\n\t"                                                    \
    "ldr %[x3], [%[o], #3*" #S "]\n\t"                                                    \
    "ldr %[x4], [%[o], #4*" #S "]\n\t"                                                    \
    "ldr %[x5], [%[o], #5*" #S "]\n\t"                                                    \
    "ldr %[x6], [%[o], #6*" #S "]\n\t"                                                    \
    "ldr %[x7], [%[o], #7*" #S "]\n\t"                                                    \
    "ldr %[w], [%[wp]]\n\t" R8_BF("x0", "x1") R8_BF("x2", "x3") R8_BF("x4", "x5")        \
    R8_BF("x6", "x7")                                                                     \
    "ldr %[w], [%[wp], #4]\n\t" R8_BF("x0", "x2") R8_BF("x4", "x6")                       \
    "ldr %[w], [%[wp], #8]\n\t" R8_BF("x1", "x3") R8_BF("x5", "x7")
#define R8_OPERANDS                                                                       \
    : [x0] "=&r"(x0), [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3), [x4] "=&r"(x4),     \
      [x5] "=&r"(x5), [x6] "=&r"(x6), [x7] "=&r"(x7), [t] "=&r"(t), [w] "=&r"(wt)         \
    : [o] "r"(o), [wp] "r"(wp), [k] "r"((1 << 14) - 1)                                    \
    : "memory"
#define R8_FULL(S)                                                                        \
    __asm volatile(R8_LOAD(S)                                                             \
        "ldr %[w], [%[wp], #12]\n\t" R8_BF("x0", "x4")                                    \
        "ldr %[w], [%[wp], #16]\n\t" R8_BF("x1", "x5")                                    \
        "ldr %[w], [%[wp], #20]\n\t" R8_BF("x2", "x6")                                    \
        "ldr %[w], [%[wp], #24]\n\t" R8_BF("x3", "x7")                                    \
        "str %[x0], [%[o]]\n\t"                                                           \
        "str %[x1], [%[o], #" #S "]\n\t"                                                  \
        "str %[x2], [%[o], #2*" #S "]\n\t"                                                \
        "str %[x3], [%[o], #3*" #S "]\n\t"                                                \
        "str %[x4], [%[o], #4*" #S "]\n\t"                                                \
        "str %[x5], [%[o], #5*" #S "]\n\t"                                                \
        "str %[x6], [%[o], #6*" #S "]\n\t"                                                \
        "str %[x7], [%[o], #7*" #S "]\n\t" R8_OPERANDS)
#define R8_LOW(S)                                                                         \
    __asm volatile(R8_LOAD(S)                                                             \
        "ldr %[w], [%[wp], #12]\n\t" R8_BF_LOW("x0", "x4")                                \
        "ldr %[w], [%[wp], #16]\n\t" R8_BF_LOW("x1", "x5")                                \
        "ldr %[w], [%[wp], #20]\n\t" R8_BF_LOW("x2", "x6")                                \
        "ldr %[w], [%[wp], #24]\n\t" R8_BF_LOW("x3", "x7")                                \
        "str %[x0], [%[o]]\n\t"                                                           \
        "str %[x1], [%[o], #" #S "]\n\t"                                                  \
        "str %[x2], [%[o], #2*" #S "]\n\t"                                                \
        "str %[x3], [%[o], #3*" #S "]\n\t" R8_OPERANDS)

/* Where the n = 512 path keeps its packed twiddles and its int16 window copy, in words
 * from d = w->re: the twiddles right after the 512 FFT words when the work area has room
 * there, else at the start of w->im with the window copy after them. Either way the
 * twiddles start below 4096 - 768 bytes from d, so the last pass reaches tw[k + 64 j]
 * at immediate offsets from &d[k]. */
#define TW512 (BK_FE_MAX_FRAME >= 768u ? 512u : BK_FE_MAX_FRAME)
#define VB512 (BK_FE_MAX_FRAME >= 768u ? BK_FE_MAX_FRAME : BK_FE_MAX_FRAME + 256u)

/* Stages 4-9 of n = 512 as two radix-2^3 passes: h = 8 (eight groups per twiddle set),
 * then h = 64 storing the powers (step 4) of bins 0..256 only. tw = d + TW512. */
static void passes8_512(uint32_t *d, const uint32_t *tw, uint32_t *scratch) {
    uint32_t x0, x1, x2, x3, x4, x5, x6, x7, t, wt;
    uint32_t wbuf[8];
    /* h = 8: twiddles w_{32k}; w_{16k}, w_{16k+128}; w_{8k + 64j}; then the loop's end
     * (kept in memory: the asm has no register to spare where r7 is the frame pointer) */
    for (unsigned k = 0; k < 8u; k++) {
        wbuf[0] = tw[32u * k];
        wbuf[1] = tw[16u * k];
        wbuf[2] = tw[16u * k + 128u];
        wbuf[3] = tw[8u * k];
        wbuf[4] = tw[8u * k + 64u];
        wbuf[5] = tw[8u * k + 128u];
        wbuf[6] = tw[8u * k + 192u];
        wbuf[7] = (uint32_t)(uintptr_t)(d + 512 + k);
        const uint32_t *wp = wbuf;
        uint32_t *o = d + k;
        __asm volatile(
            "1:\n\t" R8_LOAD(32)
            "ldr %[w], [%[wp], #12]\n\t" R8_BF("x0", "x4")
            "ldr %[w], [%[wp], #16]\n\t" R8_BF("x1", "x5")
            "ldr %[w], [%[wp], #20]\n\t" R8_BF("x2", "x6")
            "ldr %[w], [%[wp], #24]\n\t" R8_BF("x3", "x7")
            "str %[x0], [%[o]]\n\t"
            "str %[x1], [%[o], #32]\n\t"
            "str %[x2], [%[o], #64]\n\t"
            "str %[x3], [%[o], #96]\n\t"
            "str %[x4], [%[o], #128]\n\t"
            "str %[x5], [%[o], #160]\n\t"
            "str %[x6], [%[o], #192]\n\t"
            "str %[x7], [%[o], #224]\n\t"
            "add %[o], %[o], #256\n\t"
            "ldr %[t], [%[wp], #28]\n\t"
            "cmp %[o], %[t]\n\t"
            "bne 1b\n\t"
            : [x0] "=&r"(x0), [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3), [x4] "=&r"(x4),
              [x5] "=&r"(x5), [x6] "=&r"(x6), [x7] "=&r"(x7), [t] "=&r"(t), [w] "=&r"(wt),
              [o] "+&r"(o)
            : [wp] "r"(wp), [k] "r"((1 << 14) - 1)
            : "memory", "cc");
    }
    /* h = 64, k = 0: all eight outputs (bin 256 is the stage-three difference) */
    {
        wbuf[0] = wbuf[1] = wbuf[3] = tw[0];
        wbuf[2] = wbuf[5] = tw[128];
        wbuf[4] = tw[64];
        wbuf[6] = tw[192];
        const uint32_t *wp = wbuf;
        uint32_t *o = d;
        R8_FULL(256);
        for (unsigned j = 0; j <= 256u; j += 64u) d[j] = cpower(d[j]);
    }
    /* h = 64, k = 1..63: per k the twiddles w_{4k}, w_{2k}, w_{2k+128} from a stream
     * built here, w_{k + 64j} at d[k] + TW512 words; only a-outputs of stage three. The
     * stream ends with 0, which no twiddle of make_params' tables is: the loop's end. */
    uint32_t *sp = scratch;
    for (unsigned k = 1; k < 64u; k++) {
        sp[0] = tw[4u * k];
        sp[1] = tw[2u * k];
        sp[2] = tw[2u * k + 128u];
        sp += 3;
    }
    sp[0] = 0u;
    const uint32_t *tp = scratch;
    uint32_t *o = d + 1;
    __asm volatile(
        "1:\n\t"
        "ldr %[x0], [%[o]]\n\t"
        "ldr %[x1], [%[o], #256]\n\t"
        "ldr %[x2], [%[o], #512]\n\t"
        "ldr %[x3], [%[o], #768]\n\t"
        "ldr %[x4], [%[o], #1024]\n\t"
        "ldr %[x5], [%[o], #1280]\n\t"
        "ldr %[x6], [%[o], #1536]\n\t"
        "ldr %[x7], [%[o], #1792]\n\t"
        "ldr %[w], [%[tp]], #4\n\t" R8_BF("x0", "x1") R8_BF("x2", "x3") R8_BF("x4", "x5")
        R8_BF("x6", "x7")
        "ldr %[w], [%[tp]], #4\n\t" R8_BF("x0", "x2") R8_BF("x4", "x6")
        "ldr %[w], [%[tp]], #4\n\t" R8_BF("x1", "x3") R8_BF("x5", "x7")
        "ldr %[w], [%[o], %[tb0]]\n\t" R8_BF_LOW("x0", "x4")
        "ldr %[w], [%[o], %[tb1]]\n\t" R8_BF_LOW("x1", "x5")
        "ldr %[w], [%[o], %[tb2]]\n\t" R8_BF_LOW("x2", "x6")
        "ldr %[w], [%[o], %[tb3]]\n\t" R8_BF_LOW("x3", "x7")
        "smuad %[x0], %[x0], %[x0]\n\t" /* steps 4: re^2 + im^2 */
        "smuad %[x1], %[x1], %[x1]\n\t"
        "smuad %[x2], %[x2], %[x2]\n\t"
        "smuad %[x3], %[x3], %[x3]\n\t"
        "str %[x0], [%[o]]\n\t"
        "str %[x1], [%[o], #256]\n\t"
        "str %[x2], [%[o], #512]\n\t"
        "str %[x3], [%[o], #768]\n\t"
        "add %[o], %[o], #4\n\t"
        "ldr %[t], [%[tp]]\n\t"
        "cmp %[t], #0\n\t"
        "bne 1b\n\t"
        : [x0] "=&r"(x0), [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3), [x4] "=&r"(x4),
          [x5] "=&r"(x5), [x6] "=&r"(x6), [x7] "=&r"(x7), [t] "=&r"(t), [w] "=&r"(wt),
          [o] "+&r"(o), [tp] "+&r"(tp)
        : [k] "r"((1 << 14) - 1), [tb0] "i"(4 * TW512), [tb1] "i"(4 * TW512 + 256),
          [tb2] "i"(4 * TW512 + 512), [tb3] "i"(4 * TW512 + 768)
        : "memory", "cc");
}
#endif

/* CANON_HASH[log2(n) - 4]: twiddle_hash of make_params' tables (generator/frontend.py)
 * for n = 16 .. 1024; tests/frontend/test_frontend.py recomputes them. */
static const uint32_t CANON_HASH[7] = {
    0x693b51b3u, 0xfbac9989u, 0x41d542ffu, 0xec2b8b4cu, 0xdfc2edd8u, 0x964e3e81u, 0xd01443b0u,
};

/* Steps 1-4 into d (the powers of bins 0..n/2), e through *e_out. Returns nonzero, having
 * computed nothing useful, when the twiddle tables are not the rounded unit circle (their
 * hash differs): the no-overflow argument at the top of this file needs them. */
static int fft_fast(const bk_fe_params_t *p, const int16_t *x, bk_fe_work_t *w,
                    unsigned *e_out) {
    const unsigned n = p->frame_len, log2n = (unsigned)bit_length32(n) - 1u;
    uint32_t *d = (uint32_t *)w->re;
    int16_t *vb = (int16_t *)(void *)w->im; /* n int16: im[0 .. n/2) */
    uint32_t *tw = (uint32_t *)w->im + n / 2u; /* n/2 words: im[n/2 .. n) */
#if FE_DSP
    if (n == 512u) {
        tw = d + TW512;
        vb = (int16_t *)(void *)(d + VB512);
    }
#endif
#if FE_DSP
    if (n != 512u) return 1; /* the M4 path is built for the shipped size only (flash) */
#endif
    uint32_t hash;
    const uint32_t peak = window_pass(p, x, vb, tw, &hash);
    if (log2n < 4u || log2n > 10u || hash != CANON_HASH[log2n - 4u]) return 1;
    const unsigned e = peak ? 15u - bit_length32(peak) : 0u;
    *e_out = e;
#if FE_DSP
    first_pass(d, vb, 512u, e, tw);
    passes8_512(d, tw, (uint32_t *)(void *)vb); /* vb is free after the first pass */
#else
    if (n == 512u)
        first_pass(d, vb, 512u, e, tw); /* the shipped size, constant offsets */
    else
        first_pass(d, vb, n, e, tw);
    unsigned h = 8;
    unsigned left = log2n - 3u; /* stages after the first three */
    if (left & 1u) {
        pass2(d, n, h, tw);
        h <<= 1;
        left--;
    }
    for (; left > 2u; left -= 2u, h <<= 2) pass4(d, n, h, tw);
    if (left == 2u) pass4_last(d, n, tw);
    for (unsigned k = 0; k <= n / 2u; k++) d[k] = cpower(d[k]); /* 4 */
#endif
    return 0;
}

/* (hi:lo) += a * b for a 32-bit a and a 16-bit b (a weight): UMLAL on Thumb-2 cores;
 * elsewhere two 32-bit products of b with a's halves, as cores without a 64-bit
 * multiply (Cortex-M0) would otherwise call a library routine per weight. */
#if defined(__ARM_ARCH_ISA_THUMB) && __ARM_ARCH_ISA_THUMB == 2
#define MAC64(lo, hi, a, b)                                                                \
    __asm("umlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"((uint32_t)(a)), "r"((uint32_t)(b)))
#else
#define MAC64(lo, hi, a, b)                                                                \
    do {                                                                                   \
        const uint32_t a_ = (a), b_ = (uint16_t)(b);                                       \
        const uint32_t pl_ = (a_ & 0xFFFFu) * b_, ph_ = (a_ >> 16) * b_;                   \
        const uint32_t l1_ = lo + pl_;                                                     \
        hi += (l1_ < pl_) + (ph_ >> 16);                                                   \
        lo = l1_ + (ph_ << 16);                                                            \
        hi += lo < (ph_ << 16);                                                            \
    } while (0)
#endif

static uint32_t fallbacks;

uint32_t bk_fe_fallbacks(void) { return fallbacks; }

static void frame_fast(const bk_fe_params_t *p, const int16_t *x, int8_t *out,
                       bk_fe_work_t *w) {
    unsigned e;
    if (fft_fast(p, x, w, &e)) {
        fallbacks++;
        frame_reference(p, x, out, w);
        return;
    }
    const uint32_t *d = (const uint32_t *)w->re;
    const unsigned fb = p->log_frac_bits, oshift = p->out_shift, nm = p->n_mels;
    const int32_t ecomp = (int32_t)((2u * e) << fb);
    const int32_t obias = (1 << (oshift - 1u)) - p->out_offset - ecomp;
    const uint16_t *restrict wt = p->mel_weights;
    const uint16_t *mel_start = p->mel_start, *mel_len = p->mel_len;
    for (unsigned m = 0; m < nm; m++) {
        const unsigned len = mel_len[m];
        const uint32_t *z = d + mel_start[m];
        const uint16_t *const wend = wt + len;
        uint32_t lo = 0, hi = 0; /* the uint64 energy, one UMLAL per weight */
        /* 5: four bins a step, the rest first */
        for (unsigned j = len & 3u; j; j--) MAC64(lo, hi, *z++, *wt++);
        while (wt != wend) {
            MAC64(lo, hi, z[0], wt[0]);
            MAC64(lo, hi, z[1], wt[1]);
            MAC64(lo, hi, z[2], wt[2]);
            MAC64(lo, hi, z[3], wt[3]);
            z += 4;
            wt += 4;
        }
        const uint64_t energy = ((uint64_t)hi << 32) | lo;
        const int32_t l = fb == 6u ? ilog2_q6(energy + 1u) : bk_ilog2_q(energy + 1u, fb); /* 6 */
        int32_t q = (l + obias) >> oshift;                                                  /* 7 */
        if (q > 127) q = 127;
        if (q < -128) q = -128;
        out[m] = (int8_t)q;
    }
}

void bk_fe_frame(const bk_fe_params_t *p, const int16_t *x, int8_t *out, bk_fe_work_t *w) {
    const unsigned q = p->frame_len >> 2;
    /* the first pass hard-codes the twiddles w_0 and w_{n/4} of the rounded unit circle */
    if (p->cos_q15[0] == 32767 && p->sin_q15[0] == 0 && p->cos_q15[q] == 0 &&
        p->sin_q15[q] == 32767)
        frame_fast(p, x, out, w);
    else
        frame_reference(p, x, out, w);
}

size_t bk_fe_batch(const bk_fe_params_t *p, const int16_t *x, size_t n, int8_t *out,
                   bk_fe_work_t *w) {
    if (n < p->frame_len) return 0;
    const size_t frames = 1u + (n - p->frame_len) / p->hop;
    for (size_t f = 0; f < frames; f++) bk_fe_frame(p, x + f * p->hop, out + f * p->n_mels, w);
    return frames;
}

void bk_fe_stream_init(bk_fe_stream_t *s) { s->fill = 0; }

/* Copy n int16 samples forward (so also for dst below an overlapping src): 16 bytes a
 * step when both are word-aligned, else memmove. */
static void copy_forward16(int16_t *dst, const int16_t *src, size_t n) {
    if (((uintptr_t)dst | (uintptr_t)src) & 3u) {
        memmove(dst, src, n * sizeof(int16_t));
        return;
    }
    uint32_t *d = (uint32_t *)(void *)dst;
    const uint32_t *s = (const uint32_t *)(const void *)src;
    for (; n >= 8u; n -= 8u) {
#if defined(__ARM_ARCH_ISA_THUMB) && __ARM_ARCH_ISA_THUMB == 2
        __asm volatile("ldmia %0!, {r4, r5, r6, r8}\n\tstmia %1!, {r4, r5, r6, r8}"
                       : "+r"(s), "+r"(d)
                       :
                       : "r4", "r5", "r6", "r8", "memory");
#else
        const uint32_t a = s[0], b = s[1], c = s[2], e = s[3];
        d[0] = a;
        d[1] = b;
        d[2] = c;
        d[3] = e;
        d += 4;
        s += 4;
#endif
    }
    int16_t *dh = (int16_t *)(void *)d;
    const int16_t *sh = (const int16_t *)(const void *)s;
    while (n--) *dh++ = *sh++;
}

int bk_fe_stream_push(bk_fe_stream_t *s, const bk_fe_params_t *p, const int16_t *pcm,
                      size_t n, size_t *consumed, int8_t *out, bk_fe_work_t *w) {
    const size_t room = (size_t)p->frame_len - s->fill;
    const size_t take = n < room ? n : room;
    copy_forward16(&s->buf[s->fill], pcm, take);
    s->fill = (uint16_t)(s->fill + take);
    *consumed = take;
    if (s->fill < p->frame_len) return 0;
    bk_fe_frame(p, s->buf, out, w);
    /* keep the overlap: the last frame_len - hop samples start the next frame */
    const size_t keep = (size_t)p->frame_len - p->hop;
    copy_forward16(s->buf, &s->buf[p->hop], keep);
    s->fill = (uint16_t)keep;
    return 1;
}
