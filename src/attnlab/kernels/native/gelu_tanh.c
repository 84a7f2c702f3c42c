/* GELU with the tanh approximation (GPT-2's activation), forward and backward in one pass
 * each over fp32 or bf16 arrays, in its sigmoid form (see attnlab/kernels/gelu_tanh.py):
 *
 *     y  = x * s,                 s = sigmoid(v),  v = c (x + a x^3),  c = 2 sqrt(2/pi), a = 0.044715
 *     dx = g * s * (1 + x (1 - s) v'),             v' = c (1 + 3 a x^2)
 *
 * PyTorch computes this as 4-6 elementwise passes over memory (or with a slower tanh);
 * here each element is read once and written once, and exp is a polynomial the compiler
 * vectorizes (Cephes' expf: a degree-6 polynomial on [-ln2/2, ln2/2] after range
 * reduction, within 2 ulp of expf). The backward recomputes s from x, so the forward
 * saves nothing but its input.
 */
#include <stdint.h>
#include <string.h>

#include "fast_exp.h"

#define GELU_C 1.5957691216057308f /* 2 sqrt(2/pi) */
#define GELU_A 0.044715f

static inline float sigmoid_of_gelu(float x) {
    return 1.0f / (1.0f + fast_exp(-GELU_C * (x + GELU_A * x * x * x)));
}

static inline float gelu(float x) { return x * sigmoid_of_gelu(x); }

static inline float gelu_grad(float x, float grad) {
    const float s = sigmoid_of_gelu(x), slope = GELU_C * (1.0f + 3.0f * GELU_A * x * x);
    return grad * s * (1.0f + x * (1.0f - s) * slope);
}

/* bf16 is the upper half of an fp32: widening is exact; narrowing rounds to nearest even and
 * keeps NaN a (quiet) NaN, as PyTorch's c10::BFloat16 does. */
static inline float from_bf16(uint16_t h) {
    const uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    const uint16_t rounded = (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    return f != f ? (uint16_t)0x7FC0 : rounded;
}

void attnlab_gelu_tanh_forward(const float *x, float *y, int64_t n, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = gelu(x[i]);
}

void attnlab_gelu_tanh_backward(const float *x, const float *grad, float *out, int64_t n, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = gelu_grad(x[i], grad[i]);
}

/* The same on bf16 arrays (bf16 autocast): computed in fp32, each result rounded once. */
void attnlab_gelu_tanh_forward_bf16(const uint16_t *x, uint16_t *y, int64_t n, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = to_bf16(gelu(from_bf16(x[i])));
}

void attnlab_gelu_tanh_backward_bf16(const uint16_t *x, const uint16_t *grad, uint16_t *out, int64_t n, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = to_bf16(gelu_grad(from_bf16(x[i]), from_bf16(grad[i])));
}
