/* Small dense linear algebra on row-major double matrices, for the sizes where a BLAS call costs more
 * than its arithmetic (gpsx's dU and small dX). Plain C99, no Python API, no allocation.
 *
 * Every matrix is row-major with an explicit leading dimension (row stride). The routines mirror the
 * BLAS/LAPACK calls that gps_core/_linalg.pxd makes for large sizes, so the two are interchangeable.
 */
#ifndef GPSX_DENSE_H
#define GPSX_DENSE_H

#include <math.h>

/* Multiversioning: an AVX2+FMA clone where the compiler and CPU support it, portable code otherwise. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(GPSX_NO_CLONES)
#define GPSX_CLONES __attribute__((target_clones("arch=x86-64-v3", "default"), unused))
#elif defined(__GNUC__)
#define GPSX_CLONES __attribute__((unused))
#else
#define GPSX_CLONES
#endif

/* Dot product with four independent accumulators, so that it vectorises without -ffast-math. */
static inline double dn_dot(int k, const double *restrict a, const double *restrict b)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int p = 0;
    for (; p + 4 <= k; p += 4) {
        s0 += a[p] * b[p];
        s1 += a[p + 1] * b[p + 1];
        s2 += a[p + 2] * b[p + 2];
        s3 += a[p + 3] * b[p + 3];
    }
    for (; p < k; ++p) s0 += a[p] * b[p];
    return (s0 + s1) + (s2 + s3);
}

#if defined(__GNUC__)
#define GPSX_VEC 1
/* Four doubles; the x86-64-v3 clone maps it to one AVX2 register, the default clone to two SSE2 ones. */
typedef double gpsx_v4d __attribute__((vector_size(32)));
static inline gpsx_v4d v4_load(const double *p) { gpsx_v4d r; __builtin_memcpy(&r, p, sizeof r); return r; }
static inline void v4_addstore(double *p, double alpha, gpsx_v4d v)
{
    gpsx_v4d c = v4_load(p);
    c += alpha * v;
    __builtin_memcpy(p, &c, sizeof c);
}

/* Row r of op(A) at column p: op(A)[i0 + r, p]. */
#define GPSX_OPA(ta, A, lda, i0, r, p) ((ta) ? (A)[(long)(p) * (lda) + (i0) + (r)] : (A)[(long)((i0) + (r)) * (lda) + (p)])

/* C[0:R, 0:8] += alpha * op(A)[i0:i0+R, :] B[:, 0:8] with R = 1..4 rows held in 2R vector registers
 * (R and ta are compile-time constants after inlining). */
static inline __attribute__((always_inline)) void dn_block_8(
    int R, int ta, int k, double alpha, const double *A, int lda, int i0, const double *B, int ldb, double *C, int ldc)
{
    gpsx_v4d c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
    for (int p = 0; p < k; ++p) {
        const double *b = B + (long)p * ldb;
        gpsx_v4d b0 = v4_load(b), b1 = v4_load(b + 4);
        double a0 = GPSX_OPA(ta, A, lda, i0, 0, p);
        c00 += a0 * b0; c01 += a0 * b1;
        if (R > 1) { double a1 = GPSX_OPA(ta, A, lda, i0, 1, p); c10 += a1 * b0; c11 += a1 * b1; }
        if (R > 2) { double a2 = GPSX_OPA(ta, A, lda, i0, 2, p); c20 += a2 * b0; c21 += a2 * b1; }
        if (R > 3) { double a3 = GPSX_OPA(ta, A, lda, i0, 3, p); c30 += a3 * b0; c31 += a3 * b1; }
    }
    v4_addstore(C, alpha, c00); v4_addstore(C + 4, alpha, c01);
    if (R > 1) { v4_addstore(C + ldc, alpha, c10); v4_addstore(C + ldc + 4, alpha, c11); }
    if (R > 2) { v4_addstore(C + 2L * ldc, alpha, c20); v4_addstore(C + 2L * ldc + 4, alpha, c21); }
    if (R > 3) { v4_addstore(C + 3L * ldc, alpha, c30); v4_addstore(C + 3L * ldc + 4, alpha, c31); }
}

/* The same for 4 columns. */
static inline __attribute__((always_inline)) void dn_block_4(
    int R, int ta, int k, double alpha, const double *A, int lda, int i0, const double *B, int ldb, double *C, int ldc)
{
    gpsx_v4d c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};
    for (int p = 0; p < k; ++p) {
        gpsx_v4d b0 = v4_load(B + (long)p * ldb);
        c0 += GPSX_OPA(ta, A, lda, i0, 0, p) * b0;
        if (R > 1) c1 += GPSX_OPA(ta, A, lda, i0, 1, p) * b0;
        if (R > 2) c2 += GPSX_OPA(ta, A, lda, i0, 2, p) * b0;
        if (R > 3) c3 += GPSX_OPA(ta, A, lda, i0, 3, p) * b0;
    }
    v4_addstore(C, alpha, c0);
    if (R > 1) v4_addstore(C + ldc, alpha, c1);
    if (R > 2) v4_addstore(C + 2L * ldc, alpha, c2);
    if (R > 3) v4_addstore(C + 3L * ldc, alpha, c3);
}
#endif

/* C[0:R, 0:W] += alpha * op(A)[i0:i0+R, :] B[:, 0:W] for the last W < 4 columns, in scalar registers. */
static inline __attribute__((always_inline)) void dn_block_narrow(
    int R, int W, int ta, int k, double alpha, const double *A, int lda, int i0, const double *B, int ldb,
    double *C, int ldc)
{
    double acc[4][3] = {{0.0}};
    for (int p = 0; p < k; ++p) {
        const double *b = B + (long)p * ldb;
        for (int r = 0; r < 4; ++r) {
            if (r >= R) break;
            double a = GPSX_OPA(ta, A, lda, i0, r, p);
            for (int w = 0; w < 3; ++w)
                if (w < W) acc[r][w] += a * b[w];
        }
    }
    for (int r = 0; r < R; ++r)
        for (int w = 0; w < W; ++w) C[(long)r * ldc + w] += alpha * acc[r][w];
}

/* One strip of R rows of C: 8-, 4- and narrow column blocks. */
static inline __attribute__((always_inline)) void dn_strip(
    int R, int ta, int n, int k, double alpha, const double *A, int lda, int i0, const double *B, int ldb,
    double *C, int ldc)
{
    int j0 = 0;
    double *c = C + (long)i0 * ldc;
#ifdef GPSX_VEC
    for (; j0 + 8 <= n; j0 += 8) dn_block_8(R, ta, k, alpha, A, lda, i0, B + j0, ldb, c + j0, ldc);
    for (; j0 + 4 <= n; j0 += 4) dn_block_4(R, ta, k, alpha, A, lda, i0, B + j0, ldb, c + j0, ldc);
#endif
    for (; j0 < n; j0 += 3) {
        int W = n - j0 < 3 ? n - j0 : 3;
        if (W == 1) dn_block_narrow(R, 1, ta, k, alpha, A, lda, i0, B + j0, ldb, c + j0, ldc);
        else if (W == 2) dn_block_narrow(R, 2, ta, k, alpha, A, lda, i0, B + j0, ldb, c + j0, ldc);
        else dn_block_narrow(R, 3, ta, k, alpha, A, lda, i0, B + j0, ldb, c + j0, ldc);
    }
}

/* The NN / TN product with B untransposed, in strips of 4 rows (then 3, 2 or 1). */
static inline __attribute__((always_inline)) void dn_gemm_nb(
    int ta, int m, int n, int k, double alpha, const double *A, int lda, const double *B, int ldb,
    double *C, int ldc)
{
    int i0 = 0;
    for (; i0 + 4 <= m; i0 += 4) dn_strip(4, ta, n, k, alpha, A, lda, i0, B, ldb, C, ldc);
    switch (m - i0) {
    case 3: dn_strip(3, ta, n, k, alpha, A, lda, i0, B, ldb, C, ldc); break;
    case 2: dn_strip(2, ta, n, k, alpha, A, lda, i0, B, ldb, C, ldc); break;
    case 1: dn_strip(1, ta, n, k, alpha, A, lda, i0, B, ldb, C, ldc); break;
    default: break;
    }
}

/* C (m x n) = beta*C + alpha * op(A) op(B); op(A) is m x k, op(B) is k x n. */
GPSX_CLONES static void dn_gemm(int ta, int tb, int m, int n, int k, double alpha,
                                const double *A, int lda, const double *B, int ldb,
                                double beta, double *C, int ldc)
{
    for (int i = 0; i < m; ++i) {
        double *c = C + (long)i * ldc;
        if (beta == 0.0) {
            for (int j = 0; j < n; ++j) c[j] = 0.0;
        } else if (beta != 1.0) {
            for (int j = 0; j < n; ++j) c[j] *= beta;
        }
    }
    if (!tb) {
        if (ta) dn_gemm_nb(1, m, n, k, alpha, A, lda, B, ldb, C, ldc);
        else dn_gemm_nb(0, m, n, k, alpha, A, lda, B, ldb, C, ldc);
        return;
    }
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            const double *b = B + (long)j * ldb;
            double s;
            if (!ta) {
                s = dn_dot(k, A + (long)i * lda, b);
            } else {
                s = 0.0;
                for (int p = 0; p < k; ++p) s += A[(long)p * lda + i] * b[p];
            }
            C[(long)i * ldc + j] += alpha * s;
        }
}

/* y (m) = beta*y + alpha * op(A) x, A is m x k (or k x m when ta). */
GPSX_CLONES static void dn_gemv(int ta, int m, int k, double alpha, const double *A, int lda,
                                const double *x, double beta, double *y)
{
    for (int i = 0; i < m; ++i) y[i] = beta == 0.0 ? 0.0 : beta * y[i];
    if (!ta) {
        for (int i = 0; i < m; ++i) y[i] += alpha * dn_dot(k, A + (long)i * lda, x);
    } else {   /* y += alpha A^T x: accumulate rows of A, contiguous in the inner loop */
        for (int p = 0; p < k; ++p) {
            const double *restrict a = A + (long)p * lda;
            double xp = alpha * x[p];
            for (int i = 0; i < m; ++i) y[i] += xp * a[i];
        }
    }
}

/* In-place lower Cholesky A = L L^T (lower triangle read and written, upper untouched).
 * Returns 0, or j + 1 when the leading minor of order j + 1 is not positive definite (LAPACK's info). */
static inline int dn_potrf(int n, double *A, int lda)
{
    for (int j = 0; j < n; ++j) {
        double *aj = A + (long)j * lda;
        double d = aj[j];
        for (int p = 0; p < j; ++p) d -= aj[p] * aj[p];
        if (!(d > 0.0)) return j + 1;   /* also catches NaN */
        d = sqrt(d);
        aj[j] = d;
        for (int i = j + 1; i < n; ++i) {
            double *ai = A + (long)i * lda;
            double s = ai[j];
            for (int p = 0; p < j; ++p) s -= ai[p] * aj[p];
            ai[j] = s / d;
        }
    }
    return 0;
}

/* B (n x m) <- L^{-1} B (trans = 0) or L^{-T} B (trans = 1), L lower triangular n x n. */
GPSX_CLONES static void dn_trsm(int trans, int n, int m, const double *L, int ldl, double *B, int ldb)
{
    if (!trans) {
        for (int i = 0; i < n; ++i) {
            double *restrict bi = B + (long)i * ldb;
            for (int p = 0; p < i; ++p) {
                double l = L[(long)i * ldl + p];
                const double *restrict bp = B + (long)p * ldb;
                for (int j = 0; j < m; ++j) bi[j] -= l * bp[j];
            }
            double inv = 1.0 / L[(long)i * ldl + i];
            for (int j = 0; j < m; ++j) bi[j] *= inv;
        }
    } else {
        for (int i = n - 1; i >= 0; --i) {
            double *restrict bi = B + (long)i * ldb;
            for (int p = i + 1; p < n; ++p) {
                double l = L[(long)p * ldl + i];
                const double *restrict bp = B + (long)p * ldb;
                for (int j = 0; j < m; ++j) bi[j] -= l * bp[j];
            }
            double inv = 1.0 / L[(long)i * ldl + i];
            for (int j = 0; j < m; ++j) bi[j] *= inv;
        }
    }
}

/* C (n x n) += alpha * A^T B for a product known to be symmetric (A, B are k x n): only the upper
 * triangle is computed, in 4-row strips from the diagonal block rightwards (a few entries below the
 * diagonal come along); the caller mirrors the upper triangle. */
GPSX_CLONES static void dn_gemm_tn_upper(int n, int k, double alpha, const double *A, int lda,
                                         const double *B, int ldb, double *C, int ldc)
{
    int i0 = 0;
    for (; i0 + 4 <= n; i0 += 4) dn_strip(4, 1, n - i0, k, alpha, A, lda, i0, B + i0, ldb, C + i0, ldc);
    switch (n - i0) {
    case 3: dn_strip(3, 1, n - i0, k, alpha, A, lda, i0, B + i0, ldb, C + i0, ldc); break;
    case 2: dn_strip(2, 1, n - i0, k, alpha, A, lda, i0, B + i0, ldb, C + i0, ldc); break;
    case 1: dn_strip(1, 1, n - i0, k, alpha, A, lda, i0, B + i0, ldb, C + i0, ldc); break;
    default: break;
    }
}

/* out[i] = a * x[i] + y[i] for a contiguous block of len values (out may not alias x or y). */
GPSX_CLONES static void dn_axpy_to(long len, double a, const double *restrict x, const double *restrict y,
                                   double *restrict out)
{
    for (long i = 0; i < len; ++i) out[i] = a * x[i] + y[i];
}

/* Lower triangle of A (n x n) <- its upper triangle. */
static inline void dn_mirror_upper(int n, double *A, int lda)
{
    for (int i = 1; i < n; ++i)
        for (int j = 0; j < i; ++j) A[(long)i * lda + j] = A[(long)j * lda + i];
}

/* C (n x n) = beta*C + alpha * A^T A, A is k x n; the full symmetric matrix is written. */
static inline void dn_syrk(int n, int k, double alpha, const double *A, int lda, double beta, double *C, int ldc)
{
    if (beta != 1.0)
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j) C[(long)i * ldc + j] = beta == 0.0 ? 0.0 : beta * C[(long)i * ldc + j];
    dn_gemm_tn_upper(n, k, alpha, A, lda, A, lda, C, ldc);
    dn_mirror_upper(n, C, ldc);
}

/* A (n x n) <- (A + A^T) / 2 */
static inline void dn_symmetrize(int n, double *A, int lda)
{
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < i; ++j) {
            double s = 0.5 * (A[(long)i * lda + j] + A[(long)j * lda + i]);
            A[(long)i * lda + j] = s;
            A[(long)j * lda + i] = s;
        }
}

/* Copy an m x n block. */
static inline void dn_copy(int m, int n, const double *A, int lda, double *B, int ldb)
{
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) B[(long)i * ldb + j] = A[(long)i * lda + j];
}

/* Transpose an n x n matrix in place. */
static inline void dn_transpose(int n, double *A, int lda)
{
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < i; ++j) {
            double s = A[(long)i * lda + j];
            A[(long)i * lda + j] = A[(long)j * lda + i];
            A[(long)j * lda + i] = s;
        }
}

/* 1 if all m x n entries are finite: NaN and inf survive a sum (inf - inf is NaN), so one vectorisable
 * reduction replaces a branch per entry. */
GPSX_CLONES static int dn_finite(int m, int n, const double *A, int lda)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (int i = 0; i < m; ++i) {
        const double *a = A + (long)i * lda;
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            s0 += a[j] * 0.0; s1 += a[j + 1] * 0.0; s2 += a[j + 2] * 0.0; s3 += a[j + 3] * 0.0;
        }
        for (; j < n; ++j) s0 += a[j] * 0.0;
    }
    return (s0 + s1 + s2 + s3) == 0.0;
}

#endif
