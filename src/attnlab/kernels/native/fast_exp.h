/* A vectorizable exp for the native kernels (included by gelu_tanh.c and
 * causal_attention.c). */
#ifndef ATTNLAB_FAST_EXP_H
#define ATTNLAB_FAST_EXP_H

#include <stdint.h>
#include <string.h>

/* exp(x): 0 below -87.3 (exp(-inf) = 0 exactly), exp(88.3) above 88.3, else
 * x = n ln2 + r, exp(x) = 2^n p(r) (Cephes' expf: within 2 ulp of expf). Written without
 * floorf or float-to-int conversion (the magic-number rounding below), which keep gcc 12
 * from vectorizing the loops that call it. */
static inline float fast_exp(float x) {
    const float underflow = x < -87.3f ? 0.0f : 1.0f;
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    const float shifted = x * 1.44269504088896341f + 12582912.0f; /* + 1.5 * 2^23 rounds to an integer */
    const float n = shifted - 12582912.0f;
    const float r = x - n * 0.693359375f + n * 2.12194440e-4f; /* x - n ln2, ln2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits;
    memcpy(&bits, &shifted, sizeof bits); /* n sits in the low mantissa bits of `shifted` */
    bits = (bits - 0x4B400000 + 127) << 23; /* 2^n as a float's bits */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale * underflow;
}

#endif
