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
 * Weights are packed in panels of 16 columns, (ceil(out / 16), in, 16), zero-padded (the
 * tied output layer too, as W_e^T): a panel is one contiguous stream, read once per step
 * (prefetched ahead) and applied to up to 8 rows at a time, several panels at once (16 / rows
 * of them, at most 8), from registers. Each column is one sum over the inputs in order, the
 * same operations for every row whatever the batch and the tile, so each row gets the bits
 * it gets alone. Batch-1 decoding of a small model is bound by reading the weights once per
 * token; a batch reads them once per step, not once per row. The attention over the cache
 * is gpt_attend.h's.
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

#include "gpt_attend.h"

#define ROWS 8     /* rows of the batch per pass over the panels */
#define PANELS 8   /* most panels per pass */
#define AHEAD 64   /* weight rows (64-byte lines) prefetched ahead of the products */

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
    const float *final_weight, *final_bias, *embedding /* (V, D) */, *positions /* (context, D) */;
    const float *output; /* panels of the tied output layer W_e^T (D, V) */
} gpt_model;

typedef struct {
    int batch, capacity;
    float *const *keys, *const *values; /* per layer (B, H, capacity, Dh) */
    int32_t *lineage;                   /* (B, capacity) or NULL */
} gpt_cache;

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

/* out[r][p] = x[r] . panel p (16 columns) for R rows of x (stride n_in) and P panels (a
 * stride of `next` floats apart): one sum per column, over i in order, for every R and P, so
 * a row gets the same bits in any tile. R and P are constants at every call, so the R P
 * accumulators stay in registers: a pass reads P weight vectors and R scalars of x per i
 * for R P vector products. */
static inline __attribute__((always_inline)) void tile(const int R, const int P, const float *x, int n_in,
                                                        const float *panel, size_t next, v16 out[ROWS][PANELS]) {
    v16 acc[ROWS][PANELS];
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++) acc[r][p] = (v16){0};
    for (int i = 0; i < n_in; i++) {
        v16 w[PANELS];
        for (int p = 0; p < P; p++) {
            w[p] = *(const v16 *)(panel + p * next + (size_t)i * W);
            __builtin_prefetch(panel + p * next + (size_t)(i + AHEAD) * W); /* a hint: past the end is harmless */
        }
        for (int r = 0; r < R; r++) {
            const float xr = x[(size_t)r * n_in + i];
            for (int p = 0; p < P; p++) acc[r][p] += w[p] * xr;
        }
    }
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++) out[r][p] = acc[r][p];
}

/* tile() for `rows` (1..8) rows and the most panels, of `left`, that keep the accumulators
 * in registers (16 / rows panels, at most 8; fewer, in powers of two, for the last ones).
 * Returns the panels done. */
static int tile_for(int rows, int left, const float *x, int n_in, const float *panel, v16 out[ROWS][PANELS]) {
    const size_t next = (size_t)n_in * W;
#define TILE_P(R, P) \
    if (left >= P) { tile(R, P, x, n_in, panel, next, out); return P; }
#define TILE_END(R) tile(R, 1, x, n_in, panel, next, out); return 1;
    switch (rows) {
        case 1: TILE_P(1, 8) TILE_P(1, 4) TILE_P(1, 2) TILE_END(1)
        case 2: TILE_P(2, 8) TILE_P(2, 4) TILE_P(2, 2) TILE_END(2)
        case 3: TILE_P(3, 4) TILE_P(3, 2) TILE_END(3)
        case 4: TILE_P(4, 4) TILE_P(4, 2) TILE_END(4)
        case 5: TILE_P(5, 2) TILE_END(5)
        case 6: TILE_P(6, 2) TILE_END(6)
        case 7: TILE_P(7, 2) TILE_END(7)
        default: TILE_P(8, 2) TILE_END(8)
    }
#undef TILE_P
#undef TILE_END
}

/* GPT-2's tanh GELU, 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3) */
static inline v16 gelu_tanh(v16 x) {
    const v16 u = (x + x * x * x * 0.044715f) * 0.7978845608028654f;
    return x / (vexp(u * -2.0f) + 1.0f);
}

/* This thread's panels of Y (batch, n_out) = X (batch, n_in) W + bias (NULL: none), then GELU
 * when `gelu`, plus Y when `accumulate` (the residual). Rows in tiles of 8, panels in groups
 * of up to 8 (tile_for). */
static void matmul(int batch, const float *x, const float *w, const float *bias, int n_in, int n_out, float *y,
                   int accumulate, int gelu) {
    int p0, p1;
    my_slice((n_out + W - 1) / W, &p0, &p1);
    for (int r0 = 0; r0 < batch; r0 += ROWS) {
        const int rows = batch - r0 < ROWS ? batch - r0 : ROWS;
        const float *xr = x + (size_t)r0 * n_in;
        for (int p = p0; p < p1;) {
            v16 out[ROWS][PANELS];
            const int done = tile_for(rows, p1 - p, xr, n_in, w + (size_t)p * n_in * W, out);
            for (int q = 0; q < done; q++) {
                const int j0 = (p + q) * W, width = n_out - j0 < W ? n_out - j0 : W;
                const v16 b = bias ? *(const v16 *)(bias + j0) : (v16){0};
                for (int r = 0; r < rows; r++) {
                    float *yr = y + (size_t)(r0 + r) * n_out + j0;
                    v16 v = out[r][q] + b;
                    if (gelu) v = gelu_tanh(v);
                    if (width == W) {
                        if (accumulate) v += *(const v16 *)yr;
                        *(v16 *)yr = v;
                    } else {
                        for (int j = 0; j < width; j++) yr[j] = (accumulate ? yr[j] : 0.0f) + v[j];
                    }
                }
            }
            p += done;
        }
    }
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
    matmul(batch, x, m->output, NULL, d, m->vocab, logits, 0, 0);
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
