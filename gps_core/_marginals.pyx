"""Kernels over the Gaussian marginals: forward propagation, the conditional KL, the expected cost.

Arrays are float64 C-contiguous (typed memoryviews refuse anything else); time on axis 0, z = [x; u].
Status codes as in ``gpsx.reference``: 0 OK, 1 not positive definite (with t_fail).
"""
from gps_core._linalg cimport gemm, gemv, potrf, trsm, dn_copy, dn_symmetrize
from libc.math cimport log

from gps_core._common cimport NOT_PD, OK, need
from gps_core._workspace cimport Workspace

cdef int forward_impl(Workspace ws, int T, const double *F, const double *f, const double *N,
                      const double *x0, const double *S0, const double *K, const double *k,
                      const double *C, double *mean, double *cov) noexcept nogil:
    """Marginals of z_t: mean (T, n), cov (T, n, n), written in place."""
    cdef int dX = ws.dX, dU = ws.dU, n = ws.n, t, i
    cdef long bm = ws.blas_min
    cdef double *m_t
    cdef double *c_t
    cdef const double *K_t
    dn_copy(1, dX, x0, dX, mean, dX)
    dn_copy(dX, dX, S0, dX, cov, n)
    for t in range(T):
        m_t = mean + <long>t * n
        c_t = cov + <long>t * n * n
        K_t = K + <long>t * dU * dX
        # u = K x + k;  Cov(u, x) = K S;  Cov(u) = K S K^T + C
        dn_copy(1, dU, k + <long>t * dU, dU, m_t + dX, dU)
        gemv(False, dU, dX, 1.0, K_t, dX, m_t, 1.0, m_t + dX, bm)
        gemm(False, False, dU, dX, dX, 1.0, K_t, dX, c_t, n, 0.0, c_t + <long>dX * n, n, bm)
        for i in range(dX):
            dn_copy(dU, 1, c_t + <long>dX * n + i, n, c_t + <long>i * n + dX, 1)
        dn_copy(dU, dU, C + <long>t * dU * dU, dU, c_t + <long>dX * n + dX, n)
        # K S Kᵀ = K (K S)ᵀ, and (K S)ᵀ is the xu block just written: an NN product
        gemm(False, False, dU, dU, dX, 1.0, K_t, dX, c_t + dX, n, 1.0, c_t + <long>dX * n + dX, n, bm)
        dn_symmetrize(dU, c_t + <long>dX * n + dX, n)
        if t < T - 1:
            # x' = F z + f;  S' = F Sigma F^T + N
            dn_copy(1, dX, f + <long>t * dX, dX, m_t + n, dX)
            gemv(False, dX, n, 1.0, F + <long>t * dX * n, n, m_t, 1.0, m_t + n, bm)
            # F Σ Fᵀ = F (F Σ)ᵀ (Σ symmetric): transpose G = F Σ once, then an NN product
            gemm(False, False, dX, n, n, 1.0, F + <long>t * dX * n, n, c_t, n, 0.0, ws.G, n, bm)
            for i in range(dX):
                dn_copy(n, 1, ws.G + <long>i * n, 1, ws.Ht + i, dX)
            dn_copy(dX, dX, N + <long>t * dX * dX, dX, c_t + <long>n * n, n)
            gemm(False, False, dX, dX, n, 1.0, F + <long>t * dX * n, n, ws.Ht, dX, 1.0, c_t + <long>n * n, n, bm)
            dn_symmetrize(dX, c_t + <long>n * n, n)
    return OK


def forward(Workspace ws, const double[:, :, ::1] F, const double[:, ::1] f, const double[:, :, ::1] Ncov,
            const double[::1] x0_mean, const double[:, ::1] x0_cov, const double[:, :, ::1] K,
            const double[:, ::1] k, const double[:, :, ::1] C, double[:, ::1] mean_out,
            double[:, :, ::1] cov_out):
    """Gaussian marginals of z_t under the dynamics and controller; returns a status (always 0)."""
    cdef int T = K.shape[0], dX = ws.dX, dU = ws.dU, n = ws.n, status
    ws.check(T, K.shape[2], K.shape[1])
    check_dynamics(T, dX, n, F, f, Ncov, x0_mean, x0_cov)
    check_controller("C", T, dU, dX, K, k, C)
    check_marginals(T, n, mean_out, cov_out)
    with nogil:
        status = forward_impl(ws, T, &F[0, 0, 0] if T > 1 else NULL, &f[0, 0] if T > 1 else NULL,
                              &Ncov[0, 0, 0] if T > 1 else NULL, &x0_mean[0], &x0_cov[0, 0],
                              &K[0, 0, 0], &k[0, 0], &C[0, 0, 0], &mean_out[0, 0], &cov_out[0, 0, 0])
    return status


def conditional_kl(Workspace ws, const double[:, ::1] mean, const double[:, :, ::1] cov,
                   const double[:, :, ::1] Ka, const double[:, ::1] ka, const double[:, :, ::1] Ca,
                   const double[:, :, ::1] Kb, const double[:, ::1] kb, const double[:, :, ::1] Cb,
                   double[::1] out):
    """E_{x ~ N(mean_x, cov_xx)} KL(N(Ka x + ka, Ca) || N(Kb x + kb, Cb)) per step; (status, t_fail)."""
    cdef int T = Ka.shape[0], dX = ws.dX, dU = ws.dU, n = ws.n, t, i, j
    cdef int status = OK, t_fail = -1
    cdef long bm = ws.blas_min
    cdef double acc, logdet
    cdef const double *x
    cdef const double *S
    ws.check(T, Ka.shape[2], Ka.shape[1])
    check_controller("Ca", T, dU, dX, Ka, ka, Ca)
    check_controller("Cb", T, dU, dX, Kb, kb, Cb)
    check_marginals(T, n, mean, cov)
    need("out", 0, out.shape[0], T)
    with nogil:
        for t in range(T):
            dn_copy(dU, dU, &Ca[t, 0, 0], dU, ws.La, dU)
            dn_copy(dU, dU, &Cb[t, 0, 0], dU, ws.Lb, dU)
            if potrf(dU, ws.La, dU, bm) != 0 or potrf(dU, ws.Lb, dU, bm) != 0:
                status, t_fail = NOT_PD, t
                break
            x = &mean[t, 0]
            S = &cov[t, 0, 0]
            # D = Ka - Kb;  e = D x + ka - kb
            for i in range(dU):
                for j in range(dX):
                    ws.D[i * dX + j] = Ka[t, i, j] - Kb[t, i, j]
                ws.e[i] = ka[t, i] - kb[t, i]
            gemv(False, dU, dX, 1.0, ws.D, dX, x, 1.0, ws.e, bm)
            # whiten by Lb: G = Lb^-1 D, H = Lb^-1 La, g = Lb^-1 e
            trsm(False, dU, dX, ws.Lb, dU, ws.D, dX, bm)
            dn_copy(dU, dU, ws.La, dU, ws.H, dU)
            trsm(False, dU, dU, ws.Lb, dU, ws.H, dU, bm)
            trsm(False, dU, 1, ws.Lb, dU, ws.e, 1, bm)
            gemm(False, False, dU, dX, dX, 1.0, ws.D, dX, S, n, 0.0, ws.DS, dX, bm)
            acc = 0.0
            logdet = 0.0
            for i in range(dU):
                for j in range(dU):
                    acc = acc + ws.H[i * dU + j] * ws.H[i * dU + j]
                for j in range(dX):
                    acc = acc + ws.DS[i * dX + j] * ws.D[i * dX + j]
                acc = acc + ws.e[i] * ws.e[i]
                logdet = logdet + log(ws.Lb[i * dU + i]) - log(ws.La[i * dU + i])
            out[t] = 0.5 * (acc - dU + 2.0 * logdet)
    return status, t_fail


def expected_cost(const double[:, ::1] mean, const double[:, :, ::1] cov, const double[:, :, ::1] C,
                  const double[:, ::1] c, const double[::1] c0, double[::1] out):
    """E[½ zᵀ C_t z + zᵀ c_t + c0_t] under N(mean_t, cov_t) per step; returns 0."""
    cdef int T = mean.shape[0], n = mean.shape[1], t, i, j
    cdef double quad, lin, tr, row
    check_marginals(T, n, mean, cov)
    for name, arr in (("C", C), ("c", c), ("c0", c0), ("out", out)):
        need(name, 0, arr.shape[0], T)
    for i in range(1, 3):
        need("C", i, C.shape[i], n)
    need("c", 1, c.shape[1], n)
    with nogil:
        for t in range(T):
            quad = 0.0
            lin = 0.0
            tr = 0.0
            for i in range(n):
                row = 0.0
                for j in range(n):
                    row = row + C[t, i, j] * mean[t, j]
                    tr = tr + C[t, i, j] * cov[t, i, j]
                quad = quad + mean[t, i] * row
                lin = lin + mean[t, i] * c[t, i]
            out[t] = 0.5 * (quad + tr) + lin + c0[t]
    return OK


def check_dynamics(int T, int dX, int n, F, f, Ncov, x0_mean, x0_cov):
    for i, want in enumerate((T - 1, dX, n)):
        need("F", i, F.shape[i], want)
    for i, want in enumerate((T - 1, dX)):
        need("f", i, f.shape[i], want)
    for i, want in enumerate((T - 1, dX, dX)):
        need("Ncov", i, Ncov.shape[i], want)
    need("x0_mean", 0, x0_mean.shape[0], dX)
    need("x0_cov", 0, x0_cov.shape[0], dX)
    need("x0_cov", 1, x0_cov.shape[1], dX)


def check_controller(str name, int T, int dU, int dX, K, k, C):
    for i, want in enumerate((T, dU, dX)):
        need("K of " + name, i, K.shape[i], want)
    for i, want in enumerate((T, dU)):
        need("k of " + name, i, k.shape[i], want)
    for i, want in enumerate((T, dU, dU)):
        need(name, i, C.shape[i], want)


def check_marginals(int T, int n, mean, cov):
    for i, want in enumerate((T, n)):
        need("mean", i, mean.shape[i], want)
    for i, want in enumerate((T, n, n)):
        need("cov", i, cov.shape[i], want)
