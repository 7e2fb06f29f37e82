"""Backward passes of the GPS trajectory optimisation (math/gps_dp.md §2 and §3.2).

``backward``: λ = 0, the max-entropy LQR pass against the previous controller (exact in one pass).
``backward_gps``: λ_t > 0, forward/backward sweeps to the fixed point of the policy-KL objective.

Arrays are float64 C-contiguous (typed memoryviews refuse anything else); all scratch lives in the
Workspace; loops run without the GIL; failures are status codes (see ``gpsx.reference``).
"""
from libc.math cimport fabs, sqrt

from gps_core._common cimport NON_FINITE, NOT_CONVERGED, NOT_PD, OK, need
from gps_core._linalg cimport (dn_axpy_to, dn_copy, dn_finite, dn_mirror_upper, dn_symmetrize, dn_transpose, gemm,
                               gemm_tn_sym, gemv, potrf, syev, syrk, trsm)
from gps_core._marginals cimport forward_impl
from gps_core._workspace cimport Workspace

from gps_core._marginals import check_controller, check_dynamics

# Inner C <-> (K, k) iterations per step and sweep; tests hold it equal to gpsx.reference.INNER_MAX.
cdef int INNER_MAX = 100
INNER_MAX_ITERATIONS = INNER_MAX      # the same value, visible from Python


cdef struct Stage:
    # the per-step inputs that do not change inside a pass
    const double *F
    const double *f
    const double *L
    const double *l
    const double *P
    const double *p


cdef inline Stage stage_at(int t, int T, int dX, int n, const double *F, const double *f, const double *L,
                           const double *l, const double *P, const double *p) noexcept nogil:
    cdef Stage s
    s.F = F + <long>t * dX * n if t < T - 1 else NULL
    s.f = f + <long>t * dX if t < T - 1 else NULL
    s.L = L + <long>t * n * n
    s.l = l + <long>t * n
    s.P = P + <long>t * n * n
    s.p = p + <long>t * n
    return s


cdef void build_q(Workspace ws, Stage s, double eta) noexcept nogil:
    """Q_zz, q_z = cost/η + KL-to-previous terms + the value of the next state (F = NULL at the end)."""
    cdef int dX = ws.dX, n = ws.n, i
    cdef long bm = ws.blas_min
    cdef double inv_eta = 1.0 / eta
    dn_axpy_to(<long>n * n, inv_eta, s.L, s.P, ws.Qzz)
    dn_axpy_to(n, inv_eta, s.l, s.p, ws.qz)
    if s.F != NULL:
        gemm(False, False, dX, n, dX, 1.0, ws.V, dX, s.F, n, 0.0, ws.G, n, bm)
        gemm_tn_sym(n, dX, 1.0, s.F, n, ws.G, n, ws.Qzz, n, bm)
        dn_copy(1, dX, ws.v, dX, ws.tmpx, dX)
        gemv(False, dX, dX, 1.0, ws.V, dX, s.f, 1.0, ws.tmpx, bm)
        gemv(True, n, dX, 1.0, s.F, n, ws.tmpx, 1.0, ws.qz, bm)
    dn_mirror_upper(n, ws.Qzz, n)        # Q_zz exactly symmetric, from its upper triangle


cdef int factor_quu(Workspace ws) noexcept nogil:
    """ws.Luu <- chol(Q_uu); nonzero if Q_uu is not positive definite."""
    cdef int dX = ws.dX, dU = ws.dU, n = ws.n
    dn_copy(dU, dU, ws.Qzz + <long>dX * n + dX, n, ws.Luu, dU)
    return potrf(dU, ws.Luu, dU, ws.blas_min)


cdef void invert_from_chol(Workspace ws, const double *Lfac, double *out) noexcept nogil:
    """out <- (L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹ (dU x dU), using ws.Linv as scratch."""
    cdef int dU = ws.dU, i
    for i in range(dU * dU):
        ws.Linv[i] = 0.0
    for i in range(dU):
        ws.Linv[i * dU + i] = 1.0
    trsm(False, dU, dU, Lfac, dU, ws.Linv, dU, ws.blas_min)
    syrk(dU, dU, 1.0, ws.Linv, dU, 0.0, out, dU, ws.blas_min)


cdef void lqr_gains(Workspace ws) noexcept nogil:
    """λ = 0 step from ws.Luu: K = −Q_uu⁻¹Q_ux, k = −Q_uu⁻¹q_u, C = Q_uu⁻¹, V = Q_xx − YᵀY, v = q_x − Yᵀy."""
    cdef int dX = ws.dX, dU = ws.dU, n = ws.n, i
    cdef long bm = ws.blas_min
    dn_copy(dU, dX, ws.Qzz + <long>dX * n, n, ws.Y, dX)
    dn_copy(1, dU, ws.qz + dX, dU, ws.y, dU)
    trsm(False, dU, dX, ws.Luu, dU, ws.Y, dX, bm)
    trsm(False, dU, 1, ws.Luu, dU, ws.y, 1, bm)
    for i in range(dU * dX):
        ws.Kcur[i] = -ws.Y[i]
    for i in range(dU):
        ws.kcur[i] = -ws.y[i]
    trsm(True, dU, dX, ws.Luu, dU, ws.Kcur, dX, bm)
    trsm(True, dU, 1, ws.Luu, dU, ws.kcur, 1, bm)
    invert_from_chol(ws, ws.Luu, ws.Ccur)
    dn_copy(dX, dX, ws.Qzz, n, ws.V, dX)
    syrk(dX, dU, -1.0, ws.Y, dX, 1.0, ws.V, dX, bm)
    dn_copy(1, dX, ws.qz, dX, ws.v, dX)
    gemv(True, dX, dU, -1.0, ws.Y, dX, ws.y, 1.0, ws.v, bm)


cdef int gps_gains(Workspace ws, double nu, const double *Kpi, const double *kpi) noexcept nogil:
    """(K, k) minimising the stage for the fixed covariance ws.Ccur; W = Ccur⁻¹. Nonzero if not PD."""
    cdef int dX = ws.dX, dU = ws.dU, n = ws.n, i
    cdef long bm = ws.blas_min
    dn_copy(dU, dU, ws.Ccur, dU, ws.Lc, dU)
    if potrf(dU, ws.Lc, dU, bm) != 0:
        return NOT_PD
    invert_from_chol(ws, ws.Lc, ws.W)
    for i in range(dU * dU):
        ws.Lt[i] = ws.Qzz[<long>(dX + i // dU) * n + dX + i % dU] + nu * ws.W[i]
    if potrf(dU, ws.Lt, dU, bm) != 0:
        return NOT_PD
    dn_copy(dU, dX, ws.Qzz + <long>dX * n, n, ws.R, dX)
    gemm(False, False, dU, dX, dU, -nu, ws.W, dU, Kpi, dX, 1.0, ws.R, dX, bm)
    dn_copy(1, dU, ws.qz + dX, dU, ws.r, dU)
    gemv(False, dU, dU, -nu, ws.W, dU, kpi, 1.0, ws.r, bm)
    trsm(False, dU, dX, ws.Lt, dU, ws.R, dX, bm)
    trsm(True, dU, dX, ws.Lt, dU, ws.R, dX, bm)
    trsm(False, dU, 1, ws.Lt, dU, ws.r, 1, bm)
    trsm(True, dU, 1, ws.Lt, dU, ws.r, 1, bm)
    for i in range(dU * dX):
        ws.Kcur[i] = -ws.R[i]
    for i in range(dU):
        ws.kcur[i] = -ws.r[i]
    return OK


cdef int riccati_cov(Workspace ws, double nu) noexcept nogil:
    """ws.Cnew <- the PD root of C Q_uu C − (1−ν) C − ν M = 0 (M in ws.M, chol(Q_uu) in ws.Luu).

    With C = L⁻ᵀ Y L⁻¹: (Y − aI)² = a²I + ν Lᵀ M L, a = (1 − ν)/2 (math/gps_dp.md §3.1)."""
    cdef int dU = ws.dU, i, j
    cdef long bm = ws.blas_min
    cdef double a = 0.5 * (1.0 - nu), y
    gemm(False, False, dU, dU, dU, 1.0, ws.M, dU, ws.Luu, dU, 0.0, ws.T1, dU, bm)
    gemm(True, False, dU, dU, dU, nu, ws.Luu, dU, ws.T1, dU, 0.0, ws.B, dU, bm)
    for i in range(dU):
        ws.B[i * dU + i] += a * a
    dn_symmetrize(dU, ws.B, dU)
    if syev(dU, ws.B, dU, ws.evals, ws.work, ws.lwork) != 0:
        return NON_FINITE
    for i in range(dU):          # H = diag(a + sqrt(w)) Z, rows of Z = eigenvectors
        y = a + sqrt(ws.evals[i] if ws.evals[i] > 0.0 else 0.0)
        for j in range(dU):
            ws.H[i * dU + j] = y * ws.B[i * dU + j]
    gemm(True, False, dU, dU, dU, 1.0, ws.B, dU, ws.H, dU, 0.0, ws.T1, dU, bm)    # Y = Zᵀ H
    trsm(True, dU, dU, ws.Luu, dU, ws.T1, dU, bm)                                 # L⁻ᵀ Y
    dn_transpose(dU, ws.T1, dU)                                                    # Y L⁻¹
    trsm(True, dU, dU, ws.Luu, dU, ws.T1, dU, bm)                                 # L⁻ᵀ Y L⁻¹
    dn_copy(dU, dU, ws.T1, dU, ws.Cnew, dU)
    dn_symmetrize(dU, ws.Cnew, dU)
    return OK


cdef double rel_change(int size, const double *new, const double *old) noexcept nogil:
    """max|new − old| / max(1, max|new|), the convergence measure of the sweeps."""
    cdef double diff = 0.0, scale = 1.0
    cdef int i
    for i in range(size):
        diff = max(diff, fabs(new[i] - old[i]))
        scale = max(scale, fabs(new[i]))
    return diff / scale


cdef int gps_step(Workspace ws, double nu, const double *Kpi, const double *kpi, const double *Spi,
                  const double *x, const double *S, const double *C0, double tol) noexcept nogil:
    """Per-step optimum (Kcur, kcur, Ccur) for fixed marginals (x, S), and the value (V, v)."""
    cdef int dX = ws.dX, dU = ws.dU, n = ws.n, it, i, j
    cdef long bm = ws.blas_min
    cdef int status
    cdef bint done
    dn_copy(dU, dU, C0, dU, ws.Ccur, dU)
    for it in range(INNER_MAX):
        if gps_gains(ws, nu, Kpi, kpi) != OK:
            return NOT_PD
        # M = Σπ + d dᵀ + D S Dᵀ, D = K − Kπ, d = D x + k − kπ
        for i in range(dU * dX):
            ws.D[i] = ws.Kcur[i] - Kpi[i]
        for i in range(dU):
            ws.d[i] = ws.kcur[i] - kpi[i]
        gemv(False, dU, dX, 1.0, ws.D, dX, x, 1.0, ws.d, bm)
        gemm(False, False, dU, dX, dX, 1.0, ws.D, dX, S, n, 0.0, ws.DS, dX, bm)
        for i in range(dU):
            for j in range(dU):
                ws.M[i * dU + j] = Spi[i * dU + j] + ws.d[i] * ws.d[j]
        gemm(False, True, dU, dU, dX, 1.0, ws.DS, dX, ws.D, dX, 1.0, ws.M, dU, bm)
        dn_symmetrize(dU, ws.M, dU)
        status = riccati_cov(ws, nu)
        if status != OK:
            return status
        done = rel_change(dU * dU, ws.Cnew, ws.Ccur) <= tol
        dn_copy(dU, dU, ws.Cnew, dU, ws.Ccur, dU)
        if done:
            break
    if gps_gains(ws, nu, Kpi, kpi) != OK:
        return NOT_PD
    # V = Q_xx + Q_xu K + ν (W Kπ)ᵀ (Kπ − K);  v = q_x + Q_xu k + ν (W Kπ)ᵀ (kπ − k)
    gemm(False, False, dU, dX, dU, 1.0, ws.W, dU, Kpi, dX, 0.0, ws.R, dX, bm)
    for i in range(dU * dX):
        ws.D[i] = Kpi[i] - ws.Kcur[i]
    for i in range(dU):
        ws.d[i] = kpi[i] - ws.kcur[i]
    dn_copy(dX, dX, ws.Qzz, n, ws.V, dX)
    gemm(True, False, dX, dX, dU, 1.0, ws.Qzz + <long>dX * n, n, ws.Kcur, dX, 1.0, ws.V, dX, bm)
    gemm(True, False, dX, dX, dU, nu, ws.R, dX, ws.D, dX, 1.0, ws.V, dX, bm)
    dn_symmetrize(dX, ws.V, dX)
    dn_copy(1, dX, ws.qz, dX, ws.v, dX)
    gemv(True, dX, dU, 1.0, ws.Qzz + <long>dX * n, n, ws.kcur, 1.0, ws.v, bm)
    gemv(True, dX, dU, nu, ws.R, dX, ws.d, 1.0, ws.v, bm)
    return OK


cdef void reset_value(Workspace ws) noexcept nogil:
    cdef int i
    for i in range(ws.dX * ws.dX):
        ws.V[i] = 0.0
    for i in range(ws.dX):
        ws.v[i] = 0.0


def _check_costs(int T, int n, L, l, P, p):
    for name, mat, vec in (("L", L, l), ("P", P, p)):
        for i, want in enumerate((T, n, n)):
            need(name, i, mat.shape[i], want)
        need(name + " vector", 0, vec.shape[0], T)
        need(name + " vector", 1, vec.shape[1], n)


def backward(Workspace ws, const double[:, :, ::1] F, const double[:, ::1] f, const double[:, :, ::1] L,
             const double[:, ::1] l, const double[:, :, ::1] P, const double[:, ::1] p, double eta,
             double[:, :, ::1] K_out, double[:, ::1] k_out, double[:, :, ::1] C_out):
    """Max-entropy LQR pass (λ = 0) for stage cost L/η + P; returns (status, t_fail)."""
    cdef int T = K_out.shape[0], dX = ws.dX, dU = ws.dU, n = ws.n, t
    cdef int status = OK, t_fail = -1
    cdef Stage s
    ws.check(T, K_out.shape[2], K_out.shape[1])
    check_controller("C_out", T, dU, dX, K_out, k_out, C_out)
    for i, want in enumerate((T - 1, dX, n)):
        need("F", i, F.shape[i], want)
    need("f", 0, f.shape[0], T - 1)
    need("f", 1, f.shape[1], dX)
    _check_costs(T, n, L, l, P, p)
    with nogil:
        reset_value(ws)
        for t in range(T - 1, -1, -1):
            s = stage_at(t, T, dX, n, &F[0, 0, 0] if T > 1 else NULL, &f[0, 0] if T > 1 else NULL,
                         &L[0, 0, 0], &l[0, 0], &P[0, 0, 0], &p[0, 0])
            build_q(ws, s, eta)
            if factor_quu(ws) != 0:
                status, t_fail = NOT_PD, t
                break
            lqr_gains(ws)
            if not (dn_finite(dX, dX, ws.V, dX) and dn_finite(1, dX, ws.v, dX)):
                status, t_fail = NON_FINITE, t
                break
            dn_copy(dU, dX, ws.Kcur, dX, &K_out[t, 0, 0], dX)
            dn_copy(1, dU, ws.kcur, dU, &k_out[t, 0], dU)
            dn_copy(dU, dU, ws.Ccur, dU, &C_out[t, 0, 0], dU)
    return status, t_fail


def backward_gps(Workspace ws, const double[:, :, ::1] F, const double[:, ::1] f, const double[:, :, ::1] Ncov,
                 const double[::1] x0_mean, const double[:, ::1] x0_cov, const double[:, :, ::1] L,
                 const double[:, ::1] l, const double[:, :, ::1] P, const double[:, ::1] p, double eta,
                 const double[:, :, ::1] Kpi, const double[:, ::1] kpi, const double[:, :, ::1] Spi,
                 const double[::1] lam, double tol, int max_sweeps,
                 double[:, :, ::1] K_io, double[:, ::1] k_io, double[:, :, ::1] C_io):
    """λ > 0: forward/backward sweeps to the fixed point (math/gps_dp.md §3.2).

    K_io, k_io, C_io hold the starting controller and receive the result; returns (status, t_fail, sweeps).
    """
    cdef int T = K_io.shape[0], dX = ws.dX, dU = ws.dU, n = ws.n, t, sweep = 0
    cdef int status = NOT_CONVERGED, t_fail = -1
    cdef double nu, change
    cdef Stage s
    cdef const double *Fp
    cdef const double *fp
    cdef const double *Np
    ws.check(T, K_io.shape[2], K_io.shape[1])
    check_controller("C_io", T, dU, dX, K_io, k_io, C_io)
    check_controller("Spi", T, dU, dX, Kpi, kpi, Spi)
    check_dynamics(T, dX, n, F, f, Ncov, x0_mean, x0_cov)
    _check_costs(T, n, L, l, P, p)
    need("lam", 0, lam.shape[0], T)
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be >= 1, got {max_sweeps}")
    Fp = &F[0, 0, 0] if T > 1 else NULL
    fp = &f[0, 0] if T > 1 else NULL
    Np = &Ncov[0, 0, 0] if T > 1 else NULL
    with nogil:
        while sweep < max_sweeps and status == NOT_CONVERGED:
            sweep += 1
            forward_impl(ws, T, Fp, fp, Np, &x0_mean[0], &x0_cov[0, 0], &K_io[0, 0, 0], &k_io[0, 0],
                         &C_io[0, 0, 0], ws.mean, ws.cov)
            if not (dn_finite(T, n, ws.mean, n) and dn_finite(T, n * n, ws.cov, n * n)):
                status, t_fail = NON_FINITE, 0
                break
            reset_value(ws)
            change = 0.0
            for t in range(T - 1, -1, -1):
                s = stage_at(t, T, dX, n, Fp, fp, &L[0, 0, 0], &l[0, 0], &P[0, 0, 0], &p[0, 0])
                build_q(ws, s, eta)
                if factor_quu(ws) != 0:
                    status, t_fail = NOT_PD, t
                    break
                nu = lam[t] / eta
                if nu == 0.0:
                    lqr_gains(ws)
                else:
                    status = gps_step(ws, nu, &Kpi[t, 0, 0], &kpi[t, 0], &Spi[t, 0, 0],
                                      ws.mean + <long>t * n, ws.cov + <long>t * n * n, &C_io[t, 0, 0], tol)
                    if status != OK:
                        t_fail = t
                        break
                    status = NOT_CONVERGED
                if not (dn_finite(dX, dX, ws.V, dX) and dn_finite(1, dX, ws.v, dX)):
                    status, t_fail = NON_FINITE, t
                    break
                change = max(change, rel_change(dU * dX, ws.Kcur, &K_io[t, 0, 0]))
                change = max(change, rel_change(dU, ws.kcur, &k_io[t, 0]))
                change = max(change, rel_change(dU * dU, ws.Ccur, &C_io[t, 0, 0]))
                dn_copy(dU, dX, ws.Kcur, dX, &K_io[t, 0, 0], dX)
                dn_copy(1, dU, ws.kcur, dU, &k_io[t, 0], dU)
                dn_copy(dU, dU, ws.Ccur, dU, &C_io[t, 0, 0], dU)
            if t_fail >= 0:
                break
            if change <= tol:
                status = OK
    return status, t_fail, sweep


def relative_coordinates(Workspace ws, const double[:, :, ::1] F, const double[:, ::1] f,
                         const double[:, :, ::1] C, const double[:, ::1] c, const double[:, :, ::1] Kh,
                         const double[:, ::1] kh, double[:, :, ::1] F_out, double[:, ::1] f_out,
                         double[:, :, ::1] C_out, double[:, ::1] c_out):
    """The problem in coordinates u = K̂x + k̂ + δ: F̃ = F M, f̃ = f + F_u k̂, C̃ = Mᵀ C M, c̃ = Mᵀ(C m + c),
    M = [[I, 0], [K̂, I]], m = [0; k̂] (see ``gpsx.lqr._relative_to_prev``). Returns the status (always 0)."""
    cdef int T = Kh.shape[0], dX = ws.dX, dU = ws.dU, n = ws.n, t
    cdef long bm = ws.blas_min
    cdef const double *K_t
    ws.check(T, Kh.shape[2], Kh.shape[1])
    need("kh", 0, kh.shape[0], T)
    need("kh", 1, kh.shape[1], dU)
    for name, mat in (("F", F), ("F_out", F_out)):
        for i, want in enumerate((T - 1, dX, n)):
            need(name, i, mat.shape[i], want)
    for name, vec in (("f", f), ("f_out", f_out)):
        need(name, 0, vec.shape[0], T - 1)
        need(name, 1, vec.shape[1], dX)
    _check_costs(T, n, C, c, C_out, c_out)
    with nogil:
        for t in range(T):
            K_t = &Kh[t, 0, 0]
            if t < T - 1:
                dn_copy(dX, n, &F[t, 0, 0], n, &F_out[t, 0, 0], n)
                gemm(False, False, dX, dX, dU, 1.0, &F[t, 0, dX], n, K_t, dX, 1.0, &F_out[t, 0, 0], n, bm)
                dn_copy(1, dX, &f[t, 0], dX, &f_out[t, 0], dX)
                gemv(False, dX, dU, 1.0, &F[t, 0, dX], n, &kh[t, 0], 1.0, &f_out[t, 0], bm)
            # B = C M (in ws.Qzz), then C̃ = Mᵀ B
            dn_copy(n, n, &C[t, 0, 0], n, ws.Qzz, n)
            gemm(False, False, n, dX, dU, 1.0, &C[t, 0, dX], n, K_t, dX, 1.0, ws.Qzz, n, bm)
            dn_copy(n, n, ws.Qzz, n, &C_out[t, 0, 0], n)
            gemm(True, False, dX, n, dU, 1.0, K_t, dX, ws.Qzz + <long>dX * n, n, 1.0, &C_out[t, 0, 0], n, bm)
            dn_symmetrize(n, &C_out[t, 0, 0], n)
            # w = C m + c (in ws.qz), c̃ = Mᵀ w
            dn_copy(1, n, &c[t, 0], n, ws.qz, n)
            gemv(False, n, dU, 1.0, &C[t, 0, dX], n, &kh[t, 0], 1.0, ws.qz, bm)
            dn_copy(1, n, ws.qz, n, &c_out[t, 0], n)
            gemv(True, dX, dU, 1.0, K_t, dX, ws.qz + dX, 1.0, &c_out[t, 0], bm)
    return OK
