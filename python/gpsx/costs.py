"""Costs of Appendix B with analytic first and second derivatives.

A cost is a sum of terms over samples X (n, T, dX) and actions U (n, T, dU). Each term returns its value
(n, T) and adds its derivatives into a shared :class:`CostDerivatives`:

* :class:`ActionPenalty`   ½ w ‖u‖²
* :class:`StateTarget`     ½ w (x_i − x_i*)²            (swimmer/walker forward velocity, walker height)
* :class:`PointTarget`     w ℓ12(p(q) − p*)              (peg tip, octopus tip)

ℓ12(z) = ½‖z‖² + √(α + ‖z‖²), α = 1e-5 by default (Appendix B; the ‖z‖ inside the root is the Euclidean
norm of the whole offset). ``PointTarget`` uses the exact gradient Jᵀ∇ℓ12 and the **Gauss–Newton**
Hessian Jᵀ∇²ℓ12 J: the term Σ_i ∂ℓ12/∂z_i ∇²_q p_i (second derivatives of the kinematics) is dropped,
as is usual for iLQG-style methods; it vanishes at the target. Point positions and Jacobians come from a
:class:`PointMap`, e.g. :class:`SitePoint` (MuJoCo ``mj_kinematics`` + ``mj_comPos`` + ``mj_jacSite``).
All joints of the shipped models are hinges or slides (nq = nv), so ∂p/∂qpos is the MuJoCo Jacobian.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import mujoco
import numpy as np

from . import _validate as v

__all__ = [
    "l12",
    "CostDerivatives",
    "CostTerm",
    "PointMap",
    "SitePoint",
    "ActionPenalty",
    "StateTarget",
    "PointTarget",
    "Cost",
]

DEFAULT_ALPHA = 1e-5


def l12(z: np.ndarray, alpha: float = DEFAULT_ALPHA) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ℓ12 over the last axis of ``z`` (..., d): value (...), gradient (..., d), Hessian (..., d, d)."""
    z = np.asarray(z, dtype=np.float64)
    sq = np.einsum("...i,...i->...", z, z)
    r = np.sqrt(alpha + sq)
    value = 0.5 * sq + r
    grad = z * (1.0 + 1.0 / r)[..., None]
    d = z.shape[-1]
    hess = (np.eye(d) * (1.0 + 1.0 / r)[..., None, None]
            - z[..., :, None] * z[..., None, :] / (r**3)[..., None, None])
    return value, grad, hess


@dataclass
class CostDerivatives:
    """Second-order expansion of a cost at every sample and time step.

    l (n,T), lx (n,T,dX), lu (n,T,dU), lxx (n,T,dX,dX), luu (n,T,dU,dU), lux (n,T,dU,dX).
    """

    l: np.ndarray
    lx: np.ndarray
    lu: np.ndarray
    lxx: np.ndarray
    luu: np.ndarray
    lux: np.ndarray

    @classmethod
    def zeros(cls, n: int, T: int, dX: int, dU: int) -> "CostDerivatives":
        return cls(np.zeros((n, T)), np.zeros((n, T, dX)), np.zeros((n, T, dU)),
                   np.zeros((n, T, dX, dX)), np.zeros((n, T, dU, dU)), np.zeros((n, T, dU, dX)))


class CostTerm(Protocol):
    """One additive cost term."""

    def value(self, X: np.ndarray, U: np.ndarray) -> np.ndarray:
        """Cost (n, T)."""

    def accumulate(self, X: np.ndarray, U: np.ndarray, out: CostDerivatives) -> None:
        """Add this term's value and derivatives into ``out``."""


class PointMap(Protocol):
    """A point p(q) of the model (an end effector) and its Jacobian ∂p/∂qpos."""

    dim: int  # dimension of the point
    nq: int  # number of joint positions it reads (the first nq entries of x)

    def positions(self, qpos: np.ndarray) -> np.ndarray:
        """Points (N, dim) for joint positions (N, nq)."""

    def jacobians(self, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points (N, dim) and Jacobians (N, dim, nq)."""


class SitePoint:
    """World position of a MuJoCo site; Jacobian from ``mj_jacSite`` (hinge/slide joints only)."""

    def __init__(self, model: mujoco.MjModel, site: str, axes: Sequence[int] = (0, 1, 2)):
        if model.nq != model.nv:
            raise ValueError("SitePoint needs nq == nv (hinge and slide joints only)")
        self.model = model
        self.data = mujoco.MjData(model)
        self.site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
        if self.site < 0:
            raise ValueError(f"model has no site {site!r}")
        self.axes = np.asarray(axes, dtype=int)
        self.dim = len(self.axes)
        self.nq = model.nq

    def positions(self, qpos: np.ndarray) -> np.ndarray:
        m, d = self.model, self.data
        xpos = np.empty((qpos.shape[0], 3))
        site_xpos = d.site_xpos[self.site]           # a live view: no indexing inside the loop
        for i in range(qpos.shape[0]):
            d.qpos[:] = qpos[i]
            mujoco.mj_kinematics(m, d)
            xpos[i] = site_xpos
        return xpos[:, self.axes]

    def jacobians(self, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # The loop runs once per sample and step (thousands of times per iteration): MuJoCo writes straight
        # into the output rows and the axes are selected once at the end.
        m, d = self.model, self.data
        N = qpos.shape[0]
        xpos = np.empty((N, 3))
        jacp = np.empty((N, 3, m.nv))
        site_xpos = d.site_xpos[self.site]
        for i in range(N):
            d.qpos[:] = qpos[i]
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            mujoco.mj_jacSite(m, d, jacp[i], None, self.site)
            xpos[i] = site_xpos
        return xpos[:, self.axes], jacp[:, self.axes]


class ActionPenalty:
    """½ w ‖u‖²."""

    def __init__(self, weight: float):
        self.weight = float(weight)

    def value(self, X, U):
        return 0.5 * self.weight * np.einsum("ntu,ntu->nt", U, U)

    def accumulate(self, X, U, out):
        out.l += self.value(X, U)
        out.lu += self.weight * U
        idx = np.arange(U.shape[-1])
        out.luu[..., idx, idx] += self.weight


class StateTarget:
    """½ w (x_i − target)² on one state coordinate ``index``."""

    def __init__(self, index: int, target: float, weight: float = 1.0):
        self.index, self.target, self.weight = int(index), float(target), float(weight)

    def value(self, X, U):
        e = X[..., self.index] - self.target
        return 0.5 * self.weight * e * e

    def accumulate(self, X, U, out):
        e = X[..., self.index] - self.target
        out.l += 0.5 * self.weight * e * e
        out.lx[..., self.index] += self.weight * e
        out.lxx[..., self.index, self.index] += self.weight


class PointTarget:
    """w ℓ12(p(qpos) − target) with a Gauss–Newton Hessian (see the module docstring)."""

    def __init__(self, points: PointMap, target: np.ndarray, weight: float = 1.0, alpha: float = DEFAULT_ALPHA):
        self.points = points
        self.target = np.asarray(target, dtype=np.float64).reshape(points.dim)
        self.weight, self.alpha = float(weight), float(alpha)

    def _qpos(self, X):
        return np.ascontiguousarray(X.reshape(-1, X.shape[-1])[:, : self.points.nq])

    def value(self, X, U):
        p = self.points.positions(self._qpos(X))
        val, _, _ = l12(p - self.target, self.alpha)
        return self.weight * val.reshape(X.shape[:-1])

    def accumulate(self, X, U, out):
        n, T, dX = X.shape
        p, J = self.points.jacobians(self._qpos(X))
        val, g, H = l12(p - self.target, self.alpha)
        nq = J.shape[-1]
        w = self.weight
        out.l += w * val.reshape(n, T)
        JT = np.swapaxes(J, 1, 2)
        out.lx[..., :nq] += w * (JT @ g[..., None])[..., 0].reshape(n, T, nq)
        out.lxx[..., :nq, :nq] += w * (JT @ (H @ J)).reshape(n, T, nq, nq)


class Cost:
    """Sum of cost terms. ``cost(X, U)`` → (n, T); ``cost.derivatives(X, U)`` → :class:`CostDerivatives`.

    X may be (n, T, dX) or a single trajectory (T, dX) (then the outputs lose the leading axis).
    """

    def __init__(self, terms: Sequence[CostTerm], dX: int, dU: int):
        self.terms = tuple(terms)
        self.dX, self.dU = int(dX), int(dU)

    def _check(self, X, U):
        X = v.as_float_array(X, "X")
        U = v.as_float_array(U, "U")
        single = X.ndim == 2
        if single:
            X, U = X[None], U[None]
        v.check_shape(X, (None, None, self.dX), "X")
        v.check_shape(U, (X.shape[0], X.shape[1], self.dU), "U")
        v.check_finite(np.moveaxis(X, 1, 0), "X")
        v.check_finite(np.moveaxis(U, 1, 0), "U")
        return X, U, single

    def __call__(self, X: np.ndarray, U: np.ndarray) -> np.ndarray:
        X, U, single = self._check(X, U)
        total = np.zeros(X.shape[:2])
        for term in self.terms:
            total += term.value(X, U)
        return total[0] if single else total

    def derivatives(self, X: np.ndarray, U: np.ndarray) -> CostDerivatives:
        X, U, single = self._check(X, U)
        out = CostDerivatives.zeros(X.shape[0], X.shape[1], self.dX, self.dU)
        for term in self.terms:
            term.accumulate(X, U, out)
        if single:
            out = CostDerivatives(*(a[0] for a in (out.l, out.lx, out.lu, out.lxx, out.luu, out.lux)))
        return out
