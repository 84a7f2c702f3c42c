/* The vector helpers of gpt_decode.c and its attention over the cache: one (row, head),
 *
 *     out (Dh) = softmax(q K^T * scale) V            over the `keys` cached positions
 *
 * with heads of 16 to 128 (a multiple of 16) in registers: the scores of 16 keys at a time
 * (per key the lane-wise products q_j k_j summed over the Dh / 16 vectors, then the 16 keys'
 * lanes summed at once by transpose_sum), a vector exp, one division per head, the values
 * weighted in registers. Other head sizes take a plain loop (dot products per key).
 * Included by gpt_decode.c only (GCC/Clang vector extensions). */
#ifndef ATTNLAB_GPT_ATTEND_H
#define ATTNLAB_GPT_ATTEND_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define W 16 /* floats per vector (and per panel of a packed weight) */
typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t v16i __attribute__((vector_size(64), aligned(4), may_alias));

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

static float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* a[0..15] -> one vector whose lane u is the sum of a[u]'s 16 lanes: four levels of
 * pairwise shuffles and adds (halves, quarters, pairs, lanes), 16 sums at once. */
static inline v16 transpose_sum(const v16 *a) {
    const v16i h0 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
               h1 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},
               q0 = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27},
               q1 = {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31},
               p0 = {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29},
               p1 = {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31},
               e0 = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30},
               e1 = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
    v16 b[8], c[4], d[2];
    for (int m = 0; m < 8; m++) /* b[m]: lanes 0-7 key 2m, 8-15 key 2m+1 */
        b[m] = __builtin_shuffle(a[2 * m], a[2 * m + 1], h0) + __builtin_shuffle(a[2 * m], a[2 * m + 1], h1);
    for (int m = 0; m < 4; m++) /* c[m]: four lanes per key, keys 4m..4m+3 */
        c[m] = __builtin_shuffle(b[2 * m], b[2 * m + 1], q0) + __builtin_shuffle(b[2 * m], b[2 * m + 1], q1);
    for (int m = 0; m < 2; m++) /* d[m]: two lanes per key, keys 8m..8m+7 */
        d[m] = __builtin_shuffle(c[2 * m], c[2 * m + 1], p0) + __builtin_shuffle(c[2 * m], c[2 * m + 1], p1);
    return __builtin_shuffle(d[0], d[1], e0) + __builtin_shuffle(d[0], d[1], e1);
}

/* attend() for Dh = 16 NV (NV <= 8, a constant at every call): q and the output in NV
 * registers; the scores of 16 keys at a time (per key q_j k_j summed over the NV vectors,
 * lane-wise, then transpose_sum); the values weighted in two sets of registers (even and
 * odd keys, added at the end). */
static inline __attribute__((always_inline)) void attend_vectors(const int NV, const float *q, const float *k,
                                                                  const float *v, const int32_t *src, size_t stride,
                                                                  int keys, float scale, float *scores, float *out) {
    const int dh = NV * W;
    const v16i lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    v16 qv[8], top = (v16){0} - INFINITY;
    for (int j = 0; j < NV; j++) qv[j] = *(const v16 *)(q + j * W);
    for (int t0 = 0; t0 < keys; t0 += W) {
        v16 a[W];
        for (int u = 0; u < W; u++) {
            const int t = t0 + u < keys ? t0 + u : keys - 1; /* past the last key: the last key again */
            const float *row = k + (src ? (size_t)src[t] * stride : 0) + (size_t)t * dh;
            v16 s = qv[0] * *(const v16 *)row;
            for (int j = 1; j < NV; j++) s += qv[j] * *(const v16 *)(row + j * W);
            a[u] = s;
        }
        const v16 s = transpose_sum(a) * scale; /* lanes past `keys`: the last key's score again */
        *(v16 *)(scores + t0) = s;
        const v16i larger = s > top;
        top = (v16)((larger & (v16i)s) | (~larger & (v16i)top));
    }
    float m = top[0];
    for (int j = 1; j < W; j++) m = top[j] > m ? top[j] : m;
    v16 sum = (v16){0};
    for (int t = 0; t < keys; t += W) { /* lanes past `keys` repeat the last key: zero them */
        v16 e = vexp(*(v16 *)(scores + t) - m);
        const v16i valid = lane < keys - t;
        e = (v16)(valid & (v16i)e);
        *(v16 *)(scores + t) = e;
        sum += e;
    }
    float total = 0.0f;
    for (int j = 0; j < W; j++) total += sum[j];
    v16 even[8], odd[8];
    for (int j = 0; j < NV; j++) even[j] = odd[j] = (v16){0};
    int t = 0;
    for (; t + 2 <= keys; t += 2) {
        const float *r0 = v + (src ? (size_t)src[t] * stride : 0) + (size_t)t * dh;
        const float *r1 = v + (src ? (size_t)src[t + 1] * stride : 0) + (size_t)(t + 1) * dh;
        const float p0 = scores[t], p1 = scores[t + 1];
        for (int j = 0; j < NV; j++) {
            even[j] += p0 * *(const v16 *)(r0 + j * W);
            odd[j] += p1 * *(const v16 *)(r1 + j * W);
        }
    }
    if (t < keys) {
        const float *r0 = v + (src ? (size_t)src[t] * stride : 0) + (size_t)t * dh;
        for (int j = 0; j < NV; j++) even[j] += scores[t] * *(const v16 *)(r0 + j * W);
    }
    const float inv = 1.0f / total;
    for (int j = 0; j < NV; j++) *(v16 *)(out + j * W) = (even[j] + odd[j]) * inv;
}

/* One (row, head): out (Dh) = softmax(q K^T * scale) V over `keys` positions. Position t's
 * key is at k + src[t] * stride + t * dh (src NULL: 0), its value likewise in v.
 * scores: scratch of `keys` rounded up to 16. */
static void attend(const float *q, const float *k, const float *v, const int32_t *src, size_t stride, int keys, int dh,
                   float scale, float *scores, float *out) {
    switch (dh) {
        case 16: attend_vectors(1, q, k, v, src, stride, keys, scale, scores, out); return;
        case 32: attend_vectors(2, q, k, v, src, stride, keys, scale, scores, out); return;
        case 48: attend_vectors(3, q, k, v, src, stride, keys, scale, scores, out); return;
        case 64: attend_vectors(4, q, k, v, src, stride, keys, scale, scores, out); return;
        case 80: attend_vectors(5, q, k, v, src, stride, keys, scale, scores, out); return;
        case 96: attend_vectors(6, q, k, v, src, stride, keys, scale, scores, out); return;
        case 112: attend_vectors(7, q, k, v, src, stride, keys, scale, scores, out); return;
        case 128: attend_vectors(8, q, k, v, src, stride, keys, scale, scores, out); return;
        default: break;
    }
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

#endif
