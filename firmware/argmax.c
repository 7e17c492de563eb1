/* Predicted class: the first index of the maximum score (ties go to the lowest index). */
#include "bnn.h"

uint32_t bk_argmax_i32(const int32_t *v, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}
