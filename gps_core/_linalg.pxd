# The only file that knows BLAS/LAPACK (Fortran, column-major) conventions.
#
# Every operation takes row-major matrices with a leading dimension (row stride) and a `blas_min` flop
# count: below it the plain C loops of src/dense.h run (a BLAS call costs more than the arithmetic at
# gpsx's small sizes), at or above it SciPy's BLAS/LAPACK does. A row-major m x n matrix is the
# column-major n x m matrix of its transpose, so each call swaps operands instead of copying.
from scipy.linalg.cython_blas cimport dgemm, dgemv, dsyrk, dtrsm
from scipy.linalg.cython_lapack cimport dpotrf, dsyev

ctypedef int blas_int

cdef extern from "dense.h" nogil:
    void dn_gemm(int ta, int tb, int m, int n, int k, double alpha, const double *A, int lda,
                 const double *B, int ldb, double beta, double *C, int ldc)
    void dn_gemv(int ta, int m, int k, double alpha, const double *A, int lda, const double *x,
                 double beta, double *y)
    int dn_potrf(int n, double *A, int lda)
    void dn_trsm(int trans, int n, int m, const double *L, int ldl, double *B, int ldb)
    void dn_syrk(int n, int k, double alpha, const double *A, int lda, double beta, double *C, int ldc)
    void dn_gemm_tn_upper(int n, int k, double alpha, const double *A, int lda, const double *B, int ldb,
                          double *C, int ldc)
    void dn_mirror_upper(int n, double *A, int lda)
    void dn_axpy_to(long len, double a, const double *x, const double *y, double *out)
    void dn_symmetrize(int n, double *A, int lda)
    void dn_copy(int m, int n, const double *A, int lda, double *B, int ldb)
    void dn_transpose(int n, double *A, int lda)
    int dn_finite(int m, int n, const double *A, int lda)


cdef inline void gemm(bint ta, bint tb, int m, int n, int k, double alpha, const double *A, int lda,
                      const double *B, int ldb, double beta, double *C, int ldc,
                      long blas_min) noexcept nogil:
    """C (m x n) = beta C + alpha op(A) op(B)."""
    cdef char ca, cb
    cdef blas_int bm = n, bn = m, bk = k, blda = lda, bldb = ldb, bldc = ldc
    if m == 0 or n == 0:
        return
    if <long>m * n * k < blas_min or k == 0:
        dn_gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
        return
    # row-major C = op(A) op(B)  <=>  column-major C^T = op(B)^T op(A)^T
    cb = b'T' if tb else b'N'
    ca = b'T' if ta else b'N'
    dgemm(&cb, &ca, &bm, &bn, &bk, &alpha, <double *>B, &bldb, <double *>A, &blda, &beta, C, &bldc)


cdef inline void gemm_tn_sym(int n, int k, double alpha, const double *A, int lda, const double *B, int ldb,
                             double *C, int ldc, long blas_min) noexcept nogil:
    """C (n x n) += alpha Aᵀ B for a product known to be symmetric; only the upper triangle of C is
    guaranteed (mirror it afterwards). The C path computes just that triangle."""
    if <long>n * n * k < blas_min:
        dn_gemm_tn_upper(n, k, alpha, A, lda, B, ldb, C, ldc)
    else:
        gemm(True, False, n, n, k, alpha, A, lda, B, ldb, 1.0, C, ldc, blas_min)


cdef inline void gemv(bint ta, int m, int k, double alpha, const double *A, int lda, const double *x,
                      double beta, double *y, long blas_min) noexcept nogil:
    """y (m) = beta y + alpha op(A) x, op(A) is m x k."""
    cdef char c
    cdef blas_int rows = k, cols = m, blda = lda, one = 1
    if m == 0:
        return
    if <long>m * k < blas_min or k == 0:
        dn_gemv(ta, m, k, alpha, A, lda, x, beta, y)
        return
    # row-major A (m x k) is column-major A^T (k x m): op(A) x = (A^T)^T x
    if ta:
        c = b'N'
        rows, cols = m, k
    else:
        c = b'T'
    dgemv(&c, &rows, &cols, &alpha, <double *>A, &blda, <double *>x, &one, &beta, y, &one)


cdef inline int potrf(int n, double *A, int lda, long blas_min) noexcept nogil:
    """In-place lower Cholesky of a symmetric n x n matrix; the strict upper triangle is zeroed.

    Returns 0, or the order (1-based) of the first leading minor that is not positive definite."""
    cdef char uplo = b'U'     # column-major upper == row-major lower
    cdef blas_int bn = n, blda = lda, info = 0
    cdef int i, j
    if <long>n * n * n < blas_min:
        info = dn_potrf(n, A, lda)
    else:
        dpotrf(&uplo, &bn, A, &blda, &info)
    if info != 0:
        return info
    for i in range(n):
        if A[<long>i * lda + i] != A[<long>i * lda + i]:    # NaN on the diagonal
            return i + 1
        for j in range(i + 1, n):
            A[<long>i * lda + j] = 0.0
    return 0


cdef inline void trsm(bint trans, int n, int m, const double *L, int ldl, double *B, int ldb,
                      long blas_min) noexcept nogil:
    """B (n x m) <- L^{-1} B, or L^{-T} B when trans; L lower triangular n x n."""
    cdef char side = b'R', uplo = b'U', diag = b'N', tr
    cdef blas_int bm = m, bn = n, bldl = ldl, bldb = ldb
    cdef double one = 1.0
    if m == 0:
        return
    if <long>n * n * m < blas_min:
        dn_trsm(trans, n, m, L, ldl, B, ldb)
        return
    # column-major: B^T <- B^T L^{-T} (or B^T L^{-1}); row-major lower L is column-major upper L^T
    tr = b'T' if trans else b'N'
    dtrsm(&side, &uplo, &tr, &diag, &bm, &bn, &one, <double *>L, &bldl, B, &bldb)


cdef inline void syrk(int n, int k, double alpha, const double *A, int lda, double beta, double *C,
                      int ldc, long blas_min) noexcept nogil:
    """C (n x n) = beta C + alpha A^T A, A is k x n; the full symmetric C is written."""
    cdef char uplo = b'L', tr = b'N'
    cdef blas_int bn = n, bk = k, blda = lda, bldc = ldc
    cdef int i, j
    if <long>n * n * k < blas_min or k == 0:
        dn_syrk(n, k, alpha, A, lda, beta, C, ldc)
        return
    # column-major A^T (n x k): C = alpha A^T (A^T)^T; column-major lower == row-major upper
    dsyrk(&uplo, &tr, &bn, &bk, &alpha, <double *>A, &blda, &beta, C, &bldc)
    for i in range(n):
        for j in range(i):
            C[<long>i * ldc + j] = C[<long>j * ldc + i]


cdef inline int syev(int n, double *A, int lda, double *w, double *work, int lwork) noexcept nogil:
    """Eigen-decomposition of a symmetric matrix: w ascending, row i of A <- eigenvector i."""
    cdef char jobz = b'V', uplo = b'L'
    cdef blas_int bn = n, blda = lda, blwork = lwork, info = 0
    dsyev(&jobz, &uplo, &bn, A, &blda, w, work, &blwork, &info)
    return info


cdef inline int syev_lwork(int n) noexcept nogil:
    """Optimal LAPACK workspace length for syev at order n."""
    cdef char jobz = b'V', uplo = b'L'
    cdef blas_int bn = n, blda = n, lwork = -1, info = 0
    cdef double a = 0.0, w = 0.0, query = 0.0
    dsyev(&jobz, &uplo, &bn, &a, &blda, &w, &query, &lwork, &info)
    return max(<int>query, 3 * n)
