/* Bit packing (docs/FORMAT.md "Bit packing", generator/integer/intmodel.py pack_bits):
 * element i of a row lives in word i / 32 at bit i % 32, LSB first; bit 1 = positive. */
#include <string.h>

#include "bnn.h"
#include "popcount.h"

void bk_pack_bits(const uint8_t *bits, uint32_t n, uint32_t *words) {
    const uint32_t nw = BK_WORDS(n);
    for (uint32_t w = 0; w < nw; w++) words[w] = 0; /* padding bits stay 0 */
    for (uint32_t i = 0; i < n; i++) words[i >> 5] |= (uint32_t)(bits[i] & 1u) << (i & 31u);
}

void bk_unpack_bits(const uint32_t *words, uint32_t n, uint8_t *bits) {
    for (uint32_t i = 0; i < n; i++) bits[i] = (uint8_t)((words[i >> 5] >> (i & 31u)) & 1u);
}

/* Bits [pos, pos + n) of src in the low n bits (n = 1..32). The second word is read only
 * when the field crosses into it (then pos % 32 > 0, so both shifts are below 32). */
static uint32_t get_field(const uint32_t *src, uint32_t pos, uint32_t n) {
    const uint32_t w = pos >> 5, sh = pos & 31u;
    uint32_t v = src[w] >> sh;
    if (sh + n > 32u) v |= src[w + 1u] << (32u - sh);
    return n == 32u ? v : (v & ((1u << n) - 1u));
}

/* Store the n low bits of v (higher bits 0) at bit pos of dst; other bits are kept. */
static void put_field(uint32_t *dst, uint32_t pos, uint32_t n, uint32_t v) {
    const uint32_t w = pos >> 5, sh = pos & 31u;
    const uint32_t m = n == 32u ? 0xFFFFFFFFu : ((1u << n) - 1u);
    dst[w] = (dst[w] & ~(m << sh)) | (v << sh);
    if (sh + n > 32u) dst[w + 1u] = (dst[w + 1u] & ~(m >> (32u - sh))) | (v >> (32u - sh));
}

void bk_bits_copy(uint32_t *dst, uint32_t dst_off, const uint32_t *src, uint32_t src_off,
                  uint32_t n) {
    if (((dst_off | src_off) & 31u) == 0u) { /* word aligned: whole words, then a tail */
        const uint32_t whole = n >> 5;
        memcpy(dst + (dst_off >> 5), src + (src_off >> 5), (size_t)whole * sizeof(uint32_t));
        dst_off += whole << 5;
        src_off += whole << 5;
        n &= 31u;
    }
    while (n) {
        const uint32_t k = n < 32u ? n : 32u;
        put_field(dst, dst_off, k, get_field(src, src_off, k));
        dst_off += k;
        src_off += k;
        n -= k;
    }
}

uint32_t bk_popcount_words(const uint32_t *words, uint32_t n) {
    uint32_t c = 0;
    for (uint32_t i = 0; i < n; i++) c += bk_popcount32(words[i]);
    return c;
}

uint32_t bk_popcount32_portable(uint32_t x) { return bk_popcount32_swar(x); }

uint32_t bk_popcount32_instruction(uint32_t x) { return (uint32_t)__builtin_popcount(x); }
