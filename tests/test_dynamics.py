"""Local linear-Gaussian models: dynamics fit, GMM priors, policy linearisation (gpsx.dynamics)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpsx.containers import LinearGaussianController, LinearGaussianDynamics
from gpsx.dynamics import DynamicsPrior, PolicyPrior, fit_dynamics, fit_policy_linearization
from gpsx.errors import DynamicsFitError, GPSXError, NonFiniteError, NotPositiveDefiniteError, ShapeError
from gpsx import gmm_prior
from gpsx.gmm_prior import dynamics_tuples


# ---------------------------------------------------------------- systems and helpers

def linear_system(T: int, dX: int, dU: int, seed: int, drift: float = 0.3):
    """A stable time-varying linear system x' = A_t x + B_t u + c_t (A_t, B_t vary smoothly with t)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((dX, dX)))
    A0 = Q @ np.diag(rng.uniform(0.5, 0.9, dX)) @ Q.T
    phase = np.sin(np.linspace(0.0, np.pi, T - 1))[:, None, None]
    A = A0 + drift * phase * rng.standard_normal((dX, dX)) / np.sqrt(dX)
    B = rng.standard_normal((dX, dU)) * (1.0 + drift * phase)
    c = 0.1 * rng.standard_normal((T - 1, dX))
    return A, B, c


def rollout(system, N: int, seed: int, noise: float = 0.0, actions=None):
    """N trajectories under a random linear-Gaussian controller u = K x + k_t + eps (K damps: A + B K is
    stable), or under the same open-loop ``actions`` (T, dU) in every sample."""
    A, B, c = system
    T, dX, dU = A.shape[0] + 1, A.shape[1], B.shape[2]
    rng = np.random.default_rng(seed)
    K = -0.2 * B[0].T / np.linalg.norm(B[0]) ** 2
    k = np.random.default_rng(4321).standard_normal((T, dU))
    X, U = np.empty((N, T, dX)), np.empty((N, T, dU))
    X[:, 0] = rng.standard_normal((N, dX))
    for t in range(T):
        U[:, t] = X[:, t] @ K.T + k[t] + rng.standard_normal((N, dU)) if actions is None else actions[t]
        if t + 1 < T:
            X[:, t + 1] = X[:, t] @ A[t].T + U[:, t] @ B[t].T + c[t] + noise * rng.standard_normal((N, dX))
    return X, U


def true_F(system):
    A, B, _ = system
    return np.concatenate([A, B], axis=2)


def one_step_mse(F, f, X, U):
    """Mean squared one-step prediction error sum_i (x_{t+1} - F_t z_t - f_t)_i^2 over samples and steps."""
    Z = np.concatenate([X[:, :-1], U[:, :-1]], axis=2)
    pred = np.einsum("tij,ntj->nti", F, Z) + f
    return float(((X[:, 1:] - pred) ** 2).sum(axis=2).mean())


def lstsq_fit(X, U):
    """Per-step minimum-norm least squares of x_{t+1} on [x_t, u_t, 1]: what is left without a prior when
    N <= dX + dU (the problem is under-determined)."""
    N, T, dX = X.shape
    Fs, fs = [], []
    for t in range(T - 1):
        Z = np.hstack([X[:, t], U[:, t], np.ones((N, 1))])
        W = np.linalg.lstsq(Z, X[:, t + 1], rcond=None)[0].T
        Fs.append(W[:, :-1])
        fs.append(W[:, -1])
    return np.array(Fs), np.array(fs)


def primed_prior(system, n_batches: int = 4, noise: float = 0.05, **kw) -> DynamicsPrior:
    """A DynamicsPrior updated on n_batches x 5 earlier samples (as in GPS iterations)."""
    prior = DynamicsPrior(random_state=0, **kw)
    for i in range(n_batches):
        prior.update(*rollout(system, 5, seed=100 + i, noise=noise))
    return prior


def pendulum(N: int, seed: int, T: int = 40, dt: float = 0.05, noise: float = 0.01):
    """Damped pendulum theta'' = -9.81 sin(theta) - 0.5 theta' + u, explicit Euler, state (theta, omega)."""
    rng = np.random.default_rng(seed)
    k = 2.0 * np.sin(np.linspace(0, 3 * np.pi, T))
    X, U = np.empty((N, T, 2)), np.empty((N, T, 1))
    X[:, 0] = np.array([1.0, 0.0]) + 0.1 * rng.standard_normal((N, 2))
    for t in range(T):
        U[:, t, 0] = k[t] - 0.5 * X[:, t, 0] + 0.5 * rng.standard_normal(N)
        if t + 1 < T:
            th, om = X[:, t, 0], X[:, t, 1]
            acc = -9.81 * np.sin(th) - 0.5 * om + U[:, t, 0]
            X[:, t + 1, 0] = th + dt * om
            X[:, t + 1, 1] = om + dt * acc
            X[:, t + 1] += noise * rng.standard_normal((N, 2))
    return X, U


# ---------------------------------------------------------------- prior-free (maximum-likelihood) fit

def test_noiseless_time_varying_system_is_recovered_exactly():
    system = linear_system(T=15, dX=4, dU=2, seed=0)
    X, U = rollout(system, N=12, seed=1)
    dyn = fit_dynamics(X, U, ridge=0.0)
    assert isinstance(dyn, LinearGaussianDynamics) and dyn.F.shape == (14, 4, 6)
    np.testing.assert_allclose(dyn.F, true_F(system), atol=1e-9)
    np.testing.assert_allclose(dyn.f, system[2], atol=1e-9)
    assert np.abs(dyn.cov).max() < 1e-12
    np.testing.assert_allclose(dyn.x0_mean, X[:, 0].mean(axis=0))
    np.testing.assert_allclose(dyn.x0_cov, np.cov(X[:, 0], rowvar=False, bias=True))
    # The default 1e-6 ridge biases the gains only at the ridge's scale.
    assert np.abs(fit_dynamics(X, U).F - true_F(system)).max() < 1e-4


def test_noisy_fit_converges_as_samples_grow():
    system = linear_system(T=8, dX=3, dU=2, seed=2)
    sigma = 0.1
    errors, covs = [], []
    for N in (20, 80, 320, 1280):
        dyn = fit_dynamics(*rollout(system, N, seed=N, noise=sigma))
        errors.append(np.abs(dyn.F - true_F(system)).max())
        covs.append(dyn.cov)
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < errors[0] / 4          # ~1/sqrt(N): 64x the samples, ~8x smaller
    np.testing.assert_allclose(covs[-1].mean(axis=0), sigma**2 * np.eye(3), atol=0.15 * sigma**2)


# ---------------------------------------------------------------- the GMM prior with few samples

def test_prior_with_five_samples_beats_the_prior_free_alternatives():
    system = linear_system(T=30, dX=6, dU=3, seed=3, drift=0.0)
    noise = 0.05
    prior = primed_prior(system, noise=noise)        # 20 earlier samples of the same system
    X, U = rollout(system, 5, seed=7, noise=noise)
    with pytest.raises(DynamicsFitError, match="prior"):
        fit_dynamics(X, U)                           # N = 5 <= dX + dU = 9: maximum likelihood is ill-posed
    dyn = fit_dynamics(X, U, prior=prior)
    X_test, U_test = rollout(system, 200, seed=8, noise=noise)
    mse_prior = one_step_mse(dyn.F, dyn.f, X_test, U_test)
    mse_lstsq = one_step_mse(*lstsq_fit(X, U), X_test, U_test)
    noise_level = 6 * noise**2                       # E||process noise||^2, the best any model can do
    assert mse_prior < 0.01 * mse_lstsq              # lstsq: ~400-1300x the noise level on such systems
    assert mse_prior < 4.0 * noise_level             # measured ~2.5-3x: the GMM prior is itself ~2.2x


def test_nonlinear_pendulum_fit_is_close_to_the_best_local_linear_model():
    earlier = pendulum(20, seed=1)
    prior = DynamicsPrior(random_state=0)
    for i in range(4):
        prior.update(earlier[0][5 * i:5 * i + 5], earlier[1][5 * i:5 * i + 5])
    X, U = pendulum(5, seed=2)
    dyn = fit_dynamics(X, U, prior=prior)
    X_test, U_test = pendulum(300, seed=3)
    best = fit_dynamics(*pendulum(3000, seed=4))     # time-varying linearisation from plenty of data
    mse_best = one_step_mse(best.F, best.f, X_test, U_test)
    mse = one_step_mse(dyn.F, dyn.f, X_test, U_test)
    assert mse_best >= 2 * 0.01**2 * 0.9             # cannot beat the process noise
    assert mse < 2.0 * mse_best
    assert mse < 0.1 * one_step_mse(*lstsq_fit(X, U), X_test, U_test)


def test_map_fit_matches_the_normal_inverse_wishart_formula_step_by_step():
    system = linear_system(T=12, dX=3, dU=2, seed=4)
    prior = primed_prior(system, strength=2.5)
    X, U = rollout(system, 5, seed=9, noise=0.05)
    dyn = fit_dynamics(X, U, prior=prior, ridge=1e-6)
    mu0, sigma0 = prior.moments(dynamics_tuples(X, U))
    m = n0 = 2.5
    n_in, N = 5, 5
    for t in range(11):
        Z = np.hstack([X[:, t], U[:, t], X[:, t + 1]])
        mu = Z.mean(axis=0)
        E = np.cov(Z, rowvar=False, bias=True)
        d = mu - mu0[t]
        S = (m * sigma0[t] + N * E + (N * m / (N + m)) * np.outer(d, d)) / (N + n0)
        S[:n_in, :n_in] += 1e-6 * np.eye(n_in)
        G = np.linalg.solve(S[:n_in, :n_in], S[:n_in, n_in:]).T
        np.testing.assert_allclose(dyn.F[t], G, atol=1e-9)
        np.testing.assert_allclose(dyn.f[t], mu[n_in:] - G @ mu[:n_in], atol=1e-9)
        np.testing.assert_allclose(dyn.cov[t], S[n_in:, n_in:] - G @ S[:n_in, n_in:], atol=1e-12)


def test_strength_moves_the_fit_between_the_data_and_the_prior():
    system = linear_system(T=10, dX=3, dU=2, seed=5)
    X, U = rollout(system, 30, seed=10, noise=0.05)
    weak = fit_dynamics(X, U, prior=primed_prior(system, strength=1e-9))
    np.testing.assert_allclose(weak.F, fit_dynamics(X, U).F, atol=1e-6)
    strong_prior = primed_prior(system, strength=1e9)
    strong = fit_dynamics(X, U, prior=strong_prior, ridge=0.0)
    mu0, sigma0 = strong_prior.moments(dynamics_tuples(X, U))
    G = np.linalg.solve(sigma0[:, :5, :5], sigma0[:, :5, 5:]).transpose(0, 2, 1)
    np.testing.assert_allclose(strong.F, G, atol=1e-6)


def test_prior_moments_are_the_mixture_moments_under_averaged_posterior_weights():
    system = linear_system(T=10, dX=2, dU=1, seed=6)
    prior = primed_prior(system)
    joint = dynamics_tuples(*rollout(system, 5, seed=11, noise=0.05))
    mu0, sigma0 = prior.moments(joint)
    mix, c, s = prior._mixture, prior._center, prior._scale
    means = c + mix.means * s                                    # the mixture in data units
    covs = mix.covariances * np.outer(s, s)
    for t in range(joint.shape[0]):
        w = _posterior((joint[t] - c) / s, mix).mean(axis=0)
        mu = w @ means
        sigma = sum(w[k] * (covs[k] + np.outer(means[k] - mu, means[k] - mu)) for k in range(len(w)))
        np.testing.assert_allclose(mu0[t], mu, atol=1e-10)
        np.testing.assert_allclose(sigma0[t], sigma, atol=1e-10)


# ---------------------------------------------------------------- prior bookkeeping

def test_prior_keeps_exactly_the_most_recent_max_samples():
    system = linear_system(T=6, dX=2, dU=1, seed=7)
    prior = DynamicsPrior(max_samples=20, random_state=0)
    batches = [rollout(system, 5, seed=i) for i in range(5)]
    for i, batch in enumerate(batches):
        prior.update(*batch)
        assert prior.num_samples == min(5 * (i + 1), 20)     # the old code kept 19 of 20
    kept = np.stack(prior._buffer)
    expected = np.concatenate([dynamics_tuples(*b).transpose(1, 0, 2) for b in batches[1:]])
    np.testing.assert_array_equal(kept, expected)


@pytest.mark.parametrize("N, min_per_cluster, max_clusters, expected", [
    (5, 10, 20, 5),     # 5 trajectories x 10 tuples / 10
    (5, 10, 3, 3),      # capped by max_clusters
    (1, 40, 20, 2),     # at least 2
])
def test_cluster_count_rule(N, min_per_cluster, max_clusters, expected):
    system = linear_system(T=11, dX=2, dU=1, seed=8)
    prior = DynamicsPrior(max_clusters=max_clusters, min_samples_per_cluster=min_per_cluster, random_state=0)
    prior.update(*rollout(system, N, seed=0))
    assert prior.num_clusters == expected


def test_random_state_makes_the_prior_reproducible():
    system = linear_system(T=10, dX=3, dU=2, seed=9)
    X, U = rollout(system, 5, seed=12, noise=0.05)
    fits = []
    for seed in (3, 3, 4):
        prior = DynamicsPrior(random_state=seed, max_em_points=50)
        for i in range(3):
            prior.update(*rollout(system, 5, seed=i, noise=0.05))
        fits.append(fit_dynamics(X, U, prior=prior).F)
    np.testing.assert_array_equal(fits[0], fits[1])
    assert not np.array_equal(fits[0], fits[2])


@pytest.mark.parametrize("batches", [1, 3])   # 1: scikit-learn's cold fit; 3: gpsx's warm-started EM
def test_prior_restored_from_a_saved_state_continues_bit_for_bit(tmp_path, batches):
    """The checkpoint path (state arrays through an .npz) restores the precision factors' memory layout too:
    the mixture's matmul and einsum sum in a layout-dependent order, so a C-ordered copy of a transposed
    array gives fits that differ in the last bits (and a resumed GPS run that drifts away)."""
    system = linear_system(T=12, dX=3, dU=2, seed=13)
    prior = DynamicsPrior(random_state=0, min_samples_per_cluster=10, max_clusters=3)
    for i in range(batches):
        prior.update(*rollout(system, 5, seed=200 + i, noise=0.05))
    np.savez(tmp_path / "prior.npz", **prior.state_arrays())
    with np.load(tmp_path / "prior.npz") as saved:
        restored = DynamicsPrior(random_state=0, min_samples_per_cluster=10, max_clusters=3)
        restored.load_state(dict(saved))
    factors, restored_factors = prior._mixture.precisions_cholesky, restored._mixture.precisions_cholesky
    assert restored_factors.strides == factors.strides and np.array_equal(restored_factors, factors)
    X, U = rollout(system, 5, seed=300, noise=0.05)
    for p in (prior, restored):
        p.reseed(1)
        p.update(X, U)
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        assert np.array_equal(getattr(prior._mixture, name), getattr(restored._mixture, name)), name


def _weighted_log_densities(z, weights, means, precisions):
    """log w_k N(z; mu_k, P_k^-1) per cluster (K, N), written out independently of gpsx.mixture."""
    logs = []
    for w, mu, P in zip(weights, means, precisions):
        d = z - mu
        logs.append(np.log(w) + 0.5 * np.linalg.slogdet(P)[1] - 0.5 * len(mu) * np.log(2 * np.pi)
                    - 0.5 * np.einsum("ni,ij,nj->n", d, P, d))
    return np.array(logs)


def _mixture_log_density(z, weights, means, precisions):
    """log sum_k w_k N(z; mu_k, P_k^-1)."""
    return np.logaddexp.reduce(_weighted_log_densities(z, weights, means, precisions), axis=0)


def _posterior(z, mix):
    """Posterior cluster weights (N, K) of the rows of z."""
    logs = _weighted_log_densities(z, mix.weights, mix.means, np.linalg.inv(mix.covariances))
    return np.exp(logs - np.logaddexp.reduce(logs, axis=0)).T


def test_warm_start_carries_the_mixture_into_the_new_standardisation():
    system = linear_system(T=10, dX=2, dU=1, seed=10)
    prior = primed_prior(system, n_batches=2)
    pts = np.concatenate(prior._buffer)
    old, c_old, s_old = prior._mixture, prior._center, prior._scale
    c_new, s_new = c_old + 0.7, s_old * np.linspace(0.5, 2.0, len(s_old))
    new = prior._warm_start(c_new, s_new)
    log_old = _mixture_log_density((pts - c_old) / s_old, old.weights, old.means, old.precisions)
    log_new = _mixture_log_density((pts - c_new) / s_new, new.weights, new.means, new.precisions)
    # The same density in data units: log p_new(z_new) - log p_old(z_old) = log |d z_old / d z_new|.
    np.testing.assert_allclose(log_new - log_old, np.log(s_new / s_old).sum(), atol=1e-8)
    np.testing.assert_allclose(new.precisions, np.linalg.inv(new.covariances), rtol=1e-8, atol=1e-8)


def test_em_is_warm_started_exactly_when_the_cluster_count_is_unchanged(monkeypatch):
    starts = []
    monkeypatch.setattr(gmm_prior, "em", lambda z, start, *args: starts.append(start) or start)
    system = linear_system(T=11, dX=2, dU=1, seed=11)
    prior = DynamicsPrior(min_samples_per_cluster=10, max_clusters=3, random_state=0)
    prior.update(*rollout(system, 2, seed=0))             # 20 tuples: 2 clusters, cold start
    assert prior.num_clusters == 2 and not starts
    prior.update(*rollout(system, 2, seed=1))             # 40 tuples: 3 clusters, cold start again
    assert prior.num_clusters == 3 and not starts
    before = prior._mixture
    prior.update(*rollout(system, 2, seed=2))             # still 3 clusters: warm start from the last fit
    assert prior.num_clusters == 3 and len(starts) == 1
    np.testing.assert_array_equal(starts[0].weights, before.weights)


# ---------------------------------------------------------------- policy linearisation

@pytest.mark.parametrize("cov_shape", ["(dU,dU)", "(T,dU,dU)", "(N,T,dU,dU)"])
def test_linear_gaussian_policy_is_recovered_exactly(cov_shape):
    rng = np.random.default_rng(12)
    N, T, dX, dU = 9, 7, 4, 2
    K, k = rng.standard_normal((T, dU, dX)), rng.standard_normal((T, dU))
    X = rng.standard_normal((N, T, dX))
    mean = np.einsum("tij,ntj->nti", K, X) + k
    L = rng.standard_normal((N, T, dU, dU))
    per_sample = L @ np.swapaxes(L, -1, -2) + 0.1 * np.eye(dU)
    policy_cov = {"(dU,dU)": per_sample[0, 0], "(T,dU,dU)": per_sample[0], "(N,T,dU,dU)": per_sample}[cov_shape]
    expected_cov = np.broadcast_to(policy_cov, (N, T, dU, dU)).mean(axis=0) if cov_shape == "(N,T,dU,dU)" \
        else np.broadcast_to(policy_cov, (T, dU, dU))
    lin = fit_policy_linearization(X, mean, policy_cov, ridge=0.0)
    assert isinstance(lin, LinearGaussianController)
    np.testing.assert_allclose(lin.K, K, atol=1e-9)
    np.testing.assert_allclose(lin.k, k, atol=1e-9)
    np.testing.assert_allclose(lin.cov, expected_cov, atol=1e-12)


def _tanh_policy(seed: int, dX: int = 4, dU: int = 2):
    rng = np.random.default_rng(seed)
    W, b = rng.standard_normal((dU, dX)) / np.sqrt(dX), 0.1 * rng.standard_normal(dU)
    mean = lambda X: np.tanh(X @ W.T + b)                            # noqa: E731
    jac = lambda x: (1 - np.tanh(W @ x + b) ** 2)[:, None] * W       # noqa: E731
    return mean, jac


def _states_around(nominal, N, seed, spread):
    rng = np.random.default_rng(seed)
    return nominal[None] + spread * rng.standard_normal((N,) + nominal.shape)


def test_smooth_nonlinear_policy_is_linearised_locally():
    T, dX, dU = 10, 4, 2
    mean, jac = _tanh_policy(13, dX, dU)
    nominal = np.cumsum(0.3 * np.random.default_rng(14).standard_normal((T, dX)), axis=0)
    J = np.array([jac(x) for x in nominal])
    errors = []
    for spread in (0.03, 0.01, 0.003):       # the fit is local: the error shrinks with the spread
        X = _states_around(nominal, 20, seed=15, spread=spread)
        lin = fit_policy_linearization(X, mean(X), 0.01 * np.eye(dU), ridge=0.0)
        errors.append(np.abs(lin.K - J).max() / np.abs(J).max())
    assert errors[0] > errors[1] > errors[2] and errors[1] < 0.02, errors


def test_policy_prior_gives_a_local_jacobian_from_fewer_samples_than_states():
    T, dX, dU = 10, 6, 2
    mean, jac = _tanh_policy(16, dX, dU)
    nominal = np.cumsum(0.3 * np.random.default_rng(17).standard_normal((T, dX)), axis=0)
    J = np.array([jac(x) for x in nominal])
    pprior = PolicyPrior(random_state=0)
    for i in range(4):                         # 20 earlier samples
        Xi = _states_around(nominal, 5, seed=20 + i, spread=0.05)
        pprior.update(Xi, mean(Xi))
    X = _states_around(nominal, 5, seed=30, spread=0.05)
    with pytest.raises(DynamicsFitError, match="prior"):
        fit_policy_linearization(X, mean(X), 0.01 * np.eye(dU))        # N = 5 <= dX = 6
    lin = fit_policy_linearization(X, mean(X), 0.01 * np.eye(dU), prior=pprior)
    lstsq = np.array([np.linalg.lstsq(np.hstack([X[:, t], np.ones((5, 1))]), mean(X)[:, t], rcond=None)[0][:-1].T
                      for t in range(T)])
    error = np.abs(lin.K - J).mean() / np.abs(J).mean()
    assert error < 0.2                         # measured 0.03-0.18 over 10 seeds; min-norm lstsq: 0.3-0.6
    assert error < 0.5 * np.abs(lstsq - J).mean() / np.abs(J).mean()
    assert (np.linalg.eigvalsh(lin.cov) >= 0.01 - 1e-12).all()       # the policy's own covariance is added


# ---------------------------------------------------------------- degenerate input

def test_single_sample_without_prior_raises():
    X, U = rollout(linear_system(T=6, dX=2, dU=1, seed=16), 1, seed=0)
    with pytest.raises(DynamicsFitError, match=r"N=1.*prior"):
        fit_dynamics(X, U)


def test_single_sample_with_prior_is_regularised_by_the_prior():
    system = linear_system(T=10, dX=3, dU=2, seed=17, drift=0.0)
    prior = primed_prior(system)
    X, U = rollout(system, 1, seed=40, noise=0.05)
    dyn = fit_dynamics(X, U, prior=prior)
    np.testing.assert_allclose(dyn.x0_cov, 1e-6 * np.eye(3))         # one sample: the floor
    assert np.abs(dyn.F - true_F(system)).max() < 0.3
    assert (np.linalg.eigvalsh(dyn.cov) >= -1e-12).all()


def test_constant_actions_without_prior_raise_naming_the_input_and_step():
    system = linear_system(T=8, dX=2, dU=2, seed=18)
    actions = np.column_stack([np.linspace(-1, 1, 8), np.full(8, 0.3)])
    X, U = rollout(system, 10, seed=0, noise=0.05, actions=actions)   # the same actions in every sample
    with pytest.raises(DynamicsFitError, match=r"u\[0\] does not vary") as err:
        fit_dynamics(X, U)
    assert err.value.t == 0


def test_constant_actions_with_prior_take_the_control_gains_from_the_prior():
    system = linear_system(T=8, dX=2, dU=2, seed=19, drift=0.0)
    prior = primed_prior(system)                                      # trained on exploratory actions
    actions = np.random.default_rng(0).standard_normal((8, 2))
    X, U = rollout(system, 10, seed=41, noise=0.05, actions=actions)  # the same actions in every sample
    dyn = fit_dynamics(X, U, prior=prior)
    B = system[1][0]
    assert np.abs(dyn.F[:, :, 2:] - B).max() < 0.2 * np.abs(B).max()


@pytest.mark.parametrize("jitter", [0.0, 1e-7])                     # exactly, and numerically collinear
def test_collinear_states_without_prior_raise(jitter):
    rng = np.random.default_rng(20)
    X, U = rng.standard_normal((10, 6, 3)), rng.standard_normal((10, 6, 1))
    X[:, 2:, 2] = 2.0 * X[:, 2:, 0] - X[:, 2:, 1] + jitter * X[:, 2:, 2]   # collinear from t = 2 on
    with pytest.raises(DynamicsFitError, match="collinear") as err:
        fit_dynamics(X, U)
    assert err.value.t == 2


def test_collinear_states_with_prior_give_a_finite_fit():
    rng = np.random.default_rng(21)
    X, U = rng.standard_normal((25, 6, 3)), rng.standard_normal((25, 6, 1))
    X[..., 2] = 2.0 * X[..., 0] - X[..., 1]
    prior = DynamicsPrior(random_state=0)
    prior.update(X[:20], U[:20])
    dyn = fit_dynamics(X[20:], U[20:], prior=prior)
    assert np.isfinite(dyn.F).all() and np.isfinite(dyn.cov).all()


@pytest.mark.parametrize("where", ["X", "U", "update-X", "policy_mean"])
def test_nan_input_raises_non_finite_error_with_sample_and_step(where):
    rng = np.random.default_rng(22)
    X, U = rng.standard_normal((6, 5, 2)), rng.standard_normal((6, 5, 1))
    target = {"X": X, "U": U, "update-X": X, "policy_mean": U}[where]
    target[3, 2, 0] = np.nan
    with pytest.raises(NonFiniteError, match="sample 3") as err:
        if where == "update-X":
            DynamicsPrior().update(X, U)
        elif where == "policy_mean":
            fit_policy_linearization(X, U, np.eye(1))
        else:
            fit_dynamics(X, U)
    assert err.value.t == 2


def test_overflowing_data_raise_instead_of_returning_nan_dynamics():
    system = linear_system(T=6, dX=2, dU=1, seed=23)
    X, U = rollout(system, 10, seed=0, noise=0.05)
    with pytest.raises(DynamicsFitError, match="NaN or inf"):
        fit_dynamics(1e200 * X, U)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 8), T=st.integers(2, 4), dX=st.integers(1, 3), dU=st.integers(1, 2),
       scale=st.sampled_from([1e-150, 1e-8, 1.0, 1e8, 1e150]), flat=st.booleans(), seed=st.integers(0, 2**16),
       with_prior=st.booleans())
def test_any_input_gives_finite_dynamics_or_a_gpsx_error(N, T, dX, dU, scale, flat, seed, with_prior):
    rng = np.random.default_rng(seed)
    X, U = scale * rng.standard_normal((N, T, dX)), rng.standard_normal((N, T, dU))
    if flat:
        U[:] = U[0]
    prior = None
    if with_prior:
        prior = DynamicsPrior(random_state=0)
        prior.update(scale * rng.standard_normal((3, T, dX)), rng.standard_normal((3, T, dU)))
    try:
        dyn = fit_dynamics(X, U, prior=prior)
    except GPSXError:
        return
    for arr in (dyn.F, dyn.f, dyn.cov, dyn.x0_mean, dyn.x0_cov):
        assert np.isfinite(arr).all()


# ---------------------------------------------------------------- argument checking

def test_bad_arguments_are_rejected_clearly():
    system = linear_system(T=6, dX=2, dU=1, seed=24)
    X, U = rollout(system, 10, seed=0, noise=0.05)
    with pytest.raises(DynamicsFitError, match="not been updated"):
        fit_dynamics(X, U, prior=DynamicsPrior())
    with pytest.raises(TypeError, match="DynamicsPrior"):
        fit_dynamics(X, U, prior=PolicyPrior())
    with pytest.raises(ShapeError, match="U"):
        fit_dynamics(X, U[:, :-1])
    with pytest.raises(ShapeError, match="T >= 2"):
        fit_dynamics(X[:, :1], U[:, :1])
    prior = DynamicsPrior(random_state=0)
    prior.update(X, U)
    with pytest.raises(ShapeError, match="joint dimension"):
        prior.update(X[..., :1], U)
    with pytest.raises(ShapeError, match="policy_cov"):
        fit_policy_linearization(X, U, np.eye(2))
    with pytest.raises(NotPositiveDefiniteError, match="policy_cov"):
        fit_policy_linearization(X, U, -np.eye(1))
    for kwargs in ({"strength": 0.0}, {"max_samples": 0}, {"max_clusters": 1.5}):
        with pytest.raises(ValueError):
            DynamicsPrior(**kwargs)
