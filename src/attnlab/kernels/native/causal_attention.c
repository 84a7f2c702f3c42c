/* Self-attention, causal or unmasked, forward and backward, in fp32 on the CPU (see
 * attnlab/kernels/causal_kernel.py). For one (batch, head) pair, T positions, head
 * width d, s = the softmax scale:
 *
 *     S = s Q K^T,  P = softmax(S) over keys j <= i (causal) or all j,  O = P V,
 *     lse_i = log sum_j exp(S_ij)
 *     backward (FlashAttention-2's; Dao 2023), P kept by the forward or recomputed from lse:
 *     dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),
 *     dQ = s dS K,  dK = s dS^T Q,  dV = P^T dO
 *
 * Each pair's T x T scores live in a per-thread workspace (T = 128: 64 KB, in L2), so the
 * seven products run back to back out of cache, skip the masked half, and read Q, K, V
 * and write O, dQ, dK, dV in the caller's strided layout (the rows of a packed q/k/v
 * projection): no transposes or copies outside. The products share the register-tiled
 * kernel of attention_tiles.h (with AVX-512, 6 rows x 4 vectors of accumulators).
 * Past T = 512 the scores leave L2: flash_attention.c takes over there.
 * Threads take (batch, head) pairs, and prefetch the next pair's rows while computing.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "attention_tiles.h"
#include "fast_exp.h"

/* The head widths this build takes must be multiples of this. */
int attnlab_causal_attention_vector_width(void) { return VW; }

/* Which part of C = A B the causal mask leaves, per block of rows [i0, i0 + MR):
 * CAUSAL_COLUMNS: columns j < i0 + MR (scores, S and dP; k over the head width);
 * KEYS_UP_TO_ROW: k < i0 + MR (P V and dS K: row i weighs keys j <= i);
 * QUERIES_FROM_ROW: k >= i0 (dS^T Q and P^T dO: key j gets from queries i >= j);
 * WHOLE: all of it (every product of unmasked attention).
 * A's entries outside the mask must be zero within a block (the rows of P and dS are). */
enum part { CAUSAL_COLUMNS, KEYS_UP_TO_ROW, QUERIES_FROM_ROW, WHOLE };

/* The part of a product that attention with this mask needs. */
static enum part masked(int causal, enum part part) { return causal ? part : WHOLE; }

/* C (m x n) = alpha A (m x k) B (k x n) over `part`; n a multiple of VW, B and C rows contiguous. */
static void product(enum part part, int64_t m, int64_t n, int64_t k, const float *a, int64_t a_row, int64_t a_col,
                    const float *b, int64_t b_row, float *c, int64_t c_row, float alpha) {
    for (int64_t i0 = 0; i0 < m; i0 += MR) {
        const int mr = m - i0 < MR ? (int)(m - i0) : MR;
        const int64_t columns = part == CAUSAL_COLUMNS ? round_up(i0 + mr, VW) : n;
        const int64_t k0 = part == QUERIES_FROM_ROW ? i0 : 0;
        const int64_t k1 = part == KEYS_UP_TO_ROW ? i0 + mr : k;
        for (int64_t j0 = 0; j0 < columns; j0 += NV * VW) {
            const int nv = columns - j0 < NV * VW ? (int)((columns - j0) / VW) : NV;
            any_tile(mr, nv, k0, k1, a + i0 * a_row, a_row, a_col, b + j0, b_row, c + i0 * c_row + j0, c_row, alpha, 0);
        }
    }
}

/* xt (d x tp) = x^T for x (t x d, rows x_row apart); columns t..tp-1 zero. Rows are
 * read whole (the stores stride, which costs less than strided loads here). */
static void transpose(const float *x, int64_t t, int64_t d, int64_t x_row, float *xt, int64_t tp) {
    for (int64_t i = 0; i < t; i++)
        for (int64_t c = 0; c < d; c += VW) {
            const vf lanes = load(x + i * x_row + c);
            for (int l = 0; l < VW; l++) xt[(c + l) * tp + i] = lanes[l];
        }
    for (int64_t c = 0; c < d; c++)
        for (int64_t i = t; i < tp; i++) xt[c * tp + i] = 0.0f;
}

/* A row of the scores -> its softmax over keys j <= last, zeros after; returns
 * log sum_j exp(S_ij). It runs over whole vectors (to j < round_up(last + 1, VW): scores
 * are computed there), the keys after `last` set to -inf so that their exp is 0.
 * `last`: the row's own position when causal, T - 1 otherwise. */
static float softmax_row(float *row, int64_t last, int64_t tp) {
    const int64_t width = round_up(last + 1, VW);
    for (int64_t j = last + 1; j < width; j++) row[j] = -INFINITY;
    const float top = row_max(row, width, -INFINITY), sum = exp_and_sum(row, width, top);
    const vf inverse = (vf){0} + 1.0f / sum;
    for (int64_t j = 0; j < width; j += VW) *(vf *)(row + j) = load(row + j) * inverse;
    for (int64_t j = width; j < tp; j++) row[j] = 0.0f;
    return top + logf(sum);
}

/* Ask for the t rows of pair `next` of each of `count` tensors while this pair computes:
 * the rows are strided (a packed projection), and waiting on them was a third of the time
 * outside the products. */
static void prefetch_pair(const view *tensors, int count, int64_t next, int64_t pairs, int64_t heads, int64_t t,
                          int64_t d) {
    if (next >= pairs) return;
    for (int n = 0; n < count; n++) {
        const float *x = pair_rows(tensors[n], next, heads);
        for (int64_t i = 0; i < t; i++)
            for (int64_t c = 0; c < d; c += 64 / (int64_t)sizeof(float))
                __builtin_prefetch(x + i * tensors[n].row + c, 0, 2);
    }
}

/* The workspace of one thread: two d x tp transposes and two t x tp score matrices (the
 * forward uses one of each). */
static float *workspace(int64_t t, int64_t d) {
    const int64_t tp = round_up(t, VW);
    return malloc(sizeof(float) * (size_t)(2 * d * tp + 2 * t * tp));
}

/* W = P / H for head 0, W += P / H for the others: (t x t) weights averaged over the heads. */
static void add_mean_weights(const float *p, int64_t t, int64_t tp, int64_t head, int64_t heads, float *w) {
    const float share = 1.0f / (float)heads;
    for (int64_t i = 0; i < t; i++) {
        const float *pi = p + i * tp;
        float *wi = w + i * t;
        if (head == 0) {
#pragma omp simd
            for (int64_t j = 0; j < t; j++) wi[j] = pi[j] * share;
        } else {
#pragma omp simd
            for (int64_t j = 0; j < t; j++) wi[j] += pi[j] * share;
        }
    }
}

/* Returns 0, or 1 when a workspace could not be allocated (nothing is then valid).
 * `probabilities` (B, H, t, tp), or NULL: where to keep P for the backward; `mean_weights`
 * (B, t, t), or NULL: where to write P averaged over the heads (a thread then takes whole
 * batches, whose heads add into one block); `causal`: 1 for causal attention, 0 for
 * unmasked attention (every query sees every key). */
int attnlab_causal_attention_forward(float *q, float *k, float *v, float *o, float *lse, float *probabilities,
                                     float *mean_weights, int64_t batch, int64_t heads, int64_t t, int64_t d,
                                     const int64_t *strides, float scale, int threads, int causal) {
    const view vq = view_of(q, strides), vk = view_of(k, strides + 3), vv = view_of(v, strides + 6),
               vo = view_of(o, strides + 9);
    const int64_t tp = round_up(t, VW);
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        float *kt = workspace(t, d);
        float *p = kt + 2 * d * tp;
        failed = kt == NULL;
        const int64_t per_unit = mean_weights == NULL || heads == 0 ? 1 : heads;
#pragma omp for schedule(static)
        for (int64_t unit = 0; unit < batch * heads / per_unit; unit++)
        for (int64_t pair = unit * per_unit; pair < (unit + 1) * per_unit; pair++) {
            if (kt == NULL) continue;
            const float *qp = pair_rows(vq, pair, heads), *kp = pair_rows(vk, pair, heads);
            const view inputs[] = {vq, vk, vv};
            prefetch_pair(inputs, 3, pair + 1, batch * heads, heads, t, d);
            float *pp = probabilities == NULL ? p : probabilities + pair * t * tp;
            transpose(kp, t, d, vk.row, kt, tp);
            product(masked(causal, CAUSAL_COLUMNS), t, tp, d, qp, vq.row, 1, kt, tp, pp, tp, scale);  /* S */
            for (int64_t i = 0; i < t; i++) lse[pair * t + i] = softmax_row(pp + i * tp, causal ? i : t - 1, tp);
            if (mean_weights != NULL) add_mean_weights(pp, t, tp, pair % heads, heads, mean_weights + pair / heads * t * t);
            product(masked(causal, KEYS_UP_TO_ROW), t, d, t, pp, tp, 1, pair_rows(vv, pair, heads), vv.row,
                    pair_rows(vo, pair, heads), vo.row, 1.0f);  /* O = P V */
        }
        free(kt);
    }
    return failed;
}

/* `probabilities`: P kept by the forward, or NULL to recompute it from lse. */
int attnlab_causal_attention_backward(float *q, float *k, float *v, float *o, float *lse, float *probabilities,
                                      float *grad_o,
                                      float *grad_q, float *grad_k, float *grad_v, int64_t batch, int64_t heads,
                                      int64_t t, int64_t d, const int64_t *strides, float scale, int threads,
                                      int causal) {
    const view vq = view_of(q, strides), vk = view_of(k, strides + 3), vv = view_of(v, strides + 6),
               vo = view_of(o, strides + 9), vdo = view_of(grad_o, strides + 12), vdq = view_of(grad_q, strides + 15),
               vdk = view_of(grad_k, strides + 18), vdv = view_of(grad_v, strides + 21);
    const int64_t tp = round_up(t, VW);
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        float *kt = workspace(t, d);
        float *vt = kt + d * tp, *p = kt + 2 * d * tp, *ds = p + t * tp;
        failed = kt == NULL;
#pragma omp for schedule(static)
        for (int64_t pair = 0; pair < batch * heads; pair++) {
            if (kt == NULL) continue;
            const float *qp = pair_rows(vq, pair, heads), *kp = pair_rows(vk, pair, heads),
                        *op = pair_rows(vo, pair, heads), *dop = pair_rows(vdo, pair, heads);
            const float *lsep = lse + pair * t;
            const int recompute = probabilities == NULL;
            float *pp = recompute ? p : probabilities + pair * t * tp;
            const view inputs[] = {vq, vk, vv, vo, vdo};
            prefetch_pair(inputs, 5, pair + 1, batch * heads, heads, t, d);
            transpose(pair_rows(vv, pair, heads), t, d, vv.row, vt, tp);
            if (recompute) {
                transpose(kp, t, d, vk.row, kt, tp);
                product(masked(causal, CAUSAL_COLUMNS), t, tp, d, qp, vq.row, 1, kt, tp, p, tp, scale);  /* S */
            }
            product(masked(causal, CAUSAL_COLUMNS), t, tp, d, dop, vdo.row, 1, vt, tp, ds, tp, 1.0f);  /* dP */
            for (int64_t i = 0; i < t; i++) {
                float *pi = pp + i * tp, *dsi = ds + i * tp;
                const float *oi = op + i * vo.row, *doi = dop + i * vdo.row;
                float delta = 0.0f;
#pragma omp simd reduction(+ : delta)
                for (int64_t c = 0; c < d; c++) delta += oi[c] * doi[c];
                const int64_t last = causal ? i : t - 1;
                const int64_t width = round_up(last + 1, VW);  /* whole vectors, as in softmax_row */
                if (recompute) {
                    for (int64_t j = last + 1; j < width; j++) pi[j] = -INFINITY;
                    for (int64_t j = 0; j < width; j += VW) {
                        float *x = pi + j;
#pragma omp simd
                        for (int l = 0; l < VW; l++) x[l] = fast_exp(x[l] - lsep[i]);
                    }
                    for (int64_t j = width; j < tp; j++) pi[j] = 0.0f;
                }
                for (int64_t j = 0; j < width; j += VW) {
                    const float *x = pi + j;
                    float *dx = dsi + j;
#pragma omp simd
                    for (int l = 0; l < VW; l++) dx[l] = x[l] * (dx[l] - delta);
                }
                for (int64_t j = width; j < tp; j++) dsi[j] = 0.0f;
            }
            product(masked(causal, KEYS_UP_TO_ROW), t, d, t, ds, tp, 1, kp, vk.row, pair_rows(vdq, pair, heads), vdq.row,
                    scale);
            product(masked(causal, QUERIES_FROM_ROW), t, d, t, ds, 1, tp, qp, vq.row, pair_rows(vdk, pair, heads),
                    vdk.row, scale);
            product(masked(causal, QUERIES_FROM_ROW), t, d, t, pp, 1, tp, dop, vdo.row, pair_rows(vdv, pair, heads),
                    vdv.row, 1.0f);
        }
        free(kt);
    }
    return failed;
}
