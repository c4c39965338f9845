/*
 * Batch norm in training mode followed by ReLU, with or without a 2x2 max pooling between
 * them, forward and backward, in as few passes over memory as the arithmetic allows: for
 * float32 tensors in channels_last layout (N, H, W, C in memory) on the CPU. Built, loaded and
 * checked by mnist_tui/core/fused.py, which keeps PyTorch's own operations wherever this file
 * cannot be compiled.
 *
 * The functions compute relu(batch_norm(x)) and relu(max_pool2d(batch_norm(x), 2, 2)) with
 * PyTorch's semantics: batch statistics (the biased variance normalises, the unbiased one
 * goes into the running variance), the first largest value of each window scanned row by
 * row with NaN counting as largest, ReLU keeping NaN. Where PyTorch writes the normalised
 * tensor, pools it, keeps int64 indices, zero-fills a full-size gradient and scatters into it,
 * these read the input twice forward and once backward (plus one pass over the pooled or,
 * without pooling, the full gradient for its sums). The ReLU mask is recomputed from the
 * input, and pooling keeps only the input value each window picked: the backward pass finds
 * its position again as the first one holding that value.
 *
 * `st` holds 4 C floats a forward pass writes and its backward pass reads: the batch mean,
 * 1 / sqrt(var + eps), and the per-channel a and b of batch_norm(x) = a x + b.
 * Every function returns 0, -1 for a shape it does not take, -2 when out of memory.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAX_PARTS 64
/* Partial sums are kept in float for this many rows or blocks, so that the loops vectorise,
   then added into doubles. */
#define FLUSH 64

typedef void (*part_fn)(void *ctx, int part, int64_t begin, int64_t end);

static int clamp_parts(int parts, int64_t n) {
    if (parts > MAX_PARTS) parts = MAX_PARTS;
    if (parts > n) parts = (int)n;
    return parts < 1 ? 1 : parts;
}

/*
 * fn over [0, n) in up to `parts` contiguous slices, one a thread; returns how many slices
 * ran. Built with OpenMP, the threads are those of the OpenMP runtime already loaded: in a
 * PyTorch process, PyTorch's own (it ships libgomp under the system's name), so that no second
 * pool of threads competes with it for the cores. Without OpenMP, one slice.
 */
static int parallel(part_fn fn, void *ctx, int64_t n, int parts) {
    parts = clamp_parts(parts, n);
#ifdef _OPENMP
    int ran = 1;
#pragma omp parallel num_threads(parts)
    {
        const int t = omp_get_thread_num(), team = omp_get_num_threads();
        if (t == 0) ran = team;
        fn(ctx, t, n * t / team, n * (t + 1) / team);
    }
    return ran;
#else
    fn(ctx, 0, 0, n);
    return 1;
#endif
}

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        const int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The flat passes walk (rows, C) in blocks of L = lcm(C, 16) floats against per-channel
   constants repeated to L, so that every loop runs whole vectors; C when rows do not fill them. */
static int64_t block_length(int64_t rows, int64_t C) {
    const int64_t L = C / gcd64(C, 16) * 16;
    return (rows * C) % L == 0 ? L : C;
}

typedef struct {
    const float *x, *g;
    int64_t L;
    const float *k; /* repeated to L: forward a, b; backward mean, a, b, then A, B, K */
    float *y;       /* forward: the output; backward: the input's gradient */
    double *partial; /* per part: 2 L doubles of sums, then 2 L floats of scratch */
} Flat;

/* The parts' 2 L sums (stride 3 L doubles) folded to C channels: sums[c] and sums[C + c]. */
static void fold(const double *partial, int parts, int64_t L, int64_t C, double *sums) {
    for (int64_t c = 0; c < 2 * C; c++) sums[c] = 0.0;
    for (int t = 0; t < parts; t++)
        for (int64_t j = 0; j < L; j++) {
            sums[j % C] += partial[(int64_t)t * 3 * L + j];
            sums[C + j % C] += partial[(int64_t)t * 3 * L + L + j];
        }
}

static void pair_sums_part(void *vctx, int part, int64_t begin, int64_t end) {
    Flat *s = vctx;
    const int64_t L = s->L;
    const float *restrict mean = s->k, *restrict a = s->k + L, *restrict b = s->k + 2 * L;
    double *restrict sg = s->partial + (int64_t)part * 3 * L, *restrict sgx = sg + L;
    float *restrict fg = (float *)(sgx + L), *restrict fgx = fg + L;
    for (int64_t j = 0; j < L; j++) sg[j] = sgx[j] = 0.0;
    for (int64_t b0 = begin; b0 < end; b0 += FLUSH) {
        const int64_t b1 = b0 + FLUSH < end ? b0 + FLUSH : end;
        for (int64_t j = 0; j < L; j++) fg[j] = fgx[j] = 0.0f;
        for (int64_t blk = b0; blk < b1; blk++) {
            const float *restrict x = s->x + blk * L, *restrict g = s->g + blk * L;
#pragma omp simd
            for (int64_t j = 0; j < L; j++) {
                const float gj = g[j], d = x[j] * a[j] + b[j] <= 0.0f ? 0.0f : gj;
                fg[j] += d;
                fgx[j] += d * (x[j] - mean[j]);
            }
        }
        for (int64_t j = 0; j < L; j++) {
            sg[j] += fg[j];
            sgx[j] += fgx[j];
        }
    }
}

/* Per-channel arrays src (count of them, C each) repeated to L into dst (count of them, L each). */
static void repeat(const float *src, int count, int64_t C, int64_t L, float *dst) {
    for (int i = 0; i < count; i++)
        for (int64_t j = 0; j < L; j++) dst[i * L + j] = src[i * C + j % C];
}

/*
 * Per channel, into sums: the sum of dy and of dy (x - mean) over x (rows, C), where dy is 0
 * where a x + b <= 0 (ReLU held it back; NaN passes, as in PyTorch) and g elsewhere. The
 * pooled backward pass calls it on the values each window picked, the only ones its gradient
 * reaches.
 */
static int pair_sums(const float *x, const float *g, int64_t rows, int64_t C, const float *mean, const float *a, const float *b, double *sums,
                     int threads) {
    const int64_t L = block_length(rows, C), blocks = rows * C / L;
    const int parts = clamp_parts(threads, blocks);
    double *partial = malloc((size_t)(parts * 3 * L) * sizeof(double));
    float *k = malloc((size_t)(3 * L) * sizeof(float));
    if (!partial || !k) {
        free(partial);
        free(k);
        return -2;
    }
    repeat(mean, 1, C, L, k);
    repeat(a, 1, C, L, k + L);
    repeat(b, 1, C, L, k + 2 * L);
    Flat s = {x, g, L, k, NULL, partial};
    fold(partial, parallel(pair_sums_part, &s, blocks, parts), L, C, sums);
    free(partial);
    free(k);
    return 0;
}

/*
 * The batch statistics in one pass, robust to a mean large against the spread. Each part
 * walks its blocks in chunks of FLUSH; a chunk's float sums are of d = x - k, k being the
 * chunk's first block, so that they never hold the mean itself (E[x^2] - mean^2 loses
 * (mean / std)^2 times float's 1e-7: all of the variance at mean 1e3, std 1). Each chunk's
 * count, mean and squared deviations are then merged in double (Chan, Golub and LeVeque's
 * pairwise update), and the parts' and the lanes' the same way in fold_moments. The error
 * then depends on the spread within 64 rows of a channel, not on the mean; the cost is that of
 * the one-pass sums it replaces (a subtraction an element, a few doubles a chunk). A NaN
 * spoils the mean and the variance, as it does PyTorch's; an infinity too (as NaN).
 */
typedef struct {
    const float *x;
    int64_t L;
    double *partial; /* per part: L means, L sums of squared deviations, then 2 L floats of scratch */
    int64_t count[MAX_PARTS];
} Moments;

/* (n, mean, m2) merged with (nb, mb, m2b), n > 0 or not */
static void merge(double *n, double *mean, double *m2, double nb, double mb, double m2b) {
    if (nb <= 0.0) return;
    const double total = *n + nb, delta = mb - *mean;
    *mean += delta * (nb / total);
    *m2 += m2b + delta * delta * (*n * nb / total);
    *n = total;
}

static void moments_part(void *vctx, int part, int64_t begin, int64_t end) {
    Moments *s = vctx;
    const int64_t L = s->L;
    double *restrict mean = s->partial + (int64_t)part * 3 * L, *restrict m2 = mean + L;
    float *restrict f1 = (float *)(m2 + L), *restrict f2 = f1 + L;
    double n = 0.0;
    for (int64_t j = 0; j < L; j++) mean[j] = m2[j] = 0.0;
    for (int64_t b0 = begin; b0 < end; b0 += FLUSH) {
        const int64_t b1 = b0 + FLUSH < end ? b0 + FLUSH : end;
        const float *restrict k = s->x + b0 * L;
        for (int64_t j = 0; j < L; j++) f1[j] = f2[j] = 0.0f;
        for (int64_t blk = b0; blk < b1; blk++) {
            const float *restrict x = s->x + blk * L;
#pragma omp simd
            for (int64_t j = 0; j < L; j++) {
                const float d = x[j] - k[j];
                f1[j] += d;
                f2[j] += d * d;
            }
        }
        const double cnt = (double)(b1 - b0);
        for (int64_t j = 0; j < L; j++) {
            double nj = n, mj = mean[j], m2j = m2[j];
            merge(&nj, &mj, &m2j, cnt, (double)k[j] + f1[j] / cnt, f2[j] - (double)f1[j] * f1[j] / cnt);
            mean[j] = mj;
            m2[j] = m2j;
        }
        n += cnt;
    }
    s->count[part] = end - begin;
}

/* The parts' L lanes merged to C channels: mean[c] and m2[c] (squared deviations' sum). */
static int fold_moments(const Moments *s, int parts, int64_t C, double *mean, double *m2) {
    double *n = calloc((size_t)C, sizeof(double));
    if (!n) return -2;
    for (int64_t c = 0; c < C; c++) mean[c] = m2[c] = 0.0;
    for (int t = 0; t < parts; t++)
        for (int64_t j = 0; j < s->L; j++) {
            const double *p = s->partial + (int64_t)t * 3 * s->L;
            merge(&n[j % C], &mean[j % C], &m2[j % C], (double)s->count[t], p[j], p[s->L + j]);
        }
    free(n);
    return 0;
}

/* Batch statistics of x (rows, C) into st; running statistics updated. */
static int batch_stats(const float *x, int64_t rows, int64_t C, const float *weight, const float *bias, float *running_mean,
                       float *running_var, double momentum, double eps, float *st, int threads) {
    const int64_t L = block_length(rows, C), blocks = rows * C / L;
    const int parts = clamp_parts(threads, blocks);
    double *sums = malloc((size_t)(2 * C) * sizeof(double)), *partial = malloc((size_t)(parts * 3 * L) * sizeof(double));
    int rc = !sums || !partial ? -2 : 0;
    if (rc == 0) {
        Moments s = {x, L, partial, {0}};
        rc = fold_moments(&s, parallel(moments_part, &s, blocks, parts), C, sums, sums + C);
    }
    for (int64_t c = 0; rc == 0 && c < C; c++) {
        const double m = sums[c], var0 = sums[C + c] / (double)rows, var = var0 < 0.0 ? 0.0 : var0;
        const double inv = 1.0 / sqrt(var + eps), a = inv * (weight ? weight[c] : 1.0);
        st[c] = (float)m;
        st[C + c] = (float)inv;
        st[2 * C + c] = (float)a;
        st[3 * C + c] = (float)((bias ? bias[c] : 0.0) - m * a);
        running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * m);
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * var * (double)rows / (double)(rows - 1));
    }
    free(sums);
    free(partial);
    return rc;
}

/*
 * From sg = sum(dy) and sgx = sum(dy (x - mean)) per channel: the parameters' gradients, and
 * A, B, K in k (3 C floats) for grad_x = A dy - B x + K, which is
 * w inv (dy - sum(dy) / M - xhat sum(dy xhat) / M) with xhat = (x - mean) inv.
 */
static void finish_grads(const double *sums, int64_t rows, int64_t C, const float *st, const float *weight, float *grad_weight,
                         float *grad_bias, float *k) {
    for (int64_t c = 0; c < C; c++) {
        const double sg = sums[c], inv = st[C + c], dy_xhat = sums[C + c] * inv, scale = (weight ? weight[c] : 1.0) * inv;
        const double bx = scale * inv * dy_xhat / (double)rows;
        if (grad_weight) grad_weight[c] = (float)dy_xhat;
        if (grad_bias) grad_bias[c] = (float)sg;
        k[c] = (float)scale;
        k[C + c] = (float)bx;
        k[2 * C + c] = (float)(bx * st[c] - scale * sg / (double)rows);
    }
}

/* ------------------------------------------------------ batch norm and ReLU */

static void flat_forward_part(void *vctx, int part, int64_t begin, int64_t end) {
    (void)part;
    Flat *s = vctx;
    const int64_t L = s->L;
    const float *restrict a = s->k, *restrict b = s->k + L;
    for (int64_t blk = begin; blk < end; blk++) {
        const float *restrict x = s->x + blk * L;
        float *restrict y = s->y + blk * L;
        for (int64_t j = 0; j < L; j++) {
            const float v = x[j] * a[j] + b[j];
            y[j] = v < 0.0f ? 0.0f : v;
        }
    }
}

static void flat_input_grad_part(void *vctx, int part, int64_t begin, int64_t end) {
    (void)part;
    Flat *s = vctx;
    const int64_t L = s->L;
    const float *restrict a = s->k + L, *restrict b = s->k + 2 * L;
    const float *restrict A = s->k + 3 * L, *restrict B = s->k + 4 * L, *restrict K = s->k + 5 * L;
    for (int64_t blk = begin; blk < end; blk++) {
        const float *restrict x = s->x + blk * L, *restrict g = s->g + blk * L;
        float *restrict d = s->y + blk * L;
#pragma omp simd
        for (int64_t j = 0; j < L; j++) {
            /* ReLU selects the gradient, not A times it: GCC would move a product chosen
               by a condition into the branch, which only AVX-512's masked arithmetic
               vectorises, and leave the loop scalar on an AVX2-only CPU */
            const float dy = x[j] * a[j] + b[j] <= 0.0f ? 0.0f : g[j];
            d[j] = A[j] * dy - B[j] * x[j] + K[j];
        }
    }
}

/* x: (rows, C), channels innermost. Writes out (rows, C) and st. */
int bn_relu_forward(const float *x, int64_t rows, int64_t C, const float *weight, const float *bias, float *running_mean,
                    float *running_var, double momentum, double eps, float *out, float *st, int threads) {
    if (C < 1 || rows < 2) return -1;
    int rc = batch_stats(x, rows, C, weight, bias, running_mean, running_var, momentum, eps, st, threads);
    if (rc) return rc;
    const int64_t L = block_length(rows, C);
    float *k = malloc((size_t)(2 * L) * sizeof(float));
    if (!k) return -2;
    repeat(st + 2 * C, 2, C, L, k);
    Flat s = {x, NULL, L, k, out, NULL};
    parallel(flat_forward_part, &s, rows * C / L, threads);
    free(k);
    return 0;
}

/* g: the gradient of out, (rows, C). Writes grad_x and the C-long grad_weight and grad_bias. */
int bn_relu_backward(const float *x, const float *g, const float *st, const float *weight, int64_t rows, int64_t C, float *grad_x,
                     float *grad_weight, float *grad_bias, int threads) {
    if (C < 1 || rows < 2) return -1;
    const int64_t L = block_length(rows, C);
    double *sums = malloc((size_t)(2 * C) * sizeof(double));
    float *k = malloc((size_t)(6 * L) * sizeof(float)), *abk = malloc((size_t)(3 * C) * sizeof(float));
    int rc = !sums || !k || !abk ? -2 : pair_sums(x, g, rows, C, st, st + 2 * C, st + 3 * C, sums, threads);
    if (rc == 0) {
        finish_grads(sums, rows, C, st, weight, grad_weight, grad_bias, abk);
        repeat(st + 2 * C, 2, C, L, k + L);
        repeat(abk, 3, C, L, k + 3 * L);
        Flat s = {x, g, L, k, grad_x, NULL};
        parallel(flat_input_grad_part, &s, rows * C / L, threads);
    }
    free(sums);
    free(k);
    free(abk);
    return rc;
}

/* ---------------------------------------- batch norm, 2x2 max pooling, ReLU */

typedef struct {
    const float *x, *g, *sel;
    const float *st, *k;
    float *out, *grad;
    int64_t H, W, C;
} Pooled;

static void pool_forward_part(void *vctx, int part, int64_t begin, int64_t end) {
    (void)part;
    Pooled *p = vctx;
    const int64_t H = p->H, W = p->W, C = p->C, Ho = H / 2, Wo = W / 2;
    const float *restrict a = p->st + 2 * C, *restrict b = p->st + 3 * C;
    for (int64_t q = begin; q < end; q++) {
        const int64_t n = q / (Ho * Wo), oh = (q / Wo) % Ho, ow = q % Wo;
        const float *restrict x0 = p->x + ((n * H + 2 * oh) * W + 2 * ow) * C;
        const float *restrict x1 = x0 + C, *restrict x2 = x0 + W * C, *restrict x3 = x2 + C;
        float *restrict out = p->out + q * C, *restrict sel = (float *)p->sel + q * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            const float v0 = x0[c], v1 = x1[c], v2 = x2[c], v3 = x3[c];
            const float y0 = v0 * a[c] + b[c], y1 = v1 * a[c] + b[c], y2 = v2 * a[c] + b[c], y3 = v3 * a[c] + b[c];
            /* PyTorch's rule: a later value replaces the best if larger, or if NaN */
            const int t1 = (y1 > y0) | (y1 != y1);
            float best = t1 ? y1 : y0, picked = t1 ? v1 : v0;
            const int t2 = (y2 > best) | (y2 != y2);
            best = t2 ? y2 : best;
            picked = t2 ? v2 : picked;
            const int t3 = (y3 > best) | (y3 != y3);
            best = t3 ? y3 : best;
            picked = t3 ? v3 : picked;
            out[c] = best < 0.0f ? 0.0f : best;
            sel[c] = picked;
        }
    }
}

static void pool_input_grad_part(void *vctx, int part, int64_t begin, int64_t end) {
    (void)part;
    Pooled *p = vctx;
    const int64_t H = p->H, W = p->W, C = p->C, Ho = H / 2, Wo = W / 2;
    const float *restrict a = p->st + 2 * C, *restrict b = p->st + 3 * C;
    const float *restrict A = p->k, *restrict B = p->k + C, *restrict K = p->k + 2 * C;
    for (int64_t q = begin; q < end; q++) {
        const int64_t n = q / (Ho * Wo), oh = (q / Wo) % Ho, ow = q % Wo;
        const int64_t at = ((n * H + 2 * oh) * W + 2 * ow) * C;
        const float *restrict x0 = p->x + at, *restrict x1 = x0 + C, *restrict x2 = x0 + W * C, *restrict x3 = x2 + C;
        float *restrict d0 = p->grad + at, *restrict d1 = d0 + C, *restrict d2 = d0 + W * C, *restrict d3 = d2 + C;
        const float *restrict g = p->g + q * C, *restrict sel = p->sel + q * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            const float s = sel[c], dy = A[c] * (s * a[c] + b[c] <= 0.0f ? 0.0f : g[c]); /* ReLU selects g, as above */
            const float v0 = x0[c], v1 = x1[c], v2 = x2[c], v3 = x3[c];
            /* the gradient goes to the first position holding the picked value */
            const int e0 = v0 == s, e1 = (v1 == s) & !e0, e2 = (v2 == s) & !e0 & !e1, e3 = (v3 == s) & !e0 & !e1 & !e2;
            d0[c] = (e0 ? dy : 0.0f) - B[c] * v0 + K[c];
            d1[c] = (e1 ? dy : 0.0f) - B[c] * v1 + K[c];
            d2[c] = (e2 ? dy : 0.0f) - B[c] * v2 + K[c];
            d3[c] = (e3 ? dy : 0.0f) - B[c] * v3 + K[c];
        }
    }
}

/* x: (N, H, W, C), H and W even. Writes out and sel, (N, H/2, W/2, C), and st. */
int bn_pool_relu_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C, const float *weight, const float *bias,
                         float *running_mean, float *running_var, double momentum, double eps, float *out, float *sel, float *st,
                         int threads) {
    if (N < 1 || C < 1 || H < 2 || W < 2 || H % 2 || W % 2) return -1;
    int rc = batch_stats(x, N * H * W, C, weight, bias, running_mean, running_var, momentum, eps, st, threads);
    if (rc) return rc;
    Pooled p = {x, NULL, sel, st, NULL, out, NULL, H, W, C};
    parallel(pool_forward_part, &p, N * (H / 2) * (W / 2), threads);
    return 0;
}

/* g: the gradient of out. Writes grad_x (N, H, W, C) and the C-long grad_weight and grad_bias. */
int bn_pool_relu_backward(const float *x, const float *g, const float *sel, const float *st, const float *weight, int64_t N, int64_t H,
                          int64_t W, int64_t C, float *grad_x, float *grad_weight, float *grad_bias, int threads) {
    if (N < 1 || C < 1 || H < 2 || W < 2 || H % 2 || W % 2) return -1;
    const int64_t pooled = N * (H / 2) * (W / 2);
    double *sums = malloc((size_t)(2 * C) * sizeof(double));
    float *k = malloc((size_t)(3 * C) * sizeof(float));
    int rc = !sums || !k ? -2 : pair_sums(sel, g, pooled, C, st, st + 2 * C, st + 3 * C, sums, threads);
    if (rc == 0) {
        finish_grads(sums, N * H * W, C, st, weight, grad_weight, grad_bias, k);
        Pooled p = {x, g, sel, st, k, NULL, grad_x, H, W, C};
        parallel(pool_input_grad_part, &p, pooled, threads);
    }
    free(sums);
    free(k);
    return rc;
}
