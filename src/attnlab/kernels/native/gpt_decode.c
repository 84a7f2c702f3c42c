/* GPT-2-shaped decoding in plain C (fp32): one step for B rows at one position, or a whole
 * greedy continuation of them.
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
 * attnlab_gpt_generate repeats the step, next token = argmax of the logits (the first
 * largest, as torch.argmax), so a greedy continuation costs one call instead of one per token.
 *
 * Weights are packed in panels of 16 columns, (ceil(out / 16), in, 16), zero-padded: a
 * panel is one contiguous stream, read once per step and applied to up to four rows at a
 * time from registers (four partial sums per column, i mod 4, added at the end; the same
 * operations for every row whatever the batch, so each row gets the bits it gets alone).
 * Batch-1 decoding of a small model is bound by reading the weights once per token; a
 * batch reads them once per step, not once per row.
 *
 * Caches are (B, H, capacity, Dh) per layer. `lineage` (B, capacity) int32, or NULL, says
 * in which row of the storage row b's key/value at position t lives: a beam search's
 * reorder rewrites this table (B x P ints) instead of copying the caches (the slot of
 * position t of storage row j is written once, at step t, so a history never changes). The
 * step writes its own keys/values at row b and sets lineage[b][P] = b.
 *
 * With `threads` > 1 everything runs in one OpenMP parallel region: each thread owns a slice
 * of the panels of every product (and some (row, head) pairs of the attention), with a
 * barrier between phases. PyTorch ships libgomp.so.1, so this library joins the process's
 * OpenMP runtime rather than starting a second one. Built and loaded by
 * attnlab.kernels.native.build; tests compare it with the PyTorch path and HF.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define W 16       /* panel width, one vector */
#define TILE 4     /* rows of the batch per pass over a panel */
typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t v16i __attribute__((vector_size(64), aligned(4), may_alias));

typedef struct {
    const float *norm1_weight, *norm1_bias;
    const float *qkv_weight, *qkv_bias;   /* panels of (D, 3D), (3D padded) */
    const float *out_weight, *out_bias;   /* panels of (D, D), (D padded) */
    const float *norm2_weight, *norm2_bias;
    const float *fc1_weight, *fc1_bias;   /* panels of (D, F), (F padded) */
    const float *fc2_weight, *fc2_bias;   /* panels of (F, D), (D padded) */
} gpt_layer;

typedef struct {
    int num_layers, d, heads, ffn, vocab;
    float eps;
    const gpt_layer *layers;
    const float *final_weight, *final_bias, *embedding /* (V, D), tied output */, *positions /* (context, D) */;
} gpt_model;

typedef struct {
    int batch, capacity;
    float *const *keys, *const *values; /* per layer (B, H, capacity, Dh) */
    int32_t *lineage;                   /* (B, capacity) or NULL */
} gpt_cache;

/* e^x for a vector, |error| ~ 1 ulp (Cephes' expf: x = n ln2 + r, a degree-6 polynomial in
 * r, times 2^n); x clamped to [-87, 88], where e^x is a normal float. */
static inline v16 vexp(v16 x) {
    const v16 lo = (v16){0} - 87.0f, hi = (v16){0} + 88.0f;
    v16i m = x < lo;
    x = (v16)((m & (v16i)lo) | (~m & (v16i)x));
    m = x > hi;
    x = (v16)((m & (v16i)hi) | (~m & (v16i)x));
    const v16 shifter = (v16){0} + 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const v16 t = x * 1.44269504088896341f + shifter;
    const v16 n = t - shifter;
    const v16 r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    v16 p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const v16i e = ((v16i)t - (v16i)shifter + 127) << 23; /* 2^n */
    return p * (v16)e;
}

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

/* The slice [begin, end) of n items this thread owns. */
static void my_slice(int n, int *begin, int *end) {
#ifdef _OPENMP
    const int t = omp_get_thread_num(), threads = omp_get_num_threads();
#else
    const int t = 0, threads = 1;
#endif
    *begin = (int)((long)n * t / threads);
    *end = (int)((long)n * (t + 1) / threads);
}

/* out[r] = x[r] . panel (16 columns) for R rows of x (stride n_in): four partial sums per
 * column (rows i mod 4 of the panel), added as (s0 + s1) + (s2 + s3). R is a constant at
 * every call, so the 4 R accumulators stay in registers. */
static inline __attribute__((always_inline)) void panel_rows(const int R, const float *x, int n_in, const float *panel,
                                                              v16 *out) {
    v16 acc[4][TILE];
    for (int k = 0; k < 4; k++)
        for (int r = 0; r < R; r++) acc[k][r] = (v16){0};
    int i = 0;
    for (; i + 4 <= n_in; i += 4) {
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const v16 w = *(const v16 *)(panel + (size_t)(i + k) * W);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[k][r] += w * x[(size_t)r * n_in + i + k];
        }
    }
    for (int k = 0; i < n_in; i++, k++) {
        const v16 w = *(const v16 *)(panel + (size_t)i * W);
        for (int r = 0; r < R; r++) acc[k][r] += w * x[(size_t)r * n_in + i];
    }
    for (int r = 0; r < R; r++) out[r] = (acc[0][r] + acc[1][r]) + (acc[2][r] + acc[3][r]);
}

/* GPT-2's tanh GELU, 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3) */
static inline v16 gelu_tanh(v16 x) {
    const v16 u = (x + x * x * x * 0.044715f) * 0.7978845608028654f;
    return x / (vexp(u * -2.0f) + 1.0f);
}

/* This thread's panels of Y (batch, n_out) = X (batch, n_in) W + bias, then GELU when `gelu`,
 * plus Y when `accumulate` (the residual). */
static void matmul(int batch, const float *x, const float *w, const float *bias, int n_in, int n_out, float *y,
                   int accumulate, int gelu) {
    int p0, p1;
    my_slice((n_out + W - 1) / W, &p0, &p1);
    for (int p = p0; p < p1; p++) {
        const float *panel = w + (size_t)p * n_in * W;
        const int j0 = p * W, width = n_out - j0 < W ? n_out - j0 : W;
        const v16 b = *(const v16 *)(bias + j0);
        for (int r0 = 0; r0 < batch; r0 += TILE) {
            const int rows = batch - r0 < TILE ? batch - r0 : TILE;
            const float *xr = x + (size_t)r0 * n_in;
            v16 out[TILE];
            switch (rows) {
                case 1: panel_rows(1, xr, n_in, panel, out); break;
                case 2: panel_rows(2, xr, n_in, panel, out); break;
                case 3: panel_rows(3, xr, n_in, panel, out); break;
                default: panel_rows(4, xr, n_in, panel, out); break;
            }
            for (int r = 0; r < rows; r++) {
                float *yr = y + (size_t)(r0 + r) * n_out + j0;
                v16 v = out[r] + b;
                if (gelu) v = gelu_tanh(v);
                if (width == W) {
                    if (accumulate) v += *(const v16 *)yr;
                    *(v16 *)yr = v;
                } else {
                    for (int j = 0; j < width; j++) yr[j] = (accumulate ? yr[j] : 0.0f) + v[j];
                }
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

/* One (row, head): out (Dh) = softmax(q K^T * scale) V over `keys` positions. Position t's
 * key is at k + src[t] * stride + t * dh (src NULL: 0), its value likewise in v.
 * scores: scratch of `keys` rounded up to 16. */
static void attend(const float *q, const float *k, const float *v, const int32_t *src, size_t stride, int keys, int dh,
                   float scale, float *scores, float *out) {
    float top = -INFINITY;
    for (int t = 0; t < keys; t++) {
        const size_t at = (src ? (size_t)src[t] * stride : 0) + (size_t)t * dh;
        scores[t] = dot(q, k + at, dh) * scale;
        top = scores[t] > top ? scores[t] : top;
    }
    v16 sum = (v16){0};
    for (int t = 0; t < keys; t += W) {
        v16 e = vexp(*(v16 *)(scores + t) - top);
        for (int j = keys - t; j < W; j++) e[j] = 0.0f; /* the last block's lanes past `keys` */
        *(v16 *)(scores + t) = e;
        sum += e;
    }
    float total = 0.0f;
    for (int j = 0; j < W; j++) total += sum[j];
    memset(out, 0, sizeof(float) * (size_t)dh);
    for (int t = 0; t < keys; t++) {
        const float p = scores[t], *row = v + (src ? (size_t)src[t] * stride : 0) + (size_t)t * dh;
#pragma omp simd
        for (int i = 0; i < dh; i++) out[i] += p * row[i];
    }
    const float inv = 1.0f / total;
#pragma omp simd
    for (int i = 0; i < dh; i++) out[i] *= inv;
}

/* Floats of workspace a step needs: h, x, att (B D each), qkv (B 3D), hidden (B F), and a
 * row of scores per (row, head), its length rounded up to whole vectors. */
size_t attnlab_gpt_workspace(const gpt_model *m, int batch, int capacity) {
    return (size_t)batch * (6 * (size_t)m->d + m->ffn) + (size_t)batch * m->heads * ((size_t)capacity + W);
}

/* One step, run by every thread of the region: tokens (batch) at position `past`; logits (batch, V). */
static void step(const gpt_model *m, const gpt_cache *c, int past, const int64_t *tokens, float *ws, float *logits) {
    const int d = m->d, heads = m->heads, ffn = m->ffn, batch = c->batch, capacity = c->capacity;
    const int dh = d / heads, pairs = batch * heads, d3 = 3 * d;
    const float scale = 1.0f / sqrtf((float)dh);
    const size_t row_cache = (size_t)heads * capacity * dh; /* one storage row of one layer */
    float *h = ws, *x = h + (size_t)batch * d, *att = x + (size_t)batch * d, *qkv = att + (size_t)batch * d;
    float *hidden = qkv + (size_t)batch * d3, *scores = hidden + (size_t)batch * ffn;
    const size_t score_row = (size_t)capacity + W;
    int begin, end;
#pragma omp for
    for (int b = 0; b < batch; b++) {
        const float *e = m->embedding + (size_t)tokens[b] * d, *pos = m->positions + (size_t)past * d;
        for (int i = 0; i < d; i++) h[(size_t)b * d + i] = e[i] + pos[i];
        if (c->lineage) c->lineage[(size_t)b * capacity + past] = b;
    }
    for (int l = 0; l < m->num_layers; l++) {
        const gpt_layer *w = m->layers + l;
#pragma omp for
        for (int b = 0; b < batch; b++) layer_norm(h + b * d, w->norm1_weight, w->norm1_bias, m->eps, d, x + b * d);
        matmul(batch, x, w->qkv_weight, w->qkv_bias, d, d3, qkv, 0, 0);
#pragma omp barrier
        my_slice(pairs, &begin, &end);
        for (int p = begin; p < end; p++) { /* (row, head) pairs */
            const int b = p / heads, hd = p % heads;
            const float *row = qkv + (size_t)b * d3;
            float *k = c->keys[l] + (size_t)hd * capacity * dh, *v = c->values[l] + (size_t)hd * capacity * dh;
            memcpy(k + b * row_cache + (size_t)past * dh, row + d + hd * dh, sizeof(float) * (size_t)dh);
            memcpy(v + b * row_cache + (size_t)past * dh, row + 2 * d + hd * dh, sizeof(float) * (size_t)dh);
            const int32_t *src = c->lineage ? c->lineage + (size_t)b * capacity : NULL;
            if (!src) k += b * row_cache, v += b * row_cache;
            attend(row + hd * dh, k, v, src, row_cache, past + 1, dh, scale, scores + (size_t)p * score_row,
                   att + (size_t)b * d + hd * dh);
        }
#pragma omp barrier
        matmul(batch, att, w->out_weight, w->out_bias, d, d, h, 1, 0);
#pragma omp barrier
#pragma omp for
        for (int b = 0; b < batch; b++) layer_norm(h + b * d, w->norm2_weight, w->norm2_bias, m->eps, d, x + b * d);
        matmul(batch, x, w->fc1_weight, w->fc1_bias, d, ffn, hidden, 0, 1);
#pragma omp barrier
        matmul(batch, hidden, w->fc2_weight, w->fc2_bias, ffn, d, h, 1, 0);
#pragma omp barrier
    }
#pragma omp for
    for (int b = 0; b < batch; b++) layer_norm(h + b * d, m->final_weight, m->final_bias, m->eps, d, x + b * d);
    my_slice(m->vocab, &begin, &end);
    for (int t = begin; t < end; t++)
        for (int b = 0; b < batch; b++) logits[(size_t)b * m->vocab + t] = dot(m->embedding + (size_t)t * d, x + b * d, d);
#pragma omp barrier
}

static int tokens_valid(const gpt_model *m, int batch, const int64_t *tokens) {
    for (int b = 0; b < batch; b++)
        if (tokens[b] < 0 || tokens[b] >= m->vocab) return 0;
    return 1;
}

/* One step for c->batch rows at position `past`: logits (batch, V); LN_f(h) is left in the
 * workspace at [batch D, 2 batch D). Returns -1 (and does nothing) for a
 * token outside the vocabulary, else 0. The caller checks past < capacity, context. */
int attnlab_gpt_decode(const gpt_model *m, const gpt_cache *c, int past, int threads, const int64_t *tokens,
                       float *workspace, float *logits) {
    if (!tokens_valid(m, c->batch, tokens)) return -1;
#pragma omp parallel num_threads(threads)
    step(m, c, past, tokens, workspace, logits);
    return 0;
}

/* Greedy continuation: feed tokens (batch) at `past`, then each row's argmax, `steps`
 * times; out (steps, batch) gets the chosen tokens. With eos >= 0 a row that chose eos is
 * finished and gets `pad` from then on; the loop stops when every row is finished.
 * finished (batch): the rows finished before the call (updated). Returns the steps made,
 * or -1 for a token outside the vocabulary. logits (batch, V): the last step's. */
int attnlab_gpt_generate(const gpt_model *m, const gpt_cache *c, int past, int threads, int steps, int64_t eos,
                         int64_t pad, const int64_t *tokens, uint8_t *finished, float *workspace, float *logits,
                         int64_t *out) {
    const int batch = c->batch;
    if (!tokens_valid(m, batch, tokens)) return -1;
    int made = 0;
#pragma omp parallel num_threads(threads)
    for (int s = 0; s < steps; s++) {
        step(m, c, past + s, s == 0 ? tokens : out + (size_t)batch * (s - 1), workspace, logits);
#pragma omp single
        {
            int done = 1;
            for (int b = 0; b < batch; b++) {
                const float *z = logits + (size_t)b * m->vocab;
                int64_t best = 0;
                for (int t = 1; t < m->vocab; t++)
                    if (z[t] > z[best] || (isnan(z[t]) && !isnan(z[best]))) best = t;
                if (eos >= 0) {
                    if (finished[b]) best = pad;
                    finished[b] |= best == eos;
                    done &= finished[b];
                }
                out[(size_t)batch * s + b] = best;
            }
            made = s + 1;
            if (eos >= 0 && done) steps = s + 1; /* every thread sees it after the single's barrier */
        }
    }
    return made;
}
