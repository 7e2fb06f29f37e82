"""Local time-varying linear-Gaussian models fitted from a few samples (Levine & Abbeel 2014, section 3.1).

Both fits share one core, ``_fit_conditional``: for every time step t it estimates the joint Gaussian of
(in_t, out_t) from the N samples and conditions it on ``in`` to get out_t | in_t ~ N(G_t in_t + g_t, S_t).
The dynamics use in = (x_t, u_t), out = x_{t+1}; the policy linearisation uses in = x_t, out = mean of
pi(x_t). All time steps are computed at once (batched products, solves and eigendecompositions).

Joint estimate at step t, with empirical mean mu and empirical (1/N) covariance E:
- without a prior, maximum likelihood: Sigma = E. It needs N > dim(in) and, at every t, inputs whose sample
  covariance is non-singular; otherwise ``DynamicsFitError`` says which step and input, and that a prior
  is needed.
- with a prior (per-step mixture moments mu0, Sigma0 from ``DynamicsPrior``/``PolicyPrior``), the
  normal-inverse-Wishart MAP covariance with pseudo-counts n0 = m = strength and Phi = strength * Sigma0:
      Sigma = [Phi + N E + (N m / (N + m)) (mu - mu0)(mu - mu0)^T] / (N + n0),
  and mean = mu. Any N >= 1 works, including constant actions or collinear states: directions the samples
  do not span are filled in by the prior.
Regularisation (documented, always applied): ``ridge`` (default 1e-6, data units) is added to the diagonal
of the input block before conditioning, and round-off negative eigenvalues of the conditional covariance
are clipped to 0, so S_t is symmetric PSD. Results are checked finite before they are returned.
"""
from __future__ import annotations

import numpy as np

from . import _backend, _validate as v
from .containers import LinearGaussianController, LinearGaussianDynamics
from .errors import DynamicsFitError, ShapeError
from .gmm_prior import DynamicsPrior, PolicyPrior, _MixturePrior, dynamics_tuples, policy_pairs

__all__ = ["DynamicsPrior", "PolicyPrior", "fit_dynamics", "fit_policy_linearization"]

DEFAULT_RIDGE = 1e-6
X0_VARIANCE_FLOOR = 1e-6
# An input whose (standardised) variance not explained by the other inputs is below this is collinear.
_COLLINEAR_TOL = 1e-10


def fit_dynamics(X, U, prior: DynamicsPrior | None = None, *, ridge: float = DEFAULT_RIDGE) -> LinearGaussianDynamics:
    """Fit x_{t+1} ~ N(F_t [x_t; u_t] + f_t, cov_t) to samples X (N,T,dX), U (N,T,dU).

    With ``prior`` (a ``DynamicsPrior``, usually updated on these samples too) the per-step fit is the
    normal-inverse-Wishart MAP estimate and any N >= 1 works; with ``prior=None`` it is maximum likelihood
    and needs N > dX + dU samples whose (x_t, u_t) are not degenerate (else ``DynamicsFitError``).
    ``ridge`` is added to the (x, u) diagonal of the joint covariance (data units). x0_mean and x0_cov are
    the mean and (1/N) covariance of X[:, 0], the covariance's diagonal floored at 1e-6.
    """
    joint = dynamics_tuples(X, U)
    dX = np.shape(X)[2]
    names = [f"x[{i}]" for i in range(dX)] + [f"u[{i}]" for i in range(joint.shape[2] - 2 * dX)]
    x0 = joint[0, :, :dX].copy()
    F, f, cov = _fit_conditional(joint, names, "X/U", _checked(prior, DynamicsPrior), ridge)
    x0_cov = np.cov(x0, rowvar=False, bias=True).reshape(dX, dX)
    x0_cov[np.diag_indices(dX)] = np.maximum(np.diag(x0_cov), X0_VARIANCE_FLOOR)
    return LinearGaussianDynamics(F, f, cov, x0.mean(axis=0), x0_cov)


def fit_policy_linearization(X, policy_mean, policy_cov, prior: PolicyPrior | None = None, *,
                             ridge: float = DEFAULT_RIDGE) -> LinearGaussianController:
    """Linearise a policy around samples: u_t | x_t ~ N(K_t x_t + k_t, cov_t).

    X (N,T,dX) are visited states, policy_mean (N,T,dU) the policy's mean actions there. The fit of the
    mean is the same as the dynamics fit (``prior`` a ``PolicyPrior``; ``prior=None`` needs N > dX); the
    returned cov_t is the fit's conditional covariance plus the policy's own covariance ``policy_cov``:
    (dU,dU) for every step, (T,dU,dU) per step, or (N,T,dU,dU) per sample and step (averaged over the
    samples); it must be symmetric positive definite.
    """
    joint = policy_pairs(X, policy_mean)
    T, N, n = joint.shape
    dX = np.shape(X)[2]
    pol_cov = _policy_covariance(policy_cov, N, T, n - dX)
    names = [f"x[{i}]" for i in range(dX)]
    K, k, cov = _fit_conditional(joint, names, "X", _checked(prior, PolicyPrior), ridge)
    return LinearGaussianController(K, k, cov + pol_cov)


def _checked(prior, kind: type) -> _MixturePrior | None:
    """``prior`` if it is None or a ``kind``; a dynamics prior cannot serve a policy fit or vice versa."""
    if prior is not None and not isinstance(prior, kind):
        raise TypeError(f"prior must be a {kind.__name__} or None, got {type(prior).__name__}")
    return prior


def _policy_covariance(value, N: int, T: int, dU: int) -> np.ndarray:
    """The policy covariance as a (T, dU, dU) symmetric PD stack, from any of the accepted shapes."""
    arr = v.as_float_array(value, "policy_cov")
    shapes = {2: (dU, dU), 3: (T, dU, dU), 4: (N, T, dU, dU)}
    if arr.ndim not in shapes:
        raise ShapeError(f"expected shape ({dU}, {dU}), ({T}, {dU}, {dU}) or ({N}, {T}, {dU}, {dU}), got {arr.shape}",
                         array="policy_cov")
    v.check_shape(arr, shapes[arr.ndim], "policy_cov")
    if arr.ndim == 4:
        arr = arr.mean(axis=0)
    return v.covariance(np.broadcast_to(arr, (T, dU, dU)), "policy_cov", (T, dU, dU))


@np.errstate(over="ignore", invalid="ignore")    # overflow is detected and reported below
def _fit_conditional(joint: np.ndarray, names: list[str], label: str, prior: _MixturePrior | None,
                     ridge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-step conditional Gaussian out|in from time-major joint samples (T, N, n_in + n_out) (module doc).

    ``names`` name the n_in inputs and ``label`` the input arrays, for error messages. ``joint`` is the
    caller's scratch copy and is overwritten. The per-step work is one kernel call
    (``conditional_fit``: compiled, or its numpy twin). Returns the gains (T, n_out, n_in), biases
    (T, n_out) and PSD covariances (T, n_out, n_out).
    """
    if not (np.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    T, N, n = joint.shape
    n_in = len(names)
    mean = joint.mean(axis=1)                                        # (T, n)
    terms = None if prior is None else prior._moment_terms(joint)
    joint -= mean[:, None, :]                                        # centred in place (fresh arrays are slow)
    if prior is None:
        _check_varied(joint[:, :, :n_in], mean[:, :n_in], names, label)
        rows, alpha, beta, sigma = joint, 1.0 / N, 0.0, np.empty((T, n, n))
    else:
        rows, alpha, beta, sigma = _map_terms(joint, mean, *terms, prior.strength)
    gain, bias, cov = np.empty((T, n - n_in, n_in)), np.empty((T, n - n_in)), np.empty((T, n - n_in, n - n_in))
    pivots, cov_ok = np.ones(T), np.zeros(T, dtype=np.int8)
    kern = _backend.kernels()
    status, t = kern.conditional_fit(kern.FitWorkspace(n_in, n - n_in), np.ascontiguousarray(rows), alpha, beta,
                                     sigma, mean, ridge, prior is None, gain, bias, cov, pivots, cov_ok)
    if status == kern.NON_FINITE:
        raise DynamicsFitError("the fit overflowed to NaN or inf (data too large or badly scaled?)", t=t)
    low = np.flatnonzero(pivots < _COLLINEAR_TOL)       # steps the kernel passed, but barely
    if prior is None and (low.size or status == kern.NOT_PD):
        raise DynamicsFitError(f"inputs are (numerically) collinear across the {N} samples; " + _PRIOR_HINT,
                               array=label, t=int(low[0]) if low.size else t)
    if status == kern.NOT_PD:
        raise DynamicsFitError("the input covariance is singular; use a ridge > 0", array=label, t=t)
    return gain, bias, _clip_psd(cov, cov_ok.astype(bool))


_PRIOR_HINT = "pass a prior (DynamicsPrior/PolicyPrior updated on these and earlier samples) for a regularised fit"


def _map_terms(rows, mean, mu0, within, spread, strength: float):
    """The normal-inverse-Wishart MAP covariance with n0 = m = strength and Phi = strength * sigma0,
    sigma0 = within + spread^T spread (the prior's moments, see ``_MixturePrior._moment_terms``):
        [Phi + N E + (N m / (N + m)) d d^T] / (N + n0),  d = mean - mu0,
    as the kernel's (rows, alpha, beta, base): base = within, beta = strength / (N + n0), and every Gram
    term (the N centred samples, the prior's between-cluster rows, d) one of the rows, alpha = 1 / (N + n0)."""
    N = rows.shape[1]
    delta = np.sqrt(N * strength / (N + strength)) * (mean - mu0)
    rows = np.concatenate([rows, np.sqrt(strength) * spread, delta[:, None, :]], axis=1)
    return rows, 1.0 / (N + strength), strength / (N + strength), np.ascontiguousarray(within)


def _check_varied(centred_in: np.ndarray, mean_in: np.ndarray, names: list[str], label: str) -> None:
    """The maximum-likelihood fit's preconditions: more samples than inputs, and every input varying.

    An input is flat at t if its standard deviation is below 1e-10 of its largest spread or magnitude over
    all steps (collinear inputs are caught by the kernel's pivots)."""
    T, N, n_in = centred_in.shape
    if N <= n_in:
        raise DynamicsFitError(f"maximum-likelihood fit needs more samples than inputs ({n_in}), got N={N}; "
                               + _PRIOR_HINT)
    std = np.sqrt(np.einsum("tni,tni->ti", centred_in, centred_in) / N)           # (T, n_in)
    scale = np.maximum(std.max(axis=0), np.abs(mean_in).max(axis=0))
    flat = (std <= 1e-10 * scale + 1e-300) & np.isfinite(scale)      # overflow is the kernel's to report
    if flat.any():
        t, i = np.argwhere(flat)[0]
        raise DynamicsFitError(f"input {names[i]} does not vary across the {N} samples; " + _PRIOR_HINT,
                               array=label, t=int(t))


def _clip_psd(cov: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Clip round-off negative eigenvalues to zero at the steps whose covariance is not positive
    definite (``ok`` False), leaving the others untouched."""
    bad = ~ok
    if bad.any():
        w, V = np.linalg.eigh(cov[bad])
        clipped = (V * np.maximum(w, 0.0)[:, None, :]) @ np.swapaxes(V, 1, 2)
        cov[bad] = 0.5 * (clipped + np.swapaxes(clipped, 1, 2))
    return cov
