/* N-bit accumulation of a sequence of exact partial sums; the arithmetic and its
 * derivation live in accumulator.h. Used by tests and by anyone who has partials. */
#include "accumulator.h"

#include "bnn.h"

int32_t bk_accumulate(const int32_t *partials, uint32_t n, unsigned bits, unsigned mode) {
    if (mode == BK_ACC_WRAP) {
        uint32_t sum = 0; /* exact sum mod 2^32 */
        for (uint32_t i = 0; i < n; i++) sum += (uint32_t)partials[i];
        return bk_acc_wrap(sum, bits);
    }
    int32_t acc = 0;
    for (uint32_t i = 0; i < n; i++) acc = bk_acc_sat_add(acc, partials[i], bits);
    return acc;
}
