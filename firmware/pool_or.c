/* OR pooling over time on packed bits: with bit 1 = the larger value ({-1,+1} or
 * {0,1}), OR of the bits is the max, so max pooling costs one OR per word. */
#include "bnn.h"

void bk_pool_or(const uint32_t *x, uint32_t t_in, uint32_t words, uint32_t kernel,
                uint32_t *y) {
    const uint32_t t_out = t_in / kernel; /* a trailing partial window is dropped */
    BK_COUNT(pool_ors, t_out * (kernel - 1u) * words);
    for (uint32_t t = 0; t < t_out; t++) {
        uint32_t *out = y + (size_t)t * words;
        const uint32_t *in = x + (size_t)t * kernel * words;
        for (uint32_t w = 0; w < words; w++) out[w] = in[w];
        for (uint32_t k = 1; k < kernel; k++) {
            in += words;
            for (uint32_t w = 0; w < words; w++) out[w] |= in[w];
        }
    }
}
