"""Per-step conditional Gaussians for the local-model fits (gpsx.dynamics, the twin in ``gpsx.reference``).

For every t: the joint covariance Σ_t = β·Σ_t + α·R_tᵀR_t from the rows R_t (centred samples, and for the
prior's MAP estimate its between-cluster rows and mean offset), then out | in: with L = chol(Σ_in + ridge·I),
Y = L⁻¹Σ_io, gain = (L⁻ᵀY)ᵀ, bias = μ_out − gain·μ_in, cov = Σ_oo − YᵀY. With ``check_rank`` the unridged
Σ_in is factored first and the smallest squared pivot over its diagonal entry is reported (a scale-free
collinearity measure). ``cov_ok[t]`` says whether cov_t factored (else the caller clips its eigenvalues).
Status codes as in ``gpsx.reference``: NOT_PD with t_fail if a Cholesky fails, NON_FINITE on overflow.
"""
import numpy as np

from gps_core._common cimport NON_FINITE, NOT_PD, OK, need
from gps_core._linalg cimport dn_copy, dn_finite, gemv, potrf, syrk, trsm

from gps_core._workspace import DEFAULT_BLAS_MIN


cdef class FitWorkspace:
    """Scratch for fits with ``n_in`` inputs and ``n_out`` outputs (``blas_min`` as in ``Workspace``)."""
    cdef readonly int n_in, n_out
    cdef readonly long blas_min
    cdef object _buf
    cdef double *L
    cdef double *Y
    cdef double *Cs

    def __init__(self, int n_in, int n_out, long blas_min=DEFAULT_BLAS_MIN):
        if n_in < 1 or n_out < 1:
            raise ValueError(f"FitWorkspace needs n_in, n_out >= 1, got {n_in}, {n_out}")
        self.n_in, self.n_out, self.blas_min = n_in, n_out, blas_min
        cdef long a = n_in, b = n_out
        self._buf = np.zeros(a * a + a * b + b * b)
        cdef double[::1] buf = self._buf
        self.L = &buf[0]
        self.Y = self.L + a * a
        self.Cs = self.Y + a * b

    def __reduce__(self):
        return (FitWorkspace, (self.n_in, self.n_out, self.blas_min))

    def __repr__(self):
        return f"FitWorkspace(n_in={self.n_in}, n_out={self.n_out}, blas_min={self.blas_min})"


cdef double min_pivot_ratio(int n, const double *L, const double *S, int lds) noexcept nogil:
    """min_i L_ii² / S_ii for a Cholesky factor L of S."""
    cdef double r = 1.0, q
    cdef int i
    for i in range(n):
        q = L[i * n + i] * L[i * n + i] / S[<long>i * lds + i]
        if q < r:
            r = q
    return r


def conditional_fit(FitWorkspace ws, const double[:, :, ::1] rows, double alpha, double beta,
                    double[:, :, ::1] sigma, const double[:, ::1] mean, double ridge, bint check_rank,
                    double[:, :, ::1] gain_out, double[:, ::1] bias_out, double[:, :, ::1] cov_out,
                    double[::1] pivot_out, signed char[::1] cov_ok):
    """Fill sigma, gain, bias, cov (and pivot_out when ``check_rank``) step by step (module doc).

    Returns (status, t_fail); on failure the steps before t_fail are complete."""
    cdef int T = rows.shape[0], R = rows.shape[1], a = ws.n_in, b = ws.n_out, n = ws.n_in + ws.n_out
    cdef int t, i, status = OK, t_fail = -1
    cdef long bm = ws.blas_min
    cdef double *S
    cdef double *G
    cdef double *C
    if T < 1 or R < 1:
        raise ValueError(f"rows: need at least one step and one row, got {T} steps and {R} rows")
    for name, arr, dims in (("rows", rows, (T, R, n)), ("sigma", sigma, (T, n, n)), ("mean", mean, (T, n)),
                            ("gain_out", gain_out, (T, b, a)), ("bias_out", bias_out, (T, b)),
                            ("cov_out", cov_out, (T, b, b)), ("pivot_out", pivot_out, (T,)),
                            ("cov_ok", cov_ok, (T,))):
        for axis, want in enumerate(dims):
            need(name, axis, arr.shape[axis], want)
    with nogil:
        for t in range(T):
            S = &sigma[t, 0, 0]
            G = &gain_out[t, 0, 0]
            C = &cov_out[t, 0, 0]
            syrk(n, R, alpha, &rows[t, 0, 0], n, beta, S, n, bm)
            if not dn_finite(n, n, S, n):
                status, t_fail = NON_FINITE, t
                break
            if check_rank:
                dn_copy(a, a, S, n, ws.L, a)
                if potrf(a, ws.L, a, bm) != 0:
                    status, t_fail = NOT_PD, t
                    break
                pivot_out[t] = min_pivot_ratio(a, ws.L, S, n)
            dn_copy(a, a, S, n, ws.L, a)
            for i in range(a):
                ws.L[i * a + i] += ridge
            if potrf(a, ws.L, a, bm) != 0:
                status, t_fail = NOT_PD, t
                break
            dn_copy(a, b, S + a, n, ws.Y, b)                        # Σ_io
            trsm(False, a, b, ws.L, a, ws.Y, b, bm)                 # Y = L⁻¹ Σ_io
            dn_copy(b, b, S + <long>a * n + a, n, C, b)             # Σ_oo
            syrk(b, a, -1.0, ws.Y, b, 1.0, C, b, bm)                # cov = Σ_oo − YᵀY
            trsm(True, a, b, ws.L, a, ws.Y, b, bm)                  # Σ_in⁻¹ Σ_io (a x b)
            for i in range(a):
                dn_copy(b, 1, ws.Y + i * b, 1, G + i, a)            # gain = its transpose
            dn_copy(1, b, &mean[t, a], b, &bias_out[t, 0], b)
            gemv(False, b, a, -1.0, G, a, &mean[t, 0], 1.0, &bias_out[t, 0], bm)
            if not (dn_finite(b, a, G, a) and dn_finite(1, b, &bias_out[t, 0], b) and dn_finite(b, b, C, b)):
                status, t_fail = NON_FINITE, t
                break
            dn_copy(b, b, C, b, ws.Cs, b)
            cov_ok[t] = potrf(b, ws.Cs, b, bm) == 0
    return status, t_fail
