"""Shared fixtures: run every kernel of a backend on one synthetic problem."""
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

# Single-threaded BLAS (as gpsx runs by default): tiny matrices on a busy 2-core machine otherwise spend
# milliseconds waking OpenBLAS threads.
_BLAS_LIMIT = threadpool_limits(1)


def kl_terms(prev):
    """Quadratic form (P, p) in z of ½(u − K̂x − k̂)ᵀ Ĉ⁻¹ (u − K̂x − k̂): a generic, dense stage-cost term."""
    T, dU, dX = prev.K.shape
    W, K, k = prev.precision, prev.K, prev.k
    WK = W @ K
    P = np.block([[np.swapaxes(K, 1, 2) @ WK, -np.swapaxes(WK, 1, 2)], [-WK, W]])
    Wk = np.einsum("tij,tj->ti", W, k)
    p = np.concatenate([np.einsum("tji,tj->ti", K, Wk), -Wk], axis=1)
    return {"P": np.ascontiguousarray(P), "p": np.ascontiguousarray(p)}


def run_kernels(kern, ws, problem, eta=1.0, lam=None, tol=1e-11, max_sweeps=300):
    """All kernel outputs of ``kern`` (gps_core or gpsx.reference) for ``problem``, as a dict of arrays."""
    d, c, p, pi = problem.dyn, problem.cost, problem.prev, problem.policy
    T, dU, dX = p.K.shape
    n = dX + dU
    out = kl_terms(p)
    K, k, C = np.zeros((T, dU, dX)), np.zeros((T, dU)), np.zeros((T, dU, dU))
    out["status"] = kern.backward(ws, d.F, d.f, c.C, c.c, out["P"], out["p"], eta, K, k, C)
    out.update(K=K, k=k, C=C)
    mean, cov = np.zeros((T, n)), np.zeros((T, n, n))
    kern.forward(ws, d.F, d.f, d.cov, d.x0_mean, d.x0_cov, K, k, C, mean, cov)
    out.update(mean=mean, cov=cov)
    kl = np.zeros(T)
    out["kl_status"] = kern.conditional_kl(ws, mean, cov, K, k, C, p.K, p.k, p.cov, kl)
    out["kl"] = kl
    ec = np.zeros(T)
    kern.expected_cost(mean, cov, c.C, c.c, c.c0, ec)
    out["expected_cost"] = ec
    rel = {"Fr": np.empty_like(d.F), "fr": np.empty_like(d.f), "Cr": np.empty_like(c.C), "cr": np.empty_like(c.c)}
    kern.relative_coordinates(ws, d.F, d.f, c.C, c.c, p.K, p.k, rel["Fr"], rel["fr"], rel["Cr"], rel["cr"])
    out.update(rel)
    if lam is not None:
        Kg, kg, Cg = p.K.copy(), p.k.copy(), p.cov.copy()
        out["gps_status"] = kern.backward_gps(ws, d.F, d.f, d.cov, d.x0_mean, d.x0_cov, c.C, c.c, out["P"],
                                              out["p"], eta, pi.K, pi.k, pi.cov, lam, tol, max_sweeps,
                                              Kg, kg, Cg)
        out.update(Kg=Kg, kg=kg, Cg=Cg)
    return out


@pytest.fixture
def kernels_runner():
    return run_kernels


@pytest.fixture(scope="session")
def compiled():
    """The compiled core; a missing build is an error, not a skip (unless GPSX_BACKEND=numpy on purpose)."""
    if os.environ.get("GPSX_BACKEND", "").lower() == "numpy":
        pytest.skip("GPSX_BACKEND=numpy: compiled kernels not under test")
    import gps_core

    return gps_core
