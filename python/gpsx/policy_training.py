"""Training the Gaussian MLP policy on the seed's objective (Levine & Abbeel 2014, Appendix A).

For observations o_ti (sample i, step t), target means m_ti = K_t x_ti + k_t of the *new* controllers, target
precisions P_t = C_t⁻¹ (or per sample P_ti) and weights λ_t (or λ_ti):

    L(θ) = Σ_{t,i} λ_ti · ½ { tr(Σ^π P_ti) − log|Σ^π| + (m_ti − μ^π(o_ti))ᵀ P_ti (m_ti − μ^π(o_ti)) }.

Σ^π = diag(σ²) is state independent, so L splits into a covariance part that depends on σ only and a
weighted least-squares part that depends on the network only. The covariance part
½ Σ_j (σ_j² D_j − W log σ_j²), with D_j = Σ λ_ti (P_ti)_jj and W = Σ λ_ti, has the closed-form minimiser

    σ_j² = W / D_j        (diagonal Σ^π: the inverse of the λ-weighted mean of the precisions' diagonals;
                            a full Σ^π would instead be the inverse of the weighted mean precision matrix).

:func:`train_policy` sets log σ to that optimum and minimises the least-squares part over the network
weights with ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)``; because the two parts share no
parameter this is the joint minimiser of L. Gradients are analytic (numpy backprop over all samples at once).

Optional robust residuals (``huber``, off by default): with q_ti = ½ (m_ti − μ^π)ᵀ P_ti (m_ti − μ^π) the residual of
one sample in nats, the mean term λ_ti·q_ti becomes λ_ti·ρ(q_ti), ρ(q) = q for q ≤ δ and 2√(δq) − δ above (the
Huber loss in the Mahalanobis distance √(2q): quadratic near the targets, linear far away; ρ and ρ' are continuous
at δ). Relabelled states where a controller's feedback gains extrapolate far from its samples (a rollout that
wandered off) can carry residuals 50× the rest and otherwise dominate the fit (docs/results.md, issue 6).

Optional weight decay adds ½·α·S·‖W‖² over the weight matrices (not biases, not log σ), where
S = Σ λ_ti · mean_j (P_ti)_jj · act_std_j² is the objective's scale in normalised action units. The
optimiser minimises F/S, F = L + penalty: for near-isotropic precisions L_mean/S ≈ ½ Σ_j E[(r_j/act_std_j)²],
the squared action error in units of the actions' spread, O(1) at the start for any action scale, so α is
dimensionless and compares directly with it (default 0: no decay).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from . import _validate as v
from .errors import GPSXError, NonFiniteError, NotPositiveDefiniteError, NotSymmetricError
from .policy import GaussianMLPPolicy

__all__ = ["PolicyTrainResult", "train_policy", "training_objective"]


@dataclass(frozen=True)
class PolicyTrainResult:
    """Outcome of one :func:`train_policy` call.

    ``objective``/``initial_objective``: the seed's L(θ) (with robust residuals if asked; without weight decay)
    after/before the L-BFGS run
    (before = the starting weights under the new normalisation, with the closed-form σ). ``converged``: L-BFGS met
    its tolerance before ``max_iterations``.
    """

    objective: float
    initial_objective: float
    iterations: int
    evaluations: int
    wall_time: float
    converged: bool
    message: str
    n_samples: int


@dataclass
class _Batch:
    """The positive-weight samples, flattened: obs (M, dO), target (M, dU), w (M,), WP = w·P (M, dU, dU)."""

    obs: np.ndarray
    target: np.ndarray
    w: np.ndarray
    WP: np.ndarray
    D: np.ndarray  # (dU,) Σ w P_jj
    W: float  # Σ w


def _checked(value, name: str, shape, t_axis: int) -> np.ndarray:
    """Convert and check shape and finiteness, naming the first time step (axis ``t_axis``) holding NaN/inf."""
    arr = v.as_float_array(value, name)
    v.check_shape(arr, shape, name)
    finite = np.isfinite(arr)
    if not finite.all():
        bad_t = ~np.moveaxis(finite, t_axis, 0).reshape(arr.shape[t_axis], -1).all(axis=1)
        raise NonFiniteError("contains NaN or inf", array=name, t=int(np.argmax(bad_t)))
    return arr


def _check_precision(P: np.ndarray) -> np.ndarray:
    """P (T, N', dU, dU) with time first: symmetric (to round-off) and positive semidefinite; returns sym. part."""
    scale = np.maximum(np.abs(P).max(axis=(-1, -2)), 1e-300)
    asym = np.abs(P - np.swapaxes(P, -1, -2)).max(axis=(-1, -2))
    bad = (asym > v.SYMMETRY_RTOL * scale).any(axis=1)
    if bad.any():
        raise NotSymmetricError("not symmetric", array="target_precision", t=int(np.argmax(bad)))
    P = 0.5 * (P + np.swapaxes(P, -1, -2))
    eig_min = np.linalg.eigvalsh(P)[..., 0]
    bad = (eig_min < -1e-10 * scale).any(axis=1)
    if bad.any():
        t = int(np.argmax(bad))
        raise NotPositiveDefiniteError(f"not positive semidefinite (smallest eigenvalue {eig_min[t].min():.3g})",
                                       array="target_precision", t=t)
    return P


def _prepare(policy: GaussianMLPPolicy, obs, target_mean, target_precision, weights) -> _Batch:
    """Validate the training arrays and keep the samples with positive weight."""
    obs = _checked(obs, "obs", (None, None, policy.dX), 1)
    N, T, _ = obs.shape
    dU = policy.dU
    target = _checked(target_mean, "target_mean", (N, T, dU), 1)
    prec = v.as_float_array(target_precision, "target_precision")
    per_sample = prec.ndim == 4
    prec = _checked(prec, "target_precision", (N, T, dU, dU) if per_sample else (T, dU, dU), int(per_sample))
    P = _check_precision(np.swapaxes(prec, 0, 1) if per_sample else prec[:, None])  # (T, N or 1, dU, dU)
    w = v.as_float_array(weights, "weights")
    per_sample_w = w.ndim == 2
    w = _checked(w, "weights", (N, T) if per_sample_w else (T,), int(per_sample_w))
    if (w < 0).any():
        raise GPSXError("weights must be >= 0", array="weights",
                        t=int(np.argmax((w < 0).reshape(-1, T).any(axis=0))))
    w = np.broadcast_to(w, (N, T)).T  # (T, N), time first like P
    keep = w > 0
    if not keep.any():
        raise GPSXError("all weights are zero: nothing to train on", array="weights")
    w_m = w[keep]
    WP = np.broadcast_to(P, (T, N, dU, dU))[keep] * w_m[:, None, None]
    D = np.einsum("mjj->j", WP)
    if (D <= 0).any():
        raise GPSXError(f"the weighted precision has a zero diagonal at action {int(np.argmin(D))}: "
                        "the covariance is unconstrained", array="target_precision")
    return _Batch(np.swapaxes(obs, 0, 1)[keep], np.swapaxes(target, 0, 1)[keep], w_m, WP, D, float(w_m.sum()))


def _scale(policy: GaussianMLPPolicy, batch: _Batch) -> float:
    """S = Σ λ · mean_j P_jj act_std_j²: the objective's size in normalised action units (see module doc)."""
    return float(batch.D @ policy.act_std ** 2) / policy.dU


def _evaluate(policy: GaussianMLPPolicy, batch: _Batch, obs_n: np.ndarray, theta: np.ndarray,
              weight_decay: float, buffers=None, huber: float | None = None) -> tuple[float, float, np.ndarray]:
    """(L, F = L + penalty, dF/dθ) at parameters θ, for normalised observations ``obs_n`` (L with robust
    residuals when ``huber`` is given); ``buffers``: the network's
    :meth:`~gpsx.policy.GaussianMLPPolicy.layer_buffers` for them, reused (their pre-activation arrays hold the
    backpropagated gradients, which have the same shapes)."""
    Ws, _, log_std = policy.unpack(theta)
    if buffers is None:
        buffers = policy.layer_buffers(len(obs_n))
    y, cache = policy._forward(obs_n, theta, buffers)
    r = batch.target - policy.act_mean - policy.act_std * y
    g = np.einsum("mij,mj->mi", batch.WP, r)  # w_i P_i r_i
    wq = 0.5 * np.einsum("mu,mu->m", r, g)   # w_i q_i
    if huber is not None:
        q = wq / batch.w
        far = q > huber
        wq[far] = batch.w[far] * (2.0 * np.sqrt(huber * q[far]) - huber)
        g[far] *= np.sqrt(huber / q[far])[:, None]   # ρ'(q) = √(δ/q) beyond δ
    var = np.exp(2.0 * log_std)
    L = float(wq.sum()) + 0.5 * float(var @ batch.D - 2.0 * batch.W * log_std.sum())
    grad = np.zeros_like(theta)
    gWs, gbs, glog = policy.unpack(grad)
    glog[...] = var * batch.D - batch.W
    G = -g * policy.act_std  # dL/dy
    for layer in range(len(Ws) - 1, -1, -1):
        h_in = cache[layer - 1][0] if layer > 0 else obs_n
        gWs[layer][...] = h_in.T @ G
        gbs[layer][...] = G.sum(axis=0)
        if layer > 0:
            G = np.matmul(G, Ws[layer].T, out=buffers[layer - 1][0])
            G *= cache[layer - 1][1]
    F = L
    if weight_decay:
        c = weight_decay * _scale(policy, batch)
        m = policy._weight_mask
        F += 0.5 * c * float(theta[m] @ theta[m])
        grad[m] += c * theta[m]
    return L, F, grad


def training_objective(policy: GaussianMLPPolicy, obs, target_mean, target_precision, weights,
                       theta=None, *, weight_decay: float = 0.0, huber: float | None = None
                       ) -> tuple[float, np.ndarray]:
    """F(θ) = L(θ) + weight-decay penalty and dF/dθ (n_params,) over all parameters (θ default: current).

    Evaluated in the policy's current normalisation; arguments as :func:`train_policy`.
    """
    batch = _prepare(policy, obs, target_mean, target_precision, weights)
    theta = policy.get_params() if theta is None else v.array(theta, "theta", (policy.n_params,), False)
    obs_n = policy.normalize_obs(batch.obs)
    _, F, grad = _evaluate(policy, batch, obs_n, theta, weight_decay, huber=_huber(huber))
    return F, grad


def _huber(huber: float | None) -> float | None:
    if huber is not None and not (np.isfinite(huber) and huber > 0):
        raise ValueError(f"huber must be a positive number of nats or None, got {huber}")
    return huber


def _robust_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over axis 0; a (near-)constant column gets std 1 (nothing to normalise)."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    tiny = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
    return mean, np.where(tiny, 1.0, std)


def train_policy(policy: GaussianMLPPolicy, obs, target_mean, target_precision, weights, *,
                 max_iterations: int = 200, seed: int | None = None, weight_decay: float = 0.0,
                 ftol: float = 1e-12, gtol: float = 1e-8, fixed_std: float | None = None,
                 huber: float | None = None) -> PolicyTrainResult:
    """Fit ``policy`` (in place) to minimise the seed's objective L(θ) (module doc).

    obs (N, T, dO); target_mean (N, T, dU) = K_t x_ti + k_t of the new controllers (also for earlier
    iterations' states: that is the seed's relabelling); target_precision (T, dU, dU) or (N, T, dU, dU) = C_t⁻¹;
    weights λ (T,) or (N, T), >= 0 (samples with weight 0 are ignored entirely, normalisation included).

    ``seed=None`` warm-starts from the current weights; an int redraws them from that seed (cold start). Either
    way the normalisation is set to the new data's statistics and the weights are kept as they are, so a warm
    start keeps the network's shape in normalised units rather than μ^π itself. Keeping μ^π would mean scaling
    the first layer by new/old input scale. On the octopus, whose first iteration barely moves the arm, that
    factor reached 10–100: the softplus units saturated and L-BFGS stalled at the start point. The action error
    stayed at 0.45, where a fresh network reached 0.06 (docs/results.md, issue 6).
    The first call on a fresh policy uses its constructor's seeded weights. log σ is set to its closed form
    (or to log ``fixed_std`` on every action dimension, when given: the mean's fit does not depend on it);
    L-BFGS-B runs at most ``max_iterations`` iterations with tolerances ``ftol``/``gtol`` on F/S. ``huber``: the
    robust residuals' threshold δ in nats (module doc; None: the seed's objective).
    """
    start = time.perf_counter()
    if weight_decay < 0 or max_iterations < 1:
        raise ValueError(f"need weight_decay >= 0 and max_iterations >= 1, got {weight_decay}, {max_iterations}")
    huber = _huber(huber)
    batch = _prepare(policy, obs, target_mean, target_precision, weights)
    if seed is not None:
        policy.initialize(seed)
    (om, osd), (am, asd) = _robust_std(batch.obs), _robust_std(batch.target)
    policy.set_normalization(om, osd, am, asd)
    policy.log_std[...] = 0.5 * np.log(batch.W / batch.D) if fixed_std is None else np.log(fixed_std)
    obs_n = policy.normalize_obs(batch.obs)
    theta = policy.get_params()
    free = slice(0, policy.n_params - policy.dU)  # everything but log σ
    S = _scale(policy, batch)
    buffers = policy.layer_buffers(len(obs_n))

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        theta[free] = z
        _, F, grad = _evaluate(policy, batch, obs_n, theta, weight_decay, buffers, huber)
        return F / S, grad[free] / S

    initial = _evaluate(policy, batch, obs_n, theta, 0.0, buffers, huber)[0]
    res = minimize(fun, theta[free].copy(), jac=True, method="L-BFGS-B",
                   options={"maxiter": int(max_iterations), "ftol": ftol, "gtol": gtol, "maxcor": 20})
    theta[free] = res.x
    policy.set_params(theta)
    final = _evaluate(policy, batch, obs_n, theta, 0.0, buffers, huber)[0]
    return PolicyTrainResult(objective=final, initial_objective=initial, iterations=int(res.nit),
                             evaluations=int(res.nfev), wall_time=time.perf_counter() - start,
                             converged=bool(res.success), message=str(res.message), n_samples=len(batch.w))
