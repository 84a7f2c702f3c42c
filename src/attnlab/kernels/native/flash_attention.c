/* Self-attention over long sequences, causal or unmasked, forward and backward, in fp32 on
 * the CPU (see attnlab/kernels/causal_kernel.py; causal_attention.c keeps a pair's whole
 * T x T scores in cache, which past T = 512 they no longer fit). FlashAttention-2's
 * blocking (Dao 2023): for one (batch, head) pair, s = the softmax scale, queries in
 * blocks b of BQ rows against keys in chunks c of KC,
 *
 *   forward, an online softmax over the chunks (m_i, l_i: the running max and sum):
 *     S = s Q_b K_c^T,  m_i' = max(m_i, max_j S_ij),  P = exp(S - m'),
 *     l_i = l_i exp(m_i - m_i') + sum_j P_ij,  O_b = O_b exp(m - m') + P V_c;
 *     at the end  O_b = O_b / l,  lse_i = m_i + log l_i  (kept for the backward)
 *   backward, P recomputed from lse, delta_i = rowsum(dO_i * O_i):
 *     P = exp(s Q_b K_c^T - lse),  dS = P * (dO_b V_c^T - delta),
 *     dQ_b += s dS K_c,  dK_c += s dS^T Q_b,  dV_c += P^T dO_b
 *
 * When causal, chunks past the block's last query are never visited and, within a chunk,
 * the register tiles above the diagonal are skipped. A chunk's scores (BQ x KC), the
 * block's rows and K's and V's transposes (packed once per pair in panels of one register
 * tile's width) stay in cache; every product is the tile of attention_tiles.h, reading
 * and writing the caller's strided rows in place. Threads take (batch, head) pairs.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attention_tiles.h"
#include "fast_exp.h"

#define BQ 96        /* queries per block: a multiple of MR */
#define KC 256       /* keys per chunk: a multiple of PW */
#define PW (NV * VW) /* keys per packed panel: one register tile's width */
#define SS (KC + VW) /* row stride of a chunk's scores: rows KC apart would share L1 sets */

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* x^T for x (t x d, rows x_row apart) as panels of PW keys: x[p + l][c] at panels[p d + c PW + l]
 * for p a multiple of PW, zeros past t. */
static void pack_panels(const float *x, int64_t t, int64_t d, int64_t x_row, float *panels) {
    for (int64_t p = 0; p < t; p += PW) {
        float *panel = panels + p * d;
        const int64_t n = min64(PW, t - p);
        for (int64_t l = 0; l < n; l++)
            for (int64_t c = 0; c < d; c++) panel[c * PW + l] = x[(p + l) * x_row + c];
        for (int64_t c = 0; c < d; c++)
            for (int64_t l = n; l < PW; l++) panel[c * PW + l] = 0.0f;
    }
}

/* S (rows x nc, rows SS apart) = alpha A (rows x d) x_c^T, x_c^T the chunk's panels. Local
 * query r sees local key j iff j <= diagonal + r (diagonal = the block's first query less
 * the chunk's first key when causal, >= nc when not): tiles wholly past it are skipped. */
static void chunk_scores(int64_t rows, int64_t nc, int64_t d, const float *a, int64_t a_row, const float *panels,
                         float *s, float alpha, int64_t diagonal) {
    for (int64_t j0 = 0; j0 < nc; j0 += PW) {
        const int nv = (int)(min64(PW, round_up(nc - j0, VW)) / VW);
        for (int64_t i0 = 0; i0 < rows; i0 += MR) {
            const int mr = (int)min64(MR, rows - i0);
            if (j0 <= diagonal + i0 + mr - 1)
                any_tile(mr, nv, 0, d, a + i0 * a_row, a_row, 1, panels + j0 * d, PW, s + i0 * SS + j0, SS, alpha, 0);
        }
    }
}

/* C (rows x d) = alpha A B (+ C when `accumulate`): A the chunk's scores (rows x nc), B x_c's
 * rows (nc x d, b_row apart); row tile i0 takes the keys its rows see (j <= diagonal + i0 + MR - 1). */
static void weigh_rows(int64_t rows, int64_t nc, int64_t d, const float *s, const float *b, int64_t b_row, float *c,
                       int64_t c_row, float alpha, int64_t diagonal, int accumulate) {
    for (int64_t i0 = 0; i0 < rows; i0 += MR) {
        const int mr = (int)min64(MR, rows - i0);
        const int64_t k1 = min64(nc, diagonal + i0 + mr);
        if (k1 <= 0) continue; /* only when accumulating: every row sees the first chunk's first key */
        for (int64_t c0 = 0; c0 < d; c0 += PW)
            any_tile(mr, (int)(min64(PW, d - c0) / VW), 0, k1, s + i0 * SS, SS, 1, b + c0, b_row, c + i0 * c_row + c0,
                     c_row, alpha, accumulate);
    }
}

/* C_c (nc x d) += alpha A^T B for A the chunk's scores (rows x nc), B the block's rows (rows x d,
 * b_row apart): key j takes the queries that see it (r >= j - diagonal; A is zero elsewhere). */
static void weigh_keys(int64_t rows, int64_t nc, int64_t d, const float *s, const float *b, int64_t b_row, float *c,
                       int64_t c_row, float alpha, int64_t diagonal) {
    for (int64_t j0 = 0; j0 < nc; j0 += MR) {
        const int mr = (int)min64(MR, nc - j0);
        const int64_t r0 = j0 - diagonal > 0 ? j0 - diagonal : 0;
        if (r0 >= rows) continue;
        for (int64_t c0 = 0; c0 < d; c0 += PW)
            any_tile(mr, (int)(min64(PW, d - c0) / VW), r0, rows, s + j0, 1, SS, b + c0, b_row, c + j0 * c_row + c0,
                     c_row, alpha, 1);
    }
}

/* The keys of a chunk of nc that local query r sees. */
static int64_t visible(int64_t r, int64_t nc, int64_t diagonal) {
    const int64_t n = diagonal + r + 1;
    return n < 0 ? 0 : n > nc ? nc : n;
}

/* One row of a chunk's scores -> exp(S - m') over its n visible keys, zeros after (to ncp);
 * updates the row's running max m and sum l; returns exp(m - m'), the factor that rescales
 * the row's output so far. */
static float online_softmax_row(float *row, int64_t n, int64_t ncp, float *m, float *l) {
    const int64_t width = round_up(n, VW);
    for (int64_t j = n; j < width; j++) row[j] = -INFINITY;
    const float top = row_max(row, width, *m), sum = exp_and_sum(row, width, top);
    const float factor = fast_exp(*m - top); /* 0 on the first chunk (m = -inf) */
    *l = *l * factor + sum;
    *m = top;
    memset(row + width, 0, sizeof(float) * (size_t)(ncp - width));
    return factor;
}

static void forward_pair(const float *q, int64_t q_row, const float *k, int64_t k_row, const float *v, int64_t v_row,
                         float *o, int64_t o_row, float *lse, int64_t t, int64_t d, float scale, int causal,
                         float *panels, float *s, float *m, float *l) {
    pack_panels(k, t, d, k_row, panels);
    for (int64_t q0 = 0; q0 < t; q0 += BQ) {
        const int64_t rows = min64(BQ, t - q0), end = causal ? q0 + rows : t;
        for (int64_t r = 0; r < rows; r++) m[r] = -INFINITY, l[r] = 0.0f;
        for (int64_t k0 = 0; k0 < end; k0 += KC) {
            const int64_t nc = min64(KC, end - k0), ncp = round_up(nc, VW), diagonal = causal ? q0 - k0 : t;
            chunk_scores(rows, nc, d, q + q0 * q_row, q_row, panels + k0 * d, s, scale, diagonal);
            for (int64_t r = 0; r < rows; r++) {
                const int64_t n = visible(r, nc, diagonal);
                if (n == 0) {
                    memset(s + r * SS, 0, sizeof(float) * (size_t)ncp);
                    continue;
                }
                const float factor = online_softmax_row(s + r * SS, n, ncp, m + r, l + r);
                float *out = o + (q0 + r) * o_row;
                if (k0 > 0 && factor != 1.0f)
                    for (int64_t c = 0; c < d; c++) out[c] *= factor;
            }
            weigh_rows(rows, nc, d, s, v + k0 * v_row, v_row, o + q0 * o_row, o_row, 1.0f, diagonal, k0 > 0);
        }
        for (int64_t r = 0; r < rows; r++) {
            float *out = o + (q0 + r) * o_row;
            const float inverse = 1.0f / l[r];
            for (int64_t c = 0; c < d; c++) out[c] *= inverse;
            lse[q0 + r] = m[r] + logf(l[r]);
        }
    }
}

/* One row of a chunk: P = exp(S - lse) over its n visible keys and dS = P (dP - delta) in
 * place of S and dP, zeros after (to ncp). */
static void gradient_row(float *p, float *ds, int64_t n, int64_t ncp, float lse, float delta) {
    const int64_t width = round_up(n, VW);
    for (int64_t j = n; j < width; j++) p[j] = -INFINITY;
    for (int64_t j = 0; j < width; j += VW) {
        float *x = p + j, *dx = ds + j;
#pragma omp simd
        for (int l = 0; l < VW; l++) {
            x[l] = fast_exp(x[l] - lse);
            dx[l] = x[l] * (dx[l] - delta);
        }
    }
    memset(p + width, 0, sizeof(float) * (size_t)(ncp - width));
    memset(ds + width, 0, sizeof(float) * (size_t)(ncp - width));
}

typedef struct {
    const float *q, *k, *v, *o, *grad_o;
    float *grad_q, *grad_k, *grad_v;
    int64_t q_row, k_row, v_row, o_row, do_row, dq_row, dk_row, dv_row;
} pair_rows_t;

static void backward_pair(pair_rows_t x, const float *lse, int64_t t, int64_t d, float scale, int causal,
                          float *k_panels, float *v_panels, float *s, float *ds, float *delta) {
    pack_panels(x.k, t, d, x.k_row, k_panels);
    pack_panels(x.v, t, d, x.v_row, v_panels);
    for (int64_t j = 0; j < t; j++) {
        memset(x.grad_k + j * x.dk_row, 0, sizeof(float) * (size_t)d);
        memset(x.grad_v + j * x.dv_row, 0, sizeof(float) * (size_t)d);
    }
    for (int64_t q0 = 0; q0 < t; q0 += BQ) {
        const int64_t rows = min64(BQ, t - q0), end = causal ? q0 + rows : t;
        const float *qb = x.q + q0 * x.q_row, *dob = x.grad_o + q0 * x.do_row;
        for (int64_t r = 0; r < rows; r++) {
            const float *oi = x.o + (q0 + r) * x.o_row, *doi = dob + r * x.do_row;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int64_t c = 0; c < d; c++) dot += oi[c] * doi[c];
            delta[r] = dot;
        }
        for (int64_t k0 = 0; k0 < end; k0 += KC) {
            const int64_t nc = min64(KC, end - k0), ncp = round_up(nc, VW), diagonal = causal ? q0 - k0 : t;
            chunk_scores(rows, nc, d, qb, x.q_row, k_panels + k0 * d, s, scale, diagonal);      /* S */
            chunk_scores(rows, nc, d, dob, x.do_row, v_panels + k0 * d, ds, 1.0f, diagonal);   /* dP */
            for (int64_t r = 0; r < rows; r++) {
                const int64_t n = visible(r, nc, diagonal);
                if (n == 0) {
                    memset(s + r * SS, 0, sizeof(float) * (size_t)ncp);
                    memset(ds + r * SS, 0, sizeof(float) * (size_t)ncp);
                } else {
                    gradient_row(s + r * SS, ds + r * SS, n, ncp, lse[q0 + r], delta[r]);
                }
            }
            weigh_rows(rows, nc, d, ds, x.k + k0 * x.k_row, x.k_row, x.grad_q + q0 * x.dq_row, x.dq_row, scale,
                       diagonal, k0 > 0);                                                          /* dQ_b */
            weigh_keys(rows, nc, d, ds, qb, x.q_row, x.grad_k + k0 * x.dk_row, x.dk_row, scale, diagonal); /* dK_c */
            weigh_keys(rows, nc, d, s, dob, x.do_row, x.grad_v + k0 * x.dv_row, x.dv_row, 1.0f, diagonal); /* dV_c */
        }
    }
}

/* Floats of a thread's workspace: `panels` packed transposes, `strips` chunks of scores,
 * and three per-query arrays; 64-byte aligned. */
static float *workspace(int64_t t, int64_t d, int panels, int strips) {
    const size_t floats = (size_t)(panels * round_up(t, PW) * d + strips * BQ * SS + 3 * BQ);
    return aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
}

/* Returns 0, or 1 when a workspace could not be allocated (nothing is then valid). Strides
 * as in causal_attention.c: batch, head and row of q, k, v, o; `causal`: 1 or 0. */
int attnlab_flash_attention_forward(float *q, float *k, float *v, float *o, float *lse, int64_t batch,
                                    int64_t heads, int64_t t, int64_t d, const int64_t *strides, float scale,
                                    int threads, int causal) {
    const view vq = view_of(q, strides), vk = view_of(k, strides + 3), vv = view_of(v, strides + 6),
               vo = view_of(o, strides + 9);
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        float *panels = workspace(t, d, 1, 1);
        float *s = panels + round_up(t, PW) * d, *m = s + BQ * SS, *l = m + BQ;
        failed = panels == NULL;
#pragma omp for schedule(static)
        for (int64_t pair = 0; pair < batch * heads; pair++) {
            if (panels == NULL) continue;
            forward_pair(pair_rows(vq, pair, heads), vq.row, pair_rows(vk, pair, heads), vk.row,
                         pair_rows(vv, pair, heads), vv.row, pair_rows(vo, pair, heads), vo.row, lse + pair * t, t, d,
                         scale, causal, panels, s, m, l);
        }
        free(panels);
    }
    return failed;
}

/* Strides of q, k, v, o, grad_o, grad_q, grad_k, grad_v, in that order. */
int attnlab_flash_attention_backward(float *q, float *k, float *v, float *o, float *lse, float *grad_o, float *grad_q,
                                     float *grad_k, float *grad_v, int64_t batch, int64_t heads, int64_t t, int64_t d,
                                     const int64_t *strides, float scale, int threads, int causal) {
    float *data[] = {q, k, v, o, grad_o, grad_q, grad_k, grad_v};
    view views[8];
    for (int n = 0; n < 8; n++) views[n] = view_of(data[n], strides + 3 * n);
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        float *k_panels = workspace(t, d, 2, 2);
        float *v_panels = k_panels + round_up(t, PW) * d, *s = v_panels + round_up(t, PW) * d, *ds = s + BQ * SS;
        failed = k_panels == NULL;
#pragma omp for schedule(static)
        for (int64_t pair = 0; pair < batch * heads; pair++) {
            if (k_panels == NULL) continue;
            float *rows[8];
            for (int n = 0; n < 8; n++) rows[n] = pair_rows(views[n], pair, heads);
            const pair_rows_t x = {rows[0], rows[1], rows[2], rows[3], rows[4], rows[5], rows[6], rows[7],
                                   views[0].row, views[1].row, views[2].row, views[3].row,
                                   views[4].row, views[5].row, views[6].row, views[7].row};
            backward_pair(x, lse + pair * t, t, d, scale, causal, k_panels, v_panels, s, ds, ds + BQ * SS);
        }
        free(k_panels);
    }
    return failed;
}
