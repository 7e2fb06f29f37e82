"""Pure-numpy twins of the compiled kernels in ``gps_core``: same signatures, same results to ~1e-10.

They are the test oracle, the baseline of ``gpsx bench`` and the fallback backend (``GPSX_BACKEND=numpy``).
Written for clarity: one Python loop over time steps, one numpy call per matrix operation.

Conventions (shared with the kernels): every array is float64 and C-contiguous, time on axis 0,
z_t = [x_t; u_t], n = dX + dU. Outputs are written into caller-provided arrays; the functions return a
status code instead of raising, so the Python layer decides what to do (see ``gpsx.lqr``):

- ``OK`` (0): success;
- ``NOT_PD`` (1): a matrix that must be positive definite is not (Q_uu in the backward pass, a controller
  covariance in the KL); ``t_fail`` names the time step;
- ``NOT_CONVERGED`` (2): the forward/backward fixed point did not reach ``tol`` within ``max_sweeps``;
- ``NON_FINITE`` (3): NaN or inf appeared (overflow) at ``t_fail``.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

OK, NOT_PD, NOT_CONVERGED, NON_FINITE = 0, 1, 2, 3


class Workspace:
    """Scratch space for one problem size (the numpy twin needs none; kept for signature parity)."""

    def __init__(self, T: int, dX: int, dU: int):
        self.T, self.dX, self.dU = T, dX, dU


def _chol(A: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor, or None if A is not positive definite."""
    try:
        return np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        return None


def _sym(A: np.ndarray) -> np.ndarray:
    return 0.5 * (A + A.T)


def _chol_solve(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(L Lᵀ)⁻¹ B for a lower Cholesky factor L."""
    Linv = np.linalg.inv(L)
    return Linv.T @ (Linv @ B)


def forward(ws, F, f, Ncov, x0_mean, x0_cov, K, k, C, mean_out, cov_out) -> int:
    """Gaussian marginals of z_t = [x_t; u_t] under linear-Gaussian dynamics and controller."""
    T, dU, dX = K.shape
    x, S = x0_mean.copy(), x0_cov.copy()
    for t in range(T):
        u = K[t] @ x + k[t]
        KS = K[t] @ S
        mean_out[t, :dX], mean_out[t, dX:] = x, u
        cov_out[t, :dX, :dX] = S
        cov_out[t, :dX, dX:] = KS.T
        cov_out[t, dX:, :dX] = KS
        cov_out[t, dX:, dX:] = _sym(KS @ K[t].T + C[t])
        if t < T - 1:
            x = F[t] @ mean_out[t] + f[t]
            S = _sym(F[t] @ cov_out[t] @ F[t].T + Ncov[t])
    return OK


def _stage(t, T, dX, F, f, L, l, P, p, eta, V, v):
    """Q_zz, q_z of stage t: cost/η + KL-to-previous terms + the value of the next state."""
    Qzz = L[t] / eta + P[t]
    qz = l[t] / eta + p[t]
    if t < T - 1:
        Qzz = Qzz + F[t].T @ V @ F[t]
        qz = qz + F[t].T @ (V @ f[t] + v)
    return _sym(Qzz), qz


def backward(ws, F, f, L, l, P, p, eta, K_out, k_out, C_out):
    """Max-entropy LQR pass (λ = 0): the exact minimiser for this η. Returns (status, t_fail)."""
    T, dU, dX = K_out.shape
    V, v = np.zeros((dX, dX)), np.zeros(dX)
    for t in range(T - 1, -1, -1):
        Qzz, qz = _stage(t, T, dX, F, f, L, l, P, p, eta, V, v)
        Luu = _chol(Qzz[dX:, dX:])
        if Luu is None:
            return NOT_PD, t
        K_out[t] = -_chol_solve(Luu, Qzz[dX:, :dX])
        k_out[t] = -_chol_solve(Luu, qz[dX:])
        C_out[t] = _sym(_chol_solve(Luu, np.eye(dU)))
        V = _sym(Qzz[:dX, :dX] + Qzz[:dX, dX:] @ K_out[t])
        v = qz[:dX] + Qzz[:dX, dX:] @ k_out[t]
        if not (np.isfinite(V).all() and np.isfinite(v).all()):
            return NON_FINITE, t
    return OK, -1


def riccati_cov(Quu_chol, M, nu):
    """The PD root C of C Q_uu C − (1 − ν) C − ν M = 0, with Q_uu = L Lᵀ (math/gps_dp.md §3.1).

    With C = L⁻ᵀ Y L⁻¹ the equation becomes (Y − aI)² = a²I + ν Lᵀ M L, a = (1 − ν)/2.
    """
    Lq = Quu_chol
    a = 0.5 * (1.0 - nu)
    B = a * a * np.eye(M.shape[0]) + nu * (Lq.T @ M @ Lq)
    w, U = np.linalg.eigh(_sym(B))
    Y = (U * (a + np.sqrt(np.maximum(w, 0.0)))) @ U.T
    Linv = np.linalg.inv(Lq)
    return _sym(Linv.T @ Y @ Linv)


def _gps_gains(Qzz, qz, Kpi, kpi, nu, C, dX):
    """(K, k, W) minimising the stage for a fixed covariance C (W = C⁻¹), or None if not PD."""
    Lc = _chol(C)
    if Lc is None:
        return None
    W = _sym(_chol_solve(Lc, np.eye(C.shape[0])))
    Lt = _chol(Qzz[dX:, dX:] + nu * W)
    if Lt is None:
        return None
    K = -_chol_solve(Lt, Qzz[dX:, :dX] - nu * W @ Kpi)
    k = -_chol_solve(Lt, qz[dX:] - nu * W @ kpi)
    return K, k, W


def _gps_step(Qzz, qz, Luu, Kpi, kpi, Spi, nu, x, S, C, dX, tol, inner_max):
    """Per-step optimum (K, k, C) of §3.2 for fixed marginals (x, S); returns (K, k, C, V, v) or None.

    Alternates C ← Riccati(M(K(C), k(C))) until C changes by at most ``tol`` (relative).
    """
    for _ in range(inner_max):
        gains = _gps_gains(Qzz, qz, Kpi, kpi, nu, C, dX)
        if gains is None:
            return None
        K, k, _W = gains
        D = K - Kpi
        d = D @ x + k - kpi
        C_new = riccati_cov(Luu, _sym(Spi + np.outer(d, d) + D @ S @ D.T), nu)
        done = _rel_change(C_new, C) <= tol
        C = C_new
        if done:
            break
    gains = _gps_gains(Qzz, qz, Kpi, kpi, nu, C, dX)
    if gains is None:
        return None
    K, k, W = gains
    WKpi = W @ Kpi
    V = _sym(Qzz[:dX, :dX] + Qzz[:dX, dX:] @ K + nu * WKpi.T @ (Kpi - K))
    v = qz[:dX] + Qzz[:dX, dX:] @ k + nu * WKpi.T @ (kpi - k)
    return K, k, C, V, v


INNER_MAX = 100


def backward_gps(ws, F, f, Ncov, x0_mean, x0_cov, L, l, P, p, eta, Kpi, kpi, Spi, lam, tol, max_sweeps,
                 K_io, k_io, C_io):
    """λ > 0: forward/backward sweeps to the fixed point of math/gps_dp.md §3.2.

    K_io, k_io, C_io hold the starting controller and receive the result. Returns (status, t_fail, sweeps).
    """
    T, dU, dX = K_io.shape
    n = dX + dU
    mean, cov = np.empty((T, n)), np.empty((T, n, n))
    for sweep in range(1, max_sweeps + 1):
        forward(ws, F, f, Ncov, x0_mean, x0_cov, K_io, k_io, C_io, mean, cov)
        if not (np.isfinite(mean).all() and np.isfinite(cov).all()):
            return NON_FINITE, 0, sweep
        V, v = np.zeros((dX, dX)), np.zeros(dX)
        change = 0.0
        for t in range(T - 1, -1, -1):
            Qzz, qz = _stage(t, T, dX, F, f, L, l, P, p, eta, V, v)
            Luu = _chol(Qzz[dX:, dX:])
            if Luu is None:
                return NOT_PD, t, sweep
            nu = lam[t] / eta
            if nu == 0.0:
                K = -_chol_solve(Luu, Qzz[dX:, :dX])
                k = -_chol_solve(Luu, qz[dX:])
                C = _sym(_chol_solve(Luu, np.eye(dU)))
                V = _sym(Qzz[:dX, :dX] + Qzz[:dX, dX:] @ K)
                v = qz[:dX] + Qzz[:dX, dX:] @ k
            else:
                step = _gps_step(Qzz, qz, Luu, Kpi[t], kpi[t], Spi[t], nu, mean[t, :dX], cov[t, :dX, :dX],
                                 C_io[t], dX, tol, INNER_MAX)
                if step is None:
                    return NOT_PD, t, sweep
                K, k, C, V, v = step
            if not (np.isfinite(V).all() and np.isfinite(v).all()):
                return NON_FINITE, t, sweep
            change = max(change, _rel_change(K, K_io[t]), _rel_change(k, k_io[t]), _rel_change(C, C_io[t]))
            K_io[t], k_io[t], C_io[t] = K, k, C
        if change <= tol:
            return OK, -1, sweep
    return NOT_CONVERGED, -1, max_sweeps


def _rel_change(new, old) -> float:
    return float(np.abs(new - old).max() / max(1.0, np.abs(new).max()))


def conditional_kl(ws, mean, cov, Ka, ka, Ca, Kb, kb, Cb, out):
    """E_{x ~ N(mean_x, cov_xx)} KL(N(Ka x + ka, Ca) ‖ N(Kb x + kb, Cb)) per time step; (status, t_fail).

    ``mean`` (T,n) and ``cov`` (T,n,n) are marginals of z; only their state block x is used.
    """
    T, dU, dX = Ka.shape
    for t in range(T):
        La, Lb = _chol(Ca[t]), _chol(Cb[t])
        if La is None or Lb is None:
            return NOT_PD, t
        x, S = mean[t, :dX], cov[t, :dX, :dX]
        D = Ka[t] - Kb[t]
        e = D @ x + ka[t] - kb[t]
        Lb_inv = np.linalg.inv(Lb)
        G, H, g = Lb_inv @ D, Lb_inv @ La, Lb_inv @ e
        logdet = 2.0 * (np.log(np.diag(Lb)).sum() - np.log(np.diag(La)).sum())
        out[t] = 0.5 * ((H * H).sum() + g @ g + np.sum((G @ S) * G) - dU + logdet)
    return OK, -1


def expected_cost(mean, cov, C, c, c0, out) -> int:
    """E[½ zᵀ C_t z + zᵀ c_t + c0_t] under N(mean_t, cov_t), per time step."""
    T = mean.shape[0]
    for t in range(T):
        out[t] = 0.5 * (mean[t] @ C[t] @ mean[t] + np.sum(C[t] * cov[t])) + mean[t] @ c[t] + c0[t]
    return OK


class FitWorkspace:
    """Scratch for the conditional fit (the numpy twin needs none; kept for signature parity)."""

    def __init__(self, n_in: int, n_out: int):
        self.n_in, self.n_out = n_in, n_out


def conditional_fit(ws, rows, alpha, beta, sigma, mean, ridge, check_rank, gain_out, bias_out, cov_out,
                    pivot_out, cov_ok):
    """Per step: Σ = β Σ + α RᵀR, then out | in of N(mean, Σ) with ``ridge`` on the input diagonal.

    With ``check_rank``, pivot_out[t] = min_i L_ii² / Σ_ii for L = chol(Σ_in) (unridged); cov_ok[t] says
    whether cov_t is positive definite. Returns (status, t_fail)."""
    a = ws.n_in
    for t in range(rows.shape[0]):
        S = alpha * rows[t].T @ rows[t] + (beta * sigma[t] if beta != 0.0 else 0.0)
        sigma[t] = S
        if not np.isfinite(S).all():
            return NON_FINITE, t
        if check_rank:
            L = _chol(S[:a, :a])
            if L is None:
                return NOT_PD, t
            pivot_out[t] = min(1.0, float((np.diag(L) ** 2 / np.diag(S)[:a]).min()))
        L = _chol(S[:a, :a] + ridge * np.eye(a))
        if L is None:
            return NOT_PD, t
        Y = np.linalg.solve(L, S[:a, a:])
        cov_out[t] = S[a:, a:] - Y.T @ Y
        gain_out[t] = np.linalg.solve(L.T, Y).T
        bias_out[t] = mean[t, a:] - gain_out[t] @ mean[t, :a]
        if not (np.isfinite(gain_out[t]).all() and np.isfinite(bias_out[t]).all() and np.isfinite(cov_out[t]).all()):
            return NON_FINITE, t
        cov_ok[t] = _chol(cov_out[t]) is not None
    return OK, -1


def relative_coordinates(ws, F, f, C, c, Kh, kh, F_out, f_out, C_out, c_out) -> int:
    """The problem in coordinates u = K̂x + k̂ + δ: F̃ = F M, f̃ = f + F_u k̂, C̃ = Mᵀ C M, c̃ = Mᵀ(C m + c),
    M = [[I, 0], [K̂, I]], m = [0; k̂] (see ``gpsx.lqr._relative_to_prev``). Batched over t: no recursion
    here, so a per-step loop would only make the twin slower."""
    T, dU, dX = Kh.shape
    Fu, KhT = F[:, :, dX:], np.swapaxes(Kh, 1, 2)
    F_out[:] = F
    F_out[:, :, :dX] += Fu @ Kh[:T - 1]
    f_out[:] = f + np.einsum("tij,tj->ti", Fu, kh[:T - 1])
    B = C.copy()                                                     # C M
    B[:, :, :dX] += C[:, :, dX:] @ Kh
    C_out[:] = B
    C_out[:, :dX, :] += KhT @ B[:, dX:, :]                           # Mᵀ C M
    C_out[:] = 0.5 * (C_out + np.swapaxes(C_out, 1, 2))
    w = np.einsum("tij,tj->ti", C[:, :, dX:], kh) + c                # C m + c
    c_out[:] = w
    c_out[:, :dX] += np.einsum("tji,tj->ti", Kh, w[:, dX:])
    return OK


def softplus(z, bias, out, slope) -> int:
    """out = softplus(z + bias), slope = σ(z + bias) (bias broadcast over rows); returns the status (always 0).

    softplus(y) = max(y, 0) − log σ(|y|), and σ(|y|) is σ(y) or 1 − σ(y): one expit and one log (log1p and
    logaddexp are ~2× slower), exact to ~1e-16 absolute.
    """
    y = z + bias
    s = expit(y)
    a = np.maximum(s, 1.0 - s)  # σ(|y|)
    np.log(a, out=a)
    np.subtract(np.maximum(y, 0.0), a, out=out)
    slope[...] = s
    return OK
