/* Graph attention's two edge products, over node features laid out (N, H, C) in fp32
 * (see attnlab/attention/scatter.py; E edges, H heads, C channels per head):
 *
 *   weighted sum (CSR rows):  out[i, h, :] = sum_{k = ptr[i]}^{ptr[i+1]-1} alpha[e_k, h] * x[cols[k], h, :]
 *                             e_k = k, or edge_ids[k] when the rows list the edges in another order
 *   edge dots:                out[e, h]    = sum_c left[dst[e], h, c] * right[src[e], h, c]
 *
 * The weighted sum is GAT's aggregation (rows = destinations, cols = sources) and, on the
 * edges grouped by source (edge_ids = that permutation), its gradient with respect to x;
 * the edge dots are its gradient with respect to alpha. PyTorch's route is a sparse CSR
 * product per block-diagonal head layout (a transposed copy of x in and of the result out)
 * and, for the dots, a sampled product that refuses repeated edges -- or gathering two
 * (E, H, C) tensors. Here each edge reads its two rows of H*C floats once, whatever the
 * repeats. Sums run in the rows' order (the weighted sum) and over c in one SIMD reduction
 * (the dots), in fp32, as PyTorch's kernels do; rows are split between threads.
 */
#include <stdint.h>
#include <string.h>

#define PREFETCH_AHEAD 8 /* edges: the rows an edge reads are scattered, so they are asked for early */

static inline void prefetch_row(const float *row, int64_t floats) {
    for (int64_t line = 0; line < floats * (int64_t)sizeof(float); line += 64) __builtin_prefetch((const char *)row + line);
}

void attnlab_graph_weighted_sum(const int64_t *ptr, const int64_t *cols, const int64_t *edge_ids,
                                const float *alpha, const float *x, float *out,
                                int64_t rows, int64_t heads, int64_t width, int threads) {
    const int64_t row_size = heads * width, total = ptr[rows];
#pragma omp parallel for num_threads(threads) schedule(dynamic, 64)
    for (int64_t i = 0; i < rows; i++) {
        float *o = out + i * row_size;
        memset(o, 0, sizeof(float) * (size_t)row_size);
        for (int64_t k = ptr[i]; k < ptr[i + 1]; k++) {
            const int64_t e = edge_ids ? edge_ids[k] : k;
            if (k + PREFETCH_AHEAD < total) {
                prefetch_row(x + cols[k + PREFETCH_AHEAD] * row_size, row_size);
                if (edge_ids) __builtin_prefetch(alpha + edge_ids[k + PREFETCH_AHEAD] * heads);
            }
            const float *xj = x + cols[k] * row_size;
            const float *a = alpha + e * heads;
            for (int64_t h = 0; h < heads; h++) {
                const float w = a[h];
                float *oh = o + h * width;
                const float *xh = xj + h * width;
#pragma omp simd
                for (int64_t c = 0; c < width; c++) oh[c] += w * xh[c];
            }
        }
    }
}

void attnlab_graph_edge_dots(const int64_t *dst, const int64_t *src, const float *left, const float *right,
                             float *out, int64_t edges, int64_t heads, int64_t width, int threads) {
    const int64_t row_size = heads * width;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t e = 0; e < edges; e++) {
        const float *a = left + dst[e] * row_size, *b = right + src[e] * row_size;
        if (e + PREFETCH_AHEAD < edges) prefetch_row(right + src[e + PREFETCH_AHEAD] * row_size, row_size);
        for (int64_t h = 0; h < heads; h++) {
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int64_t c = 0; c < width; c++) s += a[h * width + c] * b[h * width + c];
            out[e * heads + h] = s;
        }
    }
}
