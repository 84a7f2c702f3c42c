/* One decoding step of a GPT-2-shaped model for one sequence, in plain C (fp32).
 *
 * The same computation as attnlab.models.gpt_decoding.decode_blocks followed by the final
 * LayerNorm and the tied output layer, for B rows at one position (no padding; B = 1: one
 * sequence, B > 1: a batch or the beams of a beam search), per row:
 *
 *     h = W_e[token] + W_p[position]                                  (D)
 *     per layer:  x = LN_1(h);  [q k v] = x W_qkv + b_qkv            (3D)
 *                 K[:, P] = k;  V[:, P] = v                           write the cache
 *                 a_h = softmax(q_h K_h^T / sqrt(Dh)) V_h             per head, over P + 1 keys
 *                 h = h + a W_o + b_o
 *                 h = h + gelu_tanh(LN_2(h) W_1 + b_1) W_2 + b_2
 *     logits = LN_f(h) W_e^T                                          (V)
 *
 * Matrices are laid out (in, out), row-major, as gpt_decoding.LayerWeights stores them, so a
 * matrix-vector product streams the weight once, row by row, into an output vector that
 * stays in L1; with B > 1 rows each block of weight rows is read once and applied to every
 * row (matmul()), so a batch reads the weights once per step, not once per row, and each
 * row gets the bits it would get alone. Caches are (B, H, capacity, Dh) per layer. With `threads` > 1 the step runs in
 * one OpenMP parallel region: each thread owns a slice of the output columns of every
 * product (and some heads of the attention), with a barrier between phases; the
 * LayerNorms are computed by one thread. PyTorch ships libgomp.so.1, so this library
 * joins the process's own OpenMP runtime rather than starting a second one. Batch-1 decoding of a small model
 * is bound by reading the weights once per token; in eager PyTorch the ~60 small
 * operations per token cost more than that (Python and dispatcher overhead), which
 * this one call removes. Built and loaded by attnlab.native.build; tests compare it with
 * the PyTorch path.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    const float *norm1_weight, *norm1_bias;
    const float *qkv_weight, *qkv_bias;   /* (D, 3D), (3D) */
    const float *out_weight, *out_bias;   /* (D, D), (D) */
    const float *norm2_weight, *norm2_bias;
    const float *fc1_weight, *fc1_bias;   /* (D, F), (F) */
    const float *fc2_weight, *fc2_bias;   /* (F, D), (D) */
} gpt_layer;

/* y = LN(x) * weight + bias over n features */
static void layer_norm(const float *x, const float *weight, const float *bias, float eps, int n, float *y) {
    float mean = 0.0f, var = 0.0f;
#pragma omp simd reduction(+ : mean)
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= (float)n;
#pragma omp simd reduction(+ : var)
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    const float inv = 1.0f / sqrtf(var / (float)n + eps);
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * weight[i] + bias[i];
}

/* The slice [begin, end) of n items this thread owns, cut at multiples of `align`. */
static void my_slice(int n, int align, int *begin, int *end) {
#ifdef _OPENMP
    const int t = omp_get_thread_num(), threads = omp_get_num_threads();
#else
    const int t = 0, threads = 1;
#endif
    const int blocks = (n + align - 1) / align;
    *begin = (int)((long)blocks * t / threads) * align;
    *end = (int)((long)blocks * (t + 1) / threads) * align;
    if (*end > n) *end = n;
    if (*begin > n) *begin = n;
}

/* This thread's columns of Y (batch, n_out) = X (batch, n_in) W + bias (+ Y when accumulate),
 * in blocks of BLOCK_COLS columns: each block of four weight rows (4 KiB) is read from
 * memory once and applied to every row of the batch from L1; four rows per pass, so a
 * row of Y is read and written once per four weight rows. Each row of Y is computed in
 * the same order whatever the batch, so it gets the bits it would get alone. */
#define BLOCK_COLS 256
static void matmul(int batch, const float *x, const float *w, const float *bias, int n_in, int n_out, float *y,
                   int accumulate) {
    int j0, j1;
    my_slice(n_out, 16, &j0, &j1);
    for (int jb = j0; jb < j1; jb += BLOCK_COLS) {
        const int je = jb + BLOCK_COLS < j1 ? jb + BLOCK_COLS : j1;
        for (int b = 0; b < batch; b++) {
            float *yb = y + (size_t)b * n_out;
#pragma omp simd
            for (int j = jb; j < je; j++) yb[j] = (accumulate ? yb[j] : 0.0f) + bias[j];
        }
        int i = 0;
        for (; i + 4 <= n_in; i += 4) {
            const float *r0 = w + (size_t)i * n_out, *r1 = r0 + n_out, *r2 = r1 + n_out, *r3 = r2 + n_out;
            for (int b = 0; b < batch; b++) {
                const float *xb = x + (size_t)b * n_in;
                const float x0 = xb[i], x1 = xb[i + 1], x2 = xb[i + 2], x3 = xb[i + 3];
                float *yb = y + (size_t)b * n_out;
#pragma omp simd
                for (int j = jb; j < je; j++) yb[j] += x0 * r0[j] + x1 * r1[j] + x2 * r2[j] + x3 * r3[j];
            }
        }
        for (; i < n_in; i++) {
            const float *r = w + (size_t)i * n_out;
            for (int b = 0; b < batch; b++) {
                const float xi = x[(size_t)b * n_in + i];
                float *yb = y + (size_t)b * n_out;
#pragma omp simd
                for (int j = jb; j < je; j++) yb[j] += xi * r[j];
            }
        }
    }
}

static float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* One head: out (Dh) = softmax(q K^T * scale) V over `keys` cached rows; scores: scratch (keys) */
static void attend(const float *q, const float *k, const float *v, int keys, int dh, float scale, float *scores, float *out) {
    float top = -INFINITY;
    for (int t = 0; t < keys; t++) {
        scores[t] = dot(q, k + (size_t)t * dh, dh) * scale;
        if (scores[t] > top) top = scores[t];
    }
    float total = 0.0f;
    for (int t = 0; t < keys; t++) {
        scores[t] = expf(scores[t] - top);
        total += scores[t];
    }
    memset(out, 0, sizeof(float) * (size_t)dh);
    for (int t = 0; t < keys; t++) {
        const float p = scores[t] / total, *row = v + (size_t)t * dh;
#pragma omp simd
        for (int i = 0; i < dh; i++) out[i] += p * row[i];
    }
}

/* GPT-2's tanh GELU, 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3) */
static void gelu_tanh(float *x, int begin, int end) {
    const float c = 0.7978845608028654f;
    for (int i = begin; i < end; i++) {
        const float u = c * (x[i] + 0.044715f * x[i] * x[i] * x[i]);
        x[i] = x[i] / (1.0f + expf(-2.0f * u));
    }
}

/* The step for `batch` rows, all at position `past`. tokens: (batch). keys/values[l]: layer
 * l's cache (batch, H, capacity, Dh), `past` rows filled; the new row is written at `past`.
 * workspace: batch (6 D + F + H capacity) floats. logits: (batch, V). */
void attnlab_gpt_decode(
    int num_layers, int d, int heads, int ffn, int vocab, int capacity, int past, float eps, int threads, int batch,
    const gpt_layer *layers, float *const *keys, float *const *values,
    const int64_t *tokens, const float *position_row, const float *final_weight, const float *final_bias,
    const float *embedding, float *workspace, float *logits) {
    const int dh = d / heads, pairs = batch * heads;
    const float scale = 1.0f / sqrtf((float)dh);
    const size_t row_cache = (size_t)heads * capacity * dh; /* one row's cache of one layer */
    float *h = workspace, *x = h + (size_t)batch * d, *qkv = x + (size_t)batch * d, *att = qkv + (size_t)batch * 3 * d;
    float *hidden = att + (size_t)batch * d, *scores = hidden + (size_t)batch * ffn;
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < d; i++) h[(size_t)b * d + i] = embedding[(size_t)tokens[b] * d + i] + position_row[i];
#pragma omp parallel num_threads(threads)
    {
        int begin, end;
        for (int l = 0; l < num_layers; l++) {
            const gpt_layer *w = layers + l;
#pragma omp for
            for (int b = 0; b < batch; b++)
                layer_norm(h + (size_t)b * d, w->norm1_weight, w->norm1_bias, eps, d, x + (size_t)b * d);
            matmul(batch, x, w->qkv_weight, w->qkv_bias, d, 3 * d, qkv, 0);
#pragma omp barrier
            my_slice(pairs, 1, &begin, &end);
            for (int p = begin; p < end; p++) {  /* (row, head) pairs */
                const int b = p / heads, hd = p % heads;
                const float *row = qkv + (size_t)b * 3 * d;
                float *k = keys[l] + b * row_cache + (size_t)hd * capacity * dh;
                float *v = values[l] + b * row_cache + (size_t)hd * capacity * dh;
                memcpy(k + (size_t)past * dh, row + d + hd * dh, sizeof(float) * (size_t)dh);
                memcpy(v + (size_t)past * dh, row + 2 * d + hd * dh, sizeof(float) * (size_t)dh);
                attend(row + hd * dh, k, v, past + 1, dh, scale, scores + (size_t)begin * capacity /* a row per thread */,
                       att + (size_t)b * d + hd * dh);
            }
#pragma omp barrier
            matmul(batch, att, w->out_weight, w->out_bias, d, d, h, 1);
#pragma omp barrier
#pragma omp for
            for (int b = 0; b < batch; b++)
                layer_norm(h + (size_t)b * d, w->norm2_weight, w->norm2_bias, eps, d, x + (size_t)b * d);
            matmul(batch, x, w->fc1_weight, w->fc1_bias, d, ffn, hidden, 0);
            my_slice(ffn, 16, &begin, &end);  /* the columns this thread wrote */
            for (int b = 0; b < batch; b++) gelu_tanh(hidden + (size_t)b * ffn, begin, end);
#pragma omp barrier
            matmul(batch, hidden, w->fc2_weight, w->fc2_bias, ffn, d, h, 1);
#pragma omp barrier
        }
#pragma omp for
        for (int b = 0; b < batch; b++)
            layer_norm(h + (size_t)b * d, final_weight, final_bias, eps, d, x + (size_t)b * d);
        my_slice(vocab, 16, &begin, &end);
        for (int t = begin; t < end; t++)
            for (int b = 0; b < batch; b++) logits[(size_t)b * vocab + t] = dot(embedding + (size_t)t * d, x + (size_t)b * d, d);
    }
}
