"""Trajectory optimisation on linear-Gaussian models: the public numerics API.

The work is done by the kernels of ``gps_core`` (or their numpy twins, see ``gpsx._backend``); this module
validates, allocates, runs the η search with non-PD recovery, and turns status codes into errors.
The math is in math/gps_dp.md; the η search and its constants in DESIGN §4.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from . import _backend
from . import _validate as v
from .containers import LinearGaussianController, LinearGaussianDynamics, Marginals, QuadraticCost, _unchecked
from .errors import ConvergenceWarning, NonFiniteError, NotPositiveDefiniteError, ShapeError

__all__ = [
    "TrajOptResult",
    "forward",
    "expected_cost",
    "trajectory_kl",
    "policy_kl",
    "gps_objective",
    "backward",
    "optimize_trajectory",
    "ETA_MIN",
    "ETA_MAX",
]

ETA_MIN, ETA_MAX = 1e-8, 1e16
MAX_PASSES = 50
KL_TOLERANCE = 0.1          # relative: stop when |KL − ε| ≤ 0.1 ε
NON_PD_DELTA0 = 1e-4        # η ← η + δ on a non-PD Q_uu, δ doubling
_OK, _NOT_PD, _NOT_CONVERGED, _NON_FINITE = 0, 1, 2, 3


@dataclass(frozen=True)
class TrajOptResult:
    """Outcome of ``optimize_trajectory``.

    controller: the new controller; eta: the dual variable found; kl: Σ_t trajectory_kl (new ‖ prev);
    passes: backward passes tried (non-PD retries included); sweeps: forward/backward sweeps in total
    (equal to the successful passes when λ = 0); marginals: forward marginals of the new controller.
    """

    controller: LinearGaussianController
    eta: float
    kl: float
    passes: int
    sweeps: int
    marginals: Marginals


def _check_match(dyn: LinearGaussianDynamics, *named) -> None:
    """Raise ShapeError unless every (name, controller-or-cost) agrees with the dynamics' T, dX, dU."""
    for name, obj in named:
        if isinstance(obj, QuadraticCost):
            got, want = (obj.T, obj.n), (dyn.T, dyn.dX + dyn.dU)
            what = "(T, n)"
        else:
            got, want = (obj.T, obj.dX, obj.dU), (dyn.T, dyn.dX, dyn.dU)
            what = "(T, dX, dU)"
        if got != want:
            raise ShapeError(f"{what} = {got} does not match the dynamics' {want}", array=name)


def _lam_array(lam, T: int) -> np.ndarray | None:
    """λ as a (T,) array of finite non-negatives, or None when it is absent or all zero."""
    if lam is None:
        return None
    arr = v.as_float_array(np.broadcast_to(np.asarray(lam), (T,)) if np.ndim(lam) == 0 else lam, "lam")
    v.check_shape(arr, (T,), "lam")
    v.check_finite(arr, "lam", time_axis=False)
    if (arr < 0).any():
        raise ShapeError(f"must be non-negative (min {arr.min():.3g})", array="lam", t=int(np.argmin(arr)))
    return arr if (arr > 0).any() else None


def _check_eta(eta: float) -> float:
    eta = float(eta)
    if not (math.isfinite(eta) and eta > 0):
        raise ShapeError(f"must be a positive finite number, got {eta}", array="eta")
    return eta


def _relative_to_prev(dyn, cost, prev, kern, ws):
    """The problem in coordinates relative to the previous controller: u = K̂ x + k̂ + δ.

    z = M z̃ + m with z̃ = [x; δ], M = [[I, 0], [K̂, I]], m = [0; k̂]. The dynamics become F̃ = F M,
    f̃ = f + F_u k̂, the cost C̃ = Mᵀ C M, c̃ = Mᵀ (C m + c) (the kernel ``relative_coordinates``), and
    −log p̂(u|x) becomes ½ δᵀ Ĉ⁻¹ δ: no cross terms in x. In the original coordinates those terms (of size
    |K̂|² |Ĉ⁻¹|) cancel in the value function only up to round-off, which unstable open-loop dynamics
    amplify backwards in time until Q_uu looks indefinite at any η (seen on the walker with |K̂| ~ 150).
    Returns F̃, f̃, C̃, c̃ and the KL term's quadratic form P (zero but for P_δδ = Ĉ⁻¹); ``kern``/``ws``: the
    kernel module in force and a workspace of the problem's size.
    """
    T, dX, dU = dyn.T, dyn.dX, dyn.dU
    n = dX + dU
    F_new, f_new = np.empty_like(dyn.F), np.empty_like(dyn.f)
    C_new, c_new = np.empty_like(cost.C), np.empty_like(cost.c)
    kern.relative_coordinates(ws, dyn.F, dyn.f, cost.C, cost.c, prev.K, prev.k,
                              F_new, f_new, C_new, c_new)
    P = np.zeros((T, n, n))
    P[:, dX:, dX:] = prev.precision
    return F_new, f_new, C_new, c_new, P


class _Problem:
    """One validated problem, in coordinates relative to the previous controller, ready for many η."""

    def __init__(self, dyn, cost, prev, policy=None, lam=None, tol=1e-10, max_sweeps=100):
        _check_match(dyn, ("cost", cost), ("prev", prev))
        self.lam = _lam_array(lam, dyn.T)
        if self.lam is not None:
            if policy is None:
                raise ShapeError("lam > 0 needs a policy linearisation", array="policy")
            _check_match(dyn, ("policy", policy))
            self.Kpi = np.ascontiguousarray(policy.K - prev.K)
            self.kpi = np.ascontiguousarray(policy.k - prev.k)
        self.dyn, self.cost, self.prev, self.policy = dyn, cost, prev, policy
        self.tol, self.max_sweeps = float(tol), int(max_sweeps)
        self.kern = _backend.kernels()
        T, dX, dU = dyn.T, dyn.dX, dyn.dU
        self.ws = self.kern.Workspace(T, dX, dU)
        self.F, self.f, self.C, self.c, self.P = _relative_to_prev(dyn, cost, prev, self.kern, self.ws)
        self.p = np.zeros((T, dX + dU))

    def solve(self, eta: float, start: tuple | None = None):
        """Controller arrays (K, k, C) minimising J at η and the sweeps used; raises on failure."""
        d, T, dX, dU = self.dyn, self.dyn.T, self.dyn.dX, self.dyn.dU
        if self.lam is None:
            K, k, C = np.empty((T, dU, dX)), np.empty((T, dU)), np.empty((T, dU, dU))
            status, t_fail = self.kern.backward(self.ws, self.F, self.f, self.C, self.c, self.P, self.p, eta,
                                                K, k, C)
            sweeps = 1
        else:
            K0, k0, C0 = start or (self.prev.K, self.prev.k, self.prev.cov)
            K = np.ascontiguousarray(K0 - self.prev.K)
            k = np.ascontiguousarray(k0 - self.prev.k)
            C = np.array(C0, dtype=np.float64, order="C")
            status, t_fail, sweeps = self.kern.backward_gps(
                self.ws, self.F, self.f, d.cov, d.x0_mean, d.x0_cov, self.C, self.c, self.P, self.p, eta,
                self.Kpi, self.kpi, self.policy.cov, self.lam, self.tol, self.max_sweeps, K, k, C)
        if status == _NOT_PD:
            raise NotPositiveDefiniteError(f"Q_uu is not positive definite at eta={eta:.6g}", array="Q_uu", t=t_fail)
        if status == _NON_FINITE:
            raise NonFiniteError(f"the backward pass overflowed at eta={eta:.6g}", array="V", t=t_fail)
        K += self.prev.K
        k += self.prev.k
        for name, arr in (("K", K), ("k", k), ("cov", C)):
            v.check_finite(arr, f"backward {name}")
        if status == _NOT_CONVERGED:
            warnings.warn(f"forward/backward sweeps did not reach tol={self.tol:g} in {sweeps} sweeps "
                          f"(eta={eta:.6g})", ConvergenceWarning, stacklevel=3)
        return (K, k, C), sweeps

    def marginals(self, K, k, C):
        T, n = self.dyn.T, self.dyn.dX + self.dyn.dU
        mean, cov = np.empty((T, n)), np.empty((T, n, n))
        d = self.dyn
        self.kern.forward(self.ws, d.F, d.f, d.cov, d.x0_mean, d.x0_cov, K, k, C, mean, cov)
        v.check_finite(mean, "forward mean")
        v.check_finite(cov, "forward cov")
        return mean, cov

    def kl(self, mean, cov, K, k, C) -> np.ndarray:
        out = np.empty(self.dyn.T)
        status, t_fail = self.kern.conditional_kl(self.ws, mean, cov, K, k, C, self.prev.K, self.prev.k,
                                                  self.prev.cov, out)
        if status != _OK:
            raise NotPositiveDefiniteError("controller covariance is not positive definite", array="cov", t=t_fail)
        v.check_finite(out, "trajectory KL", time_axis=False)
        return out

    def diagnose_not_pd(self, t: int) -> str:
        """Why Q_uu may stay indefinite at step t: cost curvature and dynamics size there."""
        dX = self.dyn.dX
        cuu = np.linalg.eigvalsh(self.cost.C[t, dX:, dX:])[0]
        lines = [f"smallest eigenvalue of the cost's C_uu at t={t}: {cuu:.3g}"]
        if t < self.dyn.T - 1:
            lines.append(f"max |F_t| at t={t}: {np.abs(self.dyn.F[t]).max():.3g}")
        lines.append("likely causes: a cost with negative curvature in u, or an ill-conditioned dynamics fit "
                     "(too few samples, or no prior)")
        return "; ".join(lines)


def _kernels_and_ws(T: int, dX: int, dU: int):
    kern = _backend.kernels()
    return kern, kern.Workspace(T, dX, dU)


def forward(dyn: LinearGaussianDynamics, ctrl: LinearGaussianController) -> Marginals:
    """Gaussian marginals of z_t = [x_t; u_t] when ``ctrl`` runs on ``dyn``."""
    _check_match(dyn, ("ctrl", ctrl))
    T, n = dyn.T, dyn.dX + dyn.dU
    kern, ws = _kernels_and_ws(T, dyn.dX, dyn.dU)
    mean, cov = np.empty((T, n)), np.empty((T, n, n))
    kern.forward(ws, dyn.F, dyn.f, dyn.cov, dyn.x0_mean, dyn.x0_cov, ctrl.K, ctrl.k, ctrl.cov, mean, cov)
    v.check_finite(mean, "forward mean")
    v.check_finite(cov, "forward cov")
    return _unchecked(Marginals, mean=mean, cov=cov)


def expected_cost(marginals: Marginals, cost: QuadraticCost) -> np.ndarray:
    """E[l_t(z_t)] under the marginals, per time step (T,)."""
    if (cost.T, cost.n) != marginals.mean.shape:
        raise ShapeError(f"(T, n) = {(cost.T, cost.n)} does not match the marginals' {marginals.mean.shape}",
                         array="cost")
    out = np.empty(cost.T)
    _backend.kernels().expected_cost(marginals.mean, marginals.cov, cost.C, cost.c, cost.c0, out)
    return out


def _conditional_kl(dyn, marginals, a, b, name) -> np.ndarray:
    kern, ws = _kernels_and_ws(dyn.T, dyn.dX, dyn.dU)
    out = np.empty(dyn.T)
    status, t_fail = kern.conditional_kl(ws, marginals.mean, marginals.cov, a.K, a.k, a.cov, b.K, b.k, b.cov, out)
    if status != _OK:
        raise NotPositiveDefiniteError("covariance is not positive definite", array=name, t=t_fail)
    return out


def trajectory_kl(dyn: LinearGaussianDynamics, new: LinearGaussianController,
                  prev: LinearGaussianController) -> np.ndarray:
    """E_{p_new(x_t)} KL(p_new(u_t|x_t) ‖ p_prev(u_t|x_t)) per step; the sum is KL(p_new(τ) ‖ p_prev(τ))."""
    _check_match(dyn, ("new", new), ("prev", prev))
    return _conditional_kl(dyn, forward(dyn, new), new, prev, "cov")


def policy_kl(dyn: LinearGaussianDynamics, ctrl: LinearGaussianController,
              policy: LinearGaussianController) -> np.ndarray:
    """E_{p(x_t)} KL(π(u_t|x_t) ‖ p(u_t|x_t)) per step (the seed's direction), π the policy linearisation."""
    _check_match(dyn, ("ctrl", ctrl), ("policy", policy))
    return _conditional_kl(dyn, forward(dyn, ctrl), policy, ctrl, "cov")


def gps_objective(dyn: LinearGaussianDynamics, cost: QuadraticCost, ctrl: LinearGaussianController,
                  prev: LinearGaussianController, eta: float, policy: LinearGaussianController | None = None,
                  lam=None) -> float:
    """J = Σ_t E[l_t]/η + Σ_t trajectory_kl_t + Σ_t (λ_t/η) policy_kl_t, the quantity ``backward`` minimises."""
    eta = _check_eta(eta)
    _check_match(dyn, ("cost", cost), ("ctrl", ctrl), ("prev", prev))
    marg = forward(dyn, ctrl)
    J = expected_cost(marg, cost).sum() / eta + _conditional_kl(dyn, marg, ctrl, prev, "cov").sum()
    lam = _lam_array(lam, dyn.T)
    if lam is not None:
        if policy is None:
            raise ShapeError("lam > 0 needs a policy linearisation", array="policy")
        _check_match(dyn, ("policy", policy))
        J += (lam / eta) @ _conditional_kl(dyn, marg, policy, ctrl, "cov")
    return float(J)


def backward(dyn: LinearGaussianDynamics, cost: QuadraticCost, prev: LinearGaussianController, eta: float,
             policy: LinearGaussianController | None = None, lam=None, *, tol: float = 1e-10,
             max_sweeps: int = 100) -> LinearGaussianController:
    """The controller minimising ``gps_objective`` at this η.

    λ absent or zero: one max-entropy LQR pass (exact). λ_t > 0: forward/backward sweeps from ``prev`` to
    the fixed point of math/gps_dp.md §3.2 (a ``ConvergenceWarning`` if ``max_sweeps`` is not enough).
    Raises ``NotPositiveDefiniteError`` (with ``.t``) if Q_uu is not positive definite at this η.
    """
    problem = _Problem(dyn, cost, prev, policy, lam, tol, max_sweeps)
    (K, k, C), _ = problem.solve(_check_eta(eta))
    return _unchecked(LinearGaussianController, K=K, k=k, cov=C)


def optimize_trajectory(dyn: LinearGaussianDynamics, cost: QuadraticCost, prev: LinearGaussianController,
                        kl_bound: float, *, eta0: float = 1.0, policy: LinearGaussianController | None = None,
                        lam=None, tol: float = 1e-10, max_sweeps: int = 100) -> TrajOptResult:
    """Minimise the expected cost (plus λ-weighted policy KL) subject to KL(p ‖ prev) ≤ ``kl_bound``.

    Searches the dual variable η (DESIGN §4): geometric bisection in log η on [1e-8, 1e16] (×10 / ÷10 while
    one side is open), stopping at |KL − ε| ≤ 0.1 ε, or with KL < ε at η = 1e-8 (the bound is inactive), or
    with a ``ConvergenceWarning`` if KL > ε even at η = 1e16 or after 50 passes.
    A non-PD Q_uu raises η by δ (δ doubling from 1e-4); past 1e16 ``NotPositiveDefiniteError`` is raised
    with a diagnosis.
    """
    eps = float(kl_bound)
    if not (math.isfinite(eps) and eps > 0):
        raise ShapeError(f"must be a positive finite number, got {kl_bound}", array="kl_bound")
    problem = _Problem(dyn, cost, prev, policy, lam, tol, max_sweeps)
    eta = min(max(_check_eta(eta0), ETA_MIN), ETA_MAX)
    lo = hi = None          # η known to give too large / too small a step (None: side still open)
    delta = NON_PD_DELTA0
    passes = sweeps = 0
    start = None
    while True:
        passes += 1
        try:
            arrays, used = problem.solve(eta, start)
        except NotPositiveDefiniteError as exc:
            lo = eta if lo is None else max(lo, eta)
            eta, delta = eta + delta, 2.0 * delta
            if eta > ETA_MAX:
                raise NotPositiveDefiniteError(
                    f"Q_uu stays indefinite up to eta={ETA_MAX:g}; {problem.diagnose_not_pd(exc.t)}",
                    array="Q_uu", t=exc.t) from exc
            continue
        sweeps += used
        start = arrays
        mean, cov = problem.marginals(*arrays)
        kl = float(problem.kl(mean, cov, *arrays).sum())
        if abs(kl - eps) <= KL_TOLERANCE * eps or (kl < eps and eta <= ETA_MIN):
            break
        if kl > eps and eta >= ETA_MAX:
            # η is as large as it goes and the controller is the previous one up to round-off; more passes
            # would repeat this one (seen when unstable fitted dynamics blow up the marginals)
            warnings.warn(f"the KL bound {eps:.4g} cannot be met: KL is {kl:.4g} even at eta={ETA_MAX:g}",
                          ConvergenceWarning, stacklevel=2)
            break
        if passes >= MAX_PASSES:
            warnings.warn(f"eta search stopped after {passes} passes with KL {kl:.4g} (bound {eps:.4g})",
                          ConvergenceWarning, stacklevel=2)
            break
        if kl < eps:       # step too small: lower η
            hi = eta
            eta = max(0.1 * hi, ETA_MIN) if lo is None else math.sqrt(lo * hi)
        else:              # step too large: raise η
            lo = eta
            eta = min(10.0 * lo, ETA_MAX) if hi is None else math.sqrt(lo * hi)
    K, k, C = arrays
    controller = _unchecked(LinearGaussianController, K=K, k=k, cov=C)
    return TrajOptResult(controller, eta, kl, passes, sweeps, _unchecked(Marginals, mean=mean, cov=cov))
