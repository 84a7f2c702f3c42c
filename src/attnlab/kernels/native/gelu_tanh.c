/* GELU with the tanh approximation (GPT-2's activation), forward and backward in one pass
 * each over fp32 arrays, in its sigmoid form (see attnlab/layers/gelu_tanh.py):
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

#include "fast_exp.h"

#define GELU_C 1.5957691216057308f /* 2 sqrt(2/pi) */
#define GELU_A 0.044715f

static inline float sigmoid_of_gelu(float x) {
    return 1.0f / (1.0f + fast_exp(-GELU_C * (x + GELU_A * x * x * x)));
}

void attnlab_gelu_tanh_forward(const float *x, float *y, int64_t n, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * sigmoid_of_gelu(x[i]);
}

void attnlab_gelu_tanh_backward(const float *x, const float *grad, float *out, int64_t n, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float xi = x[i], s = sigmoid_of_gelu(xi);
        const float slope = GELU_C * (1.0f + 3.0f * GELU_A * xi * xi);
        out[i] = grad[i] * s * (1.0f + xi * (1.0f - s) * slope);
    }
}
