# Preallocated scratch buffers for one problem size (T, dX, dU); the only mutable state of the kernels.
cdef class Workspace:
    cdef readonly int T, dX, dU, n, lwork
    cdef readonly long blas_min
    cdef object _buf
    # backward pass
    cdef double *V
    cdef double *v
    cdef double *tmpx
    cdef double *Qzz
    cdef double *qz
    cdef double *G
    cdef double *Ht
    cdef double *Luu
    cdef double *Y
    cdef double *y
    cdef double *Linv
    # policy-KL (lambda > 0) step
    cdef double *W
    cdef double *Lt
    cdef double *Lc
    cdef double *R
    cdef double *r
    cdef double *D
    cdef double *DS
    cdef double *d
    cdef double *M
    cdef double *B
    cdef double *T1
    cdef double *evals
    cdef double *Cnew
    cdef double *Ccur
    cdef double *Kcur
    cdef double *kcur
    cdef double *work
    # forward/backward sweeps
    cdef double *mean
    cdef double *cov
    # KL
    cdef double *La
    cdef double *Lb
    cdef double *H
    cdef double *e

    cdef int check(self, int T, int dX, int dU) except -1
