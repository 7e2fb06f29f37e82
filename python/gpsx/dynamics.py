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

from . import _validate as v
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
    caller's scratch copy and is overwritten. Returns the gains (T, n_out, n_in), biases (T, n_out) and
    PSD covariances (T, n_out, n_out).
    """
    if not (np.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    N, n_in = joint.shape[1], len(names)
    mean = joint.mean(axis=1)                                        # (T, n)
    terms = None if prior is None else prior._moment_terms(joint)
    joint -= mean[:, None, :]                                        # centred in place (fresh arrays are slow)
    if prior is None:
        sigma = np.swapaxes(joint, 1, 2) @ joint
        sigma /= N
    else:
        sigma = _map_covariance(joint, mean, *terms, prior.strength)
    _check_finite(sigma, "the joint covariance")
    if prior is None:
        _check_identifiable(sigma[:, :n_in, :n_in], mean[:, :n_in], N, names, label)
    sigma[:, np.arange(n_in), np.arange(n_in)] += ridge
    try:
        gain = np.swapaxes(np.linalg.solve(sigma[:, :n_in, :n_in], sigma[:, :n_in, n_in:]), 1, 2)  # (T, out, in)
    except np.linalg.LinAlgError:
        raise DynamicsFitError("the input covariance is singular; use a ridge > 0") from None
    bias = mean[:, n_in:] - np.einsum("toi,ti->to", gain, mean[:, :n_in])
    cov = _clip_psd(sigma[:, n_in:, n_in:] - gain @ sigma[:, :n_in, n_in:])
    for value, what in ((gain, "the gains"), (bias, "the biases"), (cov, "the covariances")):
        _check_finite(value, what)
    return gain, bias, cov


def _map_covariance(rows, mean, mu0, within, spread, strength: float) -> np.ndarray:
    """Normal-inverse-Wishart MAP covariance with n0 = m = strength and Phi = strength * sigma0,
    sigma0 = within + spread^T spread (the prior's moments, see ``_MixturePrior._moment_terms``):
        [Phi + N E + (N m / (N + m)) d d^T] / (N + n0),  d = mean - mu0.
    Every Gram term (the N centred samples, the prior's between-cluster rows, d) is one row of a single
    batched product. ``within`` is overwritten."""
    N = rows.shape[1]
    delta = np.sqrt(N * strength / (N + strength)) * (mean - mu0)
    rows = np.concatenate([rows, np.sqrt(strength) * spread, delta[:, None, :]], axis=1) / np.sqrt(N + strength)
    within *= strength / (N + strength)
    within += np.swapaxes(rows, 1, 2) @ rows
    return within


def _check_identifiable(cov_in: np.ndarray, mean_in: np.ndarray, N: int, names: list[str], label: str) -> None:
    """Raise ``DynamicsFitError`` unless the inputs' sample covariance is non-singular at every step.

    An input is flat at t if its standard deviation is below 1e-10 of its largest spread or magnitude
    over all steps; inputs are collinear if the fraction of one's variance not explained by the inputs
    before it is below 1e-10.
    """
    n_in = cov_in.shape[1]
    hint = "pass a prior (DynamicsPrior/PolicyPrior updated on these and earlier samples) for a regularised fit"
    if N <= n_in:
        raise DynamicsFitError(f"maximum-likelihood fit needs more samples than inputs ({n_in}), got N={N}; {hint}")
    std = np.sqrt(np.diagonal(cov_in, axis1=1, axis2=2))             # (T, n_in)
    scale = np.maximum(std.max(axis=0), np.abs(mean_in).max(axis=0))
    flat = std <= 1e-10 * scale + 1e-300
    if flat.any():
        t, i = np.argwhere(flat)[0]
        raise DynamicsFitError(f"input {names[i]} does not vary across the {N} samples; {hint}", array=label, t=int(t))
    collinear = _collinear_steps(cov_in)
    if collinear.any():
        raise DynamicsFitError(f"inputs are (numerically) collinear across the {N} samples; {hint}",
                               array=label, t=int(np.argmax(collinear)))


def _collinear_steps(cov: np.ndarray) -> np.ndarray:
    """(T,) bool: steps where some input's variance not explained by the inputs before it (its squared
    Cholesky pivot over its variance, which is scale-free) is below the tolerance."""
    try:
        pivots = np.diagonal(np.linalg.cholesky(cov), axis1=1, axis2=2) ** 2
    except np.linalg.LinAlgError:   # some step is not even numerically positive definite
        std = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
        return np.linalg.eigvalsh(cov / (std[:, :, None] * std[:, None, :]))[:, 0] < _COLLINEAR_TOL
    return (pivots / np.diagonal(cov, axis1=1, axis2=2)).min(axis=1) < _COLLINEAR_TOL


def _clip_psd(cov: np.ndarray) -> np.ndarray:
    """Symmetrise a stack of covariances; unless all are positive definite (the usual case, checked by a
    cheap Cholesky), clip round-off negative eigenvalues to zero."""
    cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
    try:
        np.linalg.cholesky(cov)
        return cov
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(cov)
    return (V * np.maximum(w, 0.0)[:, None, :]) @ np.swapaxes(V, 1, 2)


def _check_finite(value: np.ndarray, what: str) -> None:
    """Raise ``DynamicsFitError`` at the first step where ``value`` (T, ...) holds NaN or inf."""
    bad = ~np.isfinite(value.reshape(len(value), -1)).all(axis=1)
    if bad.any():
        raise DynamicsFitError(f"{what} overflowed to NaN or inf (data too large or badly scaled?)",
                               t=int(np.argmax(bad)))
