"""Immutable, validated containers for time-varying linear-Gaussian models.

Conventions: float64, C-contiguous, time on axis 0 (t = 0..T-1), z_t = [x_t; u_t], n = dX + dU.
Construction converts lossless dtypes (integers, float32, Fortran-ordered or strided arrays) and
rejects everything else with an error naming the array and the time step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from . import _validate as v
from .errors import ShapeError

__all__ = ["LinearGaussianController", "LinearGaussianDynamics", "QuadraticCost", "Marginals"]


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


def _unchecked(cls, **arrays):
    """An instance built from arrays the kernels produced (float64, C-contiguous, symmetric by
    construction), skipping validation: for gpsx internals only, never for user input."""
    obj = object.__new__(cls)
    for name, value in arrays.items():
        _set(obj, name, value)
    return obj


@dataclass(frozen=True, eq=False)
class LinearGaussianController:
    """Time-varying linear-Gaussian controller p(u_t | x_t) = N(K_t x_t + k_t, cov_t).

    K: (T, dU, dX), k: (T, dU), cov: (T, dU, dU) symmetric positive definite.
    """

    K: np.ndarray
    k: np.ndarray
    cov: np.ndarray

    def __post_init__(self):
        K = v.array(self.K, "K", (None, None, None))
        T, dU, dX = K.shape
        if T < 1 or dU < 1 or dX < 1:
            raise ShapeError(f"needs T, dU, dX >= 1, got shape {K.shape}", array="K")
        _set(self, "K", K)
        _set(self, "k", v.array(self.k, "k", (T, dU)))
        _set(self, "cov", v.covariance(self.cov, "cov", (T, dU, dU)))

    @property
    def T(self) -> int:
        return self.K.shape[0]

    @property
    def dU(self) -> int:
        return self.K.shape[1]

    @property
    def dX(self) -> int:
        return self.K.shape[2]

    @cached_property
    def chol(self) -> np.ndarray:
        """Lower Cholesky factors of ``cov`` (T, dU, dU), for sampling."""
        return np.linalg.cholesky(self.cov)

    @cached_property
    def precision(self) -> np.ndarray:
        """Inverses of ``cov`` (T, dU, dU), symmetrised."""
        inv = np.linalg.inv(self.cov)
        return 0.5 * (inv + np.swapaxes(inv, -1, -2))

    @classmethod
    def from_gains(cls, T: int, dX: int, dU: int, *, K=None, k=None, variance: float = 1.0):
        """A controller with the same gains at every step and covariance ``variance * I``."""
        K = np.zeros((T, dU, dX)) if K is None else np.broadcast_to(K, (T, dU, dX))
        k = np.zeros((T, dU)) if k is None else np.broadcast_to(k, (T, dU))
        return cls(K, k, np.broadcast_to(variance * np.eye(dU), (T, dU, dU)))


@dataclass(frozen=True, eq=False)
class LinearGaussianDynamics:
    """Time-varying linear-Gaussian dynamics x_{t+1} ~ N(F_t z_t + f_t, cov_t) and x_0 ~ N(x0_mean, x0_cov).

    F: (T-1, dX, n), f: (T-1, dX), cov: (T-1, dX, dX) symmetric PSD, x0_mean: (dX,), x0_cov: (dX, dX) PSD.
    """

    F: np.ndarray
    f: np.ndarray
    cov: np.ndarray
    x0_mean: np.ndarray
    x0_cov: np.ndarray

    def __post_init__(self):
        F = v.array(self.F, "F", (None, None, None))
        Tm1, dX, n = F.shape
        if dX < 1 or n <= dX:
            raise ShapeError(f"needs dX >= 1 and n = dX + dU > dX, got shape {F.shape}", array="F")
        _set(self, "F", F)
        _set(self, "f", v.array(self.f, "f", (Tm1, dX)))
        _set(self, "cov", v.covariance(self.cov, "cov", (Tm1, dX, dX), semi=True))
        _set(self, "x0_mean", v.array(self.x0_mean, "x0_mean", (dX,), time_axis=False))
        _set(self, "x0_cov", v.covariance(self.x0_cov, "x0_cov", (dX, dX), time_axis=False, semi=True))

    @property
    def T(self) -> int:
        return self.F.shape[0] + 1

    @property
    def dX(self) -> int:
        return self.F.shape[1]

    @property
    def dU(self) -> int:
        return self.F.shape[2] - self.F.shape[1]


@dataclass(frozen=True, eq=False)
class QuadraticCost:
    """Quadratic cost model l_t(z) = ½ zᵀ C_t z + zᵀ c_t + c0_t.

    C: (T, n, n) symmetric, c: (T, n), c0: (T,) (zeros when omitted).
    """

    C: np.ndarray
    c: np.ndarray
    c0: np.ndarray | None = field(default=None)

    def __post_init__(self):
        C = v.array(self.C, "C", (None, None, None))
        T, n, _ = C.shape
        v.check_shape(C, (T, n, n), "C")
        _set(self, "C", v.symmetrize(C, "C"))
        _set(self, "c", v.array(self.c, "c", (T, n)))
        c0 = np.zeros(T) if self.c0 is None else self.c0
        _set(self, "c0", v.array(c0, "c0", (T,)))

    @property
    def T(self) -> int:
        return self.C.shape[0]

    @property
    def n(self) -> int:
        return self.C.shape[1]

    def evaluate(self, z: np.ndarray) -> np.ndarray:
        """Cost of z (T, n) or (N, T, n) under the quadratic model, per time step."""
        z = np.asarray(z, dtype=np.float64)
        return 0.5 * np.einsum("...ti,tij,...tj->...t", z, self.C, z) + np.einsum("...ti,ti->...t", z, self.c) + self.c0


@dataclass(frozen=True, eq=False)
class Marginals:
    """Gaussian marginals of z_t = [x_t; u_t]: mean (T, n) and covariance (T, n, n)."""

    mean: np.ndarray
    cov: np.ndarray

    def __post_init__(self):
        mean = v.array(self.mean, "mean", (None, None))
        T, n = mean.shape
        _set(self, "mean", mean)
        _set(self, "cov", v.symmetrize(v.array(self.cov, "cov", (T, n, n)), "cov"))

    @property
    def T(self) -> int:
        return self.mean.shape[0]
