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
#define GPSX_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
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

/* C (m x n) = beta*C + alpha * op(A) op(B); op(A) is m x k, op(B) is k x n. */
GPSX_CLONES static void dn_gemm(int ta, int tb, int m, int n, int k, double alpha,
                                const double *A, int lda, const double *B, int ldb,
                                double beta, double *C, int ldc)
{
    for (int i = 0; i < m; ++i) {
        double *restrict c = C + (long)i * ldc;
        if (beta == 0.0) {
            for (int j = 0; j < n; ++j) c[j] = 0.0;
        } else if (beta != 1.0) {
            for (int j = 0; j < n; ++j) c[j] *= beta;
        }
        if (!tb) {
            for (int p = 0; p < k; ++p) {
                double a = alpha * (ta ? A[(long)p * lda + i] : A[(long)i * lda + p]);
                const double *restrict b = B + (long)p * ldb;
                for (int j = 0; j < n; ++j) c[j] += a * b[j];
            }
        } else {
            for (int j = 0; j < n; ++j) {
                const double *b = B + (long)j * ldb;
                double s;
                if (!ta) {
                    s = dn_dot(k, A + (long)i * lda, b);
                } else {
                    s = 0.0;
                    for (int p = 0; p < k; ++p) s += A[(long)p * lda + i] * b[p];
                }
                c[j] += alpha * s;
            }
        }
    }
}

/* y (m) = beta*y + alpha * op(A) x, A is m x k (or k x m when ta). */
static void dn_gemv(int ta, int m, int k, double alpha, const double *A, int lda,
                    const double *x, double beta, double *y)
{
    for (int i = 0; i < m; ++i) {
        double s = 0.0;
        if (!ta) {
            const double *a = A + (long)i * lda;
            for (int p = 0; p < k; ++p) s += a[p] * x[p];
        } else {
            for (int p = 0; p < k; ++p) s += A[(long)p * lda + i] * x[p];
        }
        y[i] = (beta == 0.0 ? 0.0 : beta * y[i]) + alpha * s;
    }
}

/* In-place lower Cholesky A = L L^T (lower triangle read and written, upper untouched).
 * Returns 0, or j + 1 when the leading minor of order j + 1 is not positive definite (LAPACK's info). */
static int dn_potrf(int n, double *A, int lda)
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

/* C (n x n) = beta*C + alpha * A^T A, A is k x n; the full symmetric matrix is written. */
GPSX_CLONES static void dn_syrk(int n, int k, double alpha, const double *A, int lda,
                                double beta, double *C, int ldc)
{
    for (int i = 0; i < n; ++i) {
        double *restrict c = C + (long)i * ldc;
        for (int j = i; j < n; ++j) c[j] = (beta == 0.0 ? 0.0 : beta * c[j]);
        for (int p = 0; p < k; ++p) {
            const double *restrict a = A + (long)p * lda;
            double s = alpha * a[i];
            for (int j = i; j < n; ++j) c[j] += s * a[j];
        }
    }
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < i; ++j) C[(long)i * ldc + j] = C[(long)j * ldc + i];
}

/* A (n x n) <- (A + A^T) / 2 */
static void dn_symmetrize(int n, double *A, int lda)
{
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < i; ++j) {
            double s = 0.5 * (A[(long)i * lda + j] + A[(long)j * lda + i]);
            A[(long)i * lda + j] = s;
            A[(long)j * lda + i] = s;
        }
}

/* Copy an m x n block. */
static void dn_copy(int m, int n, const double *A, int lda, double *B, int ldb)
{
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) B[(long)i * ldb + j] = A[(long)i * lda + j];
}

/* Transpose an n x n matrix in place. */
static void dn_transpose(int n, double *A, int lda)
{
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < i; ++j) {
            double s = A[(long)i * lda + j];
            A[(long)i * lda + j] = A[(long)j * lda + i];
            A[(long)j * lda + i] = s;
        }
}

/* 1 if all m x n entries are finite. */
static int dn_finite(int m, int n, const double *A, int lda)
{
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j)
            if (!isfinite(A[(long)i * lda + j])) return 0;
    return 1;
}

#endif
