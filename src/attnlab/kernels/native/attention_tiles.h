/* The register-tiled matrix product and the small helpers shared by attnlab's attention
 * kernels (causal_attention.c: one (batch, head) pair's T x T scores in cache;
 * flash_attention.c: long sequences in query blocks x key chunks).
 *
 * One kernel: C[r, :] = alpha sum_k A[r, k] B[k, :] (+ C[r, :] when accumulating), MR rows
 * x NV vectors of accumulators, a broadcast of A times a row of B per step, written with
 * GCC vector extensions so that it compiles to AVX-512, AVX or SSE.
 */
#ifndef ATTNLAB_ATTENTION_TILES_H
#define ATTNLAB_ATTENTION_TILES_H

#include <stdint.h>

#include "fast_exp.h"

/* VW floats per vector; a register tile of MR rows x NV vectors of accumulators, sized
 * to the register file (32 vector registers with AVX-512, 16 otherwise). */
#if defined(__AVX512F__)
#define VW 16
#define MR 6
#define NV 4
#elif defined(__AVX__)
#define VW 8
#define MR 4
#define NV 3
#else
#define VW 4
#define MR 4
#define NV 3
#endif

typedef float vf __attribute__((vector_size(VW * sizeof(float)), aligned(sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VW * sizeof(float)), aligned(sizeof(float))));

static inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

static inline vf load(const float *x) { return *(const vf *)x; }

static inline vf vector_max(vf a, vf b) {
    const vi a_larger = a > b;
    return (vf)(((vi)a & a_larger) | ((vi)b & ~a_larger));
}

/* The largest of x[0..width) (whole vectors) and `start`. */
static inline float row_max(const float *x, int64_t width, float start) {
    vf lanes = (vf){0} + start;
    for (int64_t j = 0; j < width; j += VW) lanes = vector_max(lanes, load(x + j));
    float top = lanes[0];
    for (int l = 1; l < VW; l++) top = lanes[l] > top ? lanes[l] : top;
    return top;
}

/* x[j] = exp(x[j] - top) over x[0..width) (whole vectors); returns their sum. */
static inline float exp_and_sum(float *x, int64_t width, float top) {
    vf sum_lanes = {0};
    for (int64_t j = 0; j < width; j += VW) {
        float *y = x + j;
#pragma omp simd
        for (int l = 0; l < VW; l++) y[l] = fast_exp(y[l] - top);
        sum_lanes += load(y);
    }
    float sum = 0.0f;
    for (int l = 0; l < VW; l++) sum += sum_lanes[l];
    return sum;
}

/* C[r, :nv VW] = alpha sum_{k0 <= k < k1} A[r a_row + k a_col] B[k b_row, :nv VW] (+ C[r, :nv VW]
 * when `accumulate`), r < mr. */
static inline __attribute__((always_inline)) void tile(
    const int mr, const int nv, int64_t k0, int64_t k1, const float *a, int64_t a_row, int64_t a_col,
    const float *b, int64_t b_row, float *c, int64_t c_row, float alpha, int accumulate) {
    vf acc[6][4], row[4]; /* sized for the largest MR x NV: unused entries cost nothing */
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) acc[r][v] = (vf){0};
    for (int64_t k = k0; k < k1; k++) {
        for (int v = 0; v < nv; v++) row[v] = *(const vf *)(b + k * b_row + v * VW);
        for (int r = 0; r < mr; r++) {
            const float x = a[r * a_row + k * a_col];
            for (int v = 0; v < nv; v++) acc[r][v] += x * row[v];
        }
    }
    if (accumulate) {
        for (int r = 0; r < mr; r++)
            for (int v = 0; v < nv; v++) *(vf *)(c + r * c_row + v * VW) += acc[r][v] * alpha;
    } else {
        for (int r = 0; r < mr; r++)
            for (int v = 0; v < nv; v++) *(vf *)(c + r * c_row + v * VW) = acc[r][v] * alpha;
    }
}

/* tile() with mr and nv known at compile time, so its accumulators stay in registers. */
static void any_tile(int mr, int nv, int64_t k0, int64_t k1, const float *a, int64_t a_row, int64_t a_col,
                     const float *b, int64_t b_row, float *c, int64_t c_row, float alpha, int accumulate) {
#define TILE(m, n)                                                                      \
    case (m) * 8 + (n):                                                                 \
        tile(m, n, k0, k1, a, a_row, a_col, b, b_row, c, c_row, alpha, accumulate); \
        return;
#define TILES(m) TILE(m, 1) TILE(m, 2) TILE(m, 3) TILE(m, 4)
    switch (mr * 8 + nv) {
        TILES(1) TILES(2) TILES(3) TILES(4) TILES(5) TILES(6)
    }
#undef TILES
#undef TILE
}

/* A tensor (B, H, T, d) as element strides of its batch, head and row; rows contiguous. */
typedef struct {
    float *data;
    int64_t batch, head, row;
} view;

static inline view view_of(float *data, const int64_t *strides) {
    return (view){data, strides[0], strides[1], strides[2]};
}

static inline float *pair_rows(view x, int64_t pair, int64_t heads) {
    return x.data + pair / heads * x.batch + pair % heads * x.head;
}

#endif
