"""Tests of the Gaussian MLP policy (gpsx.policy) and its training on the seed's objective (gpsx.policy_training)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

from gpsx.errors import CheckpointError, GPSXError, NonFiniteError, NotSymmetricError, ShapeError
from gpsx.policy import GaussianMLPPolicy
from gpsx.policy_training import _evaluate, _prepare, train_policy, training_objective


def random_spd(rng, n: int, lead=()) -> np.ndarray:
    A = rng.standard_normal((*lead, n, n))
    return A @ np.swapaxes(A, -1, -2) + 0.5 * np.eye(n)


def seed_objective(policy: GaussianMLPPolicy, obs, target, prec, lam) -> float:
    """L(θ) of seed Appendix A written out term by term (full-matrix Σ^π, explicit sums), for cross-checks."""
    N, T, _ = obs.shape
    cov = policy.covariance()
    P = np.broadcast_to(prec, (N, T) + prec.shape[-2:])
    lam = np.broadcast_to(lam, (N, T))
    total = 0.0
    for i in range(N):
        mu = policy.mean(obs[i])
        for t in range(T):
            d = target[i, t] - mu[t]
            total += lam[i, t] * 0.5 * (np.trace(cov @ P[i, t]) - np.linalg.slogdet(cov)[1] + d @ P[i, t] @ d)
    return total


def small_problem(rng, N=3, T=4, dO=3, dU=2, per_sample=True):
    obs = rng.standard_normal((N, T, dO)) * [1.0, 3.0, 0.2][:dO] + 1.0
    target = rng.standard_normal((N, T, dU)) * 2.0
    prec = random_spd(rng, dU, (N, T) if per_sample else (T,))
    lam = rng.uniform(0.1, 2.0, (N, T) if per_sample else (T,))
    return obs, target, prec, lam


def test_objective_matches_seed_formula():
    rng = np.random.default_rng(1)
    for per_sample in (True, False):
        obs, target, prec, lam = small_problem(rng, per_sample=per_sample)
        pol = GaussianMLPPolicy(3, 2, hidden_sizes=(5, 4), init_std=0.7, seed=3)
        F, _ = training_objective(pol, obs, target, prec, lam)
        assert F == pytest.approx(seed_objective(pol, obs, target, prec, lam), rel=1e-12)


def test_reused_layer_buffers_give_the_fresh_evaluation():
    """train_policy's evaluations share one set of layer buffers (the backward pass overwrites the pre-activations):
    evaluating at θ1, θ2, θ1 through them gives exactly what fresh buffers give at each θ."""
    rng = np.random.default_rng(7)
    obs, target, prec, lam = small_problem(rng, N=4, T=6)
    pol = GaussianMLPPolicy(3, 2, hidden_sizes=(5, 4), seed=3)
    batch = _prepare(pol, obs, target, prec, lam)
    thetas = [pol.get_params() + 0.3 * rng.standard_normal(pol.n_params) for _ in range(2)]
    shared = pol.layer_buffers(len(batch.obs))
    for theta in (thetas[0], thetas[1], thetas[0]):
        got = _evaluate(pol, batch, batch.obs, theta, 0.0, shared)
        want = _evaluate(pol, batch, batch.obs, theta, 0.0)
        assert got[:2] == want[:2] and np.array_equal(got[2], want[2])


def test_huber_residuals_match_their_formula():
    """With a threshold δ each sample's λ·q becomes λ·(2√(δq) − δ) where q > δ; the covariance part is unchanged.
    Written out per sample from the seed objective's terms; a δ above every residual is the seed objective."""
    rng = np.random.default_rng(5)
    obs, target, prec, lam = small_problem(rng)
    pol = GaussianMLPPolicy(3, 2, hidden_sizes=(5,), init_std=0.7, seed=3)
    cov = pol.covariance()
    want, q_all = 0.0, []
    for i in range(obs.shape[0]):
        mu = pol.mean(obs[i])
        for t in range(obs.shape[1]):
            d = target[i, t] - mu[t]
            q = 0.5 * d @ prec[i, t] @ d
            q_all.append(q)
            rho = q if q <= 1.0 else 2.0 * np.sqrt(q) - 1.0
            want += lam[i, t] * (0.5 * (np.trace(cov @ prec[i, t]) - np.linalg.slogdet(cov)[1]) + rho)
    assert min(q_all) < 1.0 < max(q_all)                      # both branches are exercised
    assert training_objective(pol, obs, target, prec, lam, huber=1.0)[0] == pytest.approx(want, rel=1e-12)
    assert training_objective(pol, obs, target, prec, lam, huber=2 * max(q_all))[0] == pytest.approx(
        seed_objective(pol, obs, target, prec, lam), rel=1e-12)
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="huber"):
            training_objective(pol, obs, target, prec, lam, huber=bad)


def test_huber_residuals_bound_an_outlier_s_pull():
    """One relabelled sample with a target 100 action units off: least squares bends the linear fit towards
    it, the robust residuals mostly ignore it."""
    rng = np.random.default_rng(6)
    obs = rng.standard_normal((40, 5, 2))
    target = obs @ np.array([[1.0], [-2.0]]) + 0.5
    target[0, 0] += 100.0
    prec, lam = np.ones((5, 1, 1)), np.ones(5)
    errors = {}
    for huber in (None, 1.0):
        pol = GaussianMLPPolicy(2, 1, hidden_sizes=(), seed=0)
        train_policy(pol, obs, target, prec, lam, max_iterations=200, huber=huber)
        clean = np.ones(target.shape[:2], bool)
        clean[0, 0] = False
        errors[huber] = np.abs(pol.mean(obs[clean]) - target[clean]).max()
    assert errors[1.0] < 0.1 * errors[None]


@pytest.mark.parametrize("activation", ["softplus", "tanh"])
@pytest.mark.parametrize("per_sample", [True, False])
@pytest.mark.parametrize("robust", [False, True])
def test_objective_gradient_matches_finite_differences(activation, per_sample, robust):
    rng = np.random.default_rng(2)
    obs, target, prec, lam = small_problem(rng, per_sample=per_sample)
    pol = GaussianMLPPolicy(3, 2, hidden_sizes=(5, 4), activation=activation, init_std=0.7, seed=3)
    pol.set_normalization(rng.standard_normal(3), rng.uniform(0.5, 2, 3), rng.standard_normal(2),
                          rng.uniform(0.5, 2, 2))
    theta = pol.get_params() + 0.1 * rng.standard_normal(pol.n_params)  # biases and log_std non-zero too
    huber = None
    if robust:  # δ between the residuals' middle two: both branches of ρ, and no residual within h of δ
        pol.set_params(theta)
        r = target - pol.mean(obs.reshape(-1, 3)).reshape(target.shape)
        q = np.sort(0.5 * np.einsum("nti,ntij,ntj->nt", r, np.broadcast_to(prec, (*r.shape, 2)), r).ravel())
        huber = 0.5 * (q[len(q) // 2 - 1] + q[len(q) // 2])
        assert q[0] < huber < q[-1]
    F, grad = training_objective(pol, obs, target, prec, lam, theta, weight_decay=1e-2, huber=huber)
    h = 1e-6
    fd = np.empty_like(theta)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = h
        fd[j] = (training_objective(pol, obs, target, prec, lam, theta + e, weight_decay=1e-2, huber=huber)[0]
                 - training_objective(pol, obs, target, prec, lam, theta - e, weight_decay=1e-2, huber=huber)[0]
                 ) / (2 * h)
    assert np.abs(grad - fd).max() <= 1e-6 * np.abs(grad).max()
    assert np.all(np.abs(grad[-2:]) > 0)  # the log_std block is exercised, not trivially zero


@pytest.mark.parametrize("activation,hidden", [("softplus", (40, 40)), ("tanh", (6,)), ("relu", (7, 5)),
                                               ("softplus", ())])
def test_jacobian_matches_finite_differences(activation, hidden):
    rng = np.random.default_rng(4)
    pol = GaussianMLPPolicy(5, 3, hidden_sizes=hidden, activation=activation, seed=5)
    pol.set_normalization(rng.standard_normal(5), rng.uniform(0.5, 2, 5), rng.standard_normal(3),
                          rng.uniform(0.5, 2, 3))
    obs = rng.standard_normal((7, 5))
    J = pol.jacobian(obs)
    assert J.shape == (7, 3, 5)
    assert np.allclose(pol.jacobian(obs, block=3), J, rtol=1e-14, atol=0)  # blocks agree with one pass
    h = 1e-6
    fd = np.stack([(pol.mean(obs + h * e) - pol.mean(obs - h * e)) / (2 * h) for e in np.eye(5)], axis=-1)
    assert np.abs(J - fd).max() <= 1e-6 * np.abs(J).max()


def linear_problem(rng):
    """Random K (2, 4), k (2,) and a sampler of 4-d observations with unequal scales and offsets."""
    dO, dU = 4, 2
    scale, shift = np.array([1.0, 2.0, 0.5, 3.0]), np.array([0.0, 1.0, 2.0, -1.0])
    K, k = rng.standard_normal((dU, dO)), rng.standard_normal(dU)
    states = lambda *shape: rng.standard_normal((*shape, dO)) * scale + shift
    return K, k, states


def test_recovers_linear_gaussian_target():
    rng = np.random.default_rng(6)
    K, k, states = linear_problem(rng)
    T, dU = 30, 2
    obs = states(10, T)
    prec = np.broadcast_to(random_spd(rng, dU), (T, dU, dU))
    pol = GaussianMLPPolicy(4, dU, seed=0)
    res = train_policy(pol, obs, obs @ K.T + k, prec, np.full(T, 0.3), max_iterations=1000)
    fresh = states(2000)
    fresh = fresh[np.all(np.abs(fresh - obs.reshape(-1, 4).mean(0)) < 2 * obs.reshape(-1, 4).std(0), axis=1)]
    want = fresh @ K.T + k
    rel_rms = np.sqrt(((pol.mean(fresh) - want) ** 2).mean(axis=0)) / want.std(axis=0)
    assert np.all(rel_rms < 5e-3), rel_rms  # 0.5 % of the action spread on fresh states (NN fit of a line)
    # Covariance: σ_j² = Σλ / Σ λ P_jj (constant λ and P: 1 / P_jj), independent of the network fit.
    assert np.allclose(pol.covariance(), np.diag(1.0 / np.diag(prec[0])), rtol=1e-13, atol=0)
    assert res.objective < res.initial_objective and res.n_samples == 300


def test_closed_form_covariance_is_the_minimiser():
    """With time-varying λ and precisions the σ of train_policy is where L's log-std gradient vanishes and
    what a direct numerical minimisation of L over log σ (network fixed) finds."""
    rng = np.random.default_rng(7)
    obs, target, prec, lam = small_problem(rng, N=4, T=6, dU=3)
    pol = GaussianMLPPolicy(3, 3, hidden_sizes=(8,), seed=1)
    train_policy(pol, obs, target, prec, lam, max_iterations=5)
    _, grad = training_objective(pol, obs, target, prec, lam)
    D = np.einsum("nt,ntjj->j", lam, prec)
    assert np.abs(grad[-3:]).max() <= 1e-10 * D.max()
    theta = pol.get_params()

    def over_log_std(s):
        th = theta.copy()
        th[-3:] = s
        F, g = training_objective(pol, obs, target, prec, lam, th)
        return F, g[-3:]

    direct = scipy.optimize.minimize(over_log_std, np.zeros(3), jac=True, method="BFGS", tol=1e-12).x
    assert np.allclose(pol.log_std, direct, atol=1e-6)
    assert np.allclose(np.exp(2 * pol.log_std), lam.sum() / D, rtol=1e-13)


def test_fixed_std_sets_sigma_and_leaves_the_mean_fit_unchanged():
    """The covariance and mean parts of L share no parameter, so fixing σ changes σ only."""
    rng = np.random.default_rng(8)
    obs, target, prec, lam = small_problem(rng, N=4, T=6, dU=3)
    fitted, fixed = (GaussianMLPPolicy(3, 3, hidden_sizes=(8,), seed=2) for _ in range(2))
    train_policy(fitted, obs, target, prec, lam, max_iterations=20)
    train_policy(fixed, obs, target, prec, lam, max_iterations=20, fixed_std=0.7)
    np.testing.assert_array_equal(fixed.log_std, np.log(np.full(3, 0.7)))
    assert not np.allclose(fitted.log_std, fixed.log_std)
    n = fixed.n_params - 3
    np.testing.assert_allclose(fixed.get_params()[:n], fitted.get_params()[:n], rtol=1e-12, atol=1e-14)


def test_zero_weight_steps_do_not_influence_fit():
    rng = np.random.default_rng(8)
    K, k, states = linear_problem(rng)
    T, dU = 12, 2
    obs = states(6, T)
    target = obs @ K.T + k
    zero = np.arange(T) % 2 == 1
    conflicting = target.copy()
    conflicting[:, zero] = -5.0 * target[:, zero] + 40.0
    prec = random_spd(rng, dU, (T,))
    lam = np.where(zero, 0.0, 1.0)
    fits = []
    for o, m, P, w in ((obs, conflicting, prec, lam),  # conflicting targets at λ = 0 steps
                       (obs[:, ~zero], target[:, ~zero], prec[~zero], lam[~zero])):  # those steps removed
        pol = GaussianMLPPolicy(4, dU, seed=2)
        train_policy(pol, o, m, P, w, max_iterations=60)
        fits.append(pol)
    probe = states(200)
    assert np.allclose(fits[0].mean(probe), fits[1].mean(probe), rtol=0, atol=1e-6 * np.abs(target).max())
    assert np.array_equal(fits[0].log_std, fits[1].log_std)
    # Control: the same conflicting targets with λ > 0 do change the fit (the comparison above can fail).
    pol = GaussianMLPPolicy(4, dU, seed=2)
    train_policy(pol, obs, conflicting, prec, np.ones(T), max_iterations=60)
    assert np.abs(pol.mean(probe) - fits[1].mean(probe)).max() > 1.0


def test_act_has_policy_covariance():
    rng = np.random.default_rng(9)
    pol = GaussianMLPPolicy(4, 3, seed=1)
    pol.log_std[...] = np.log([0.5, 2.0, 1.3])
    n = 40000
    x = np.tile(rng.standard_normal(4), (n, 1))
    u = pol.act(x, 0, np.random.default_rng(10).standard_normal((n, 3)))
    mu, sd = pol.mean(x[:1])[0], pol.std()
    # Standard errors of the sample mean, variance and covariance of a Gaussian; 5 of them is the tolerance.
    assert np.all(np.abs(u.mean(0) - mu) < 5 * sd / np.sqrt(n))
    S = np.cov(u, rowvar=False)
    se = np.sqrt((np.outer(sd ** 2, sd ** 2) + np.diag(sd ** 4)) / (n - 1))
    assert np.all(np.abs(S - pol.covariance()) < 5 * se)
    # Zero noise gives the mean; the sampler's Policy protocol is satisfied.
    assert np.array_equal(pol.act(x[:2], 5, np.zeros((2, 3))), pol.mean(x[:2]))


def test_is_a_sampler_policy():
    sampling = pytest.importorskip("gpsx.sampling")
    pol = GaussianMLPPolicy(4, 3)
    assert isinstance(pol, sampling.Policy) and sampling.as_policy(pol) is pol


def test_log_likelihood_matches_scipy():
    rng = np.random.default_rng(11)
    pol = GaussianMLPPolicy(4, 3, seed=2)
    pol.log_std[...] = rng.standard_normal(3)
    obs, u = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    mu = pol.mean(obs)
    want = [scipy.stats.multivariate_normal(mu[i], pol.covariance()).logpdf(u[i]) for i in range(6)]
    assert np.allclose(pol.log_likelihood(obs, u), want, rtol=1e-13, atol=1e-13)


def test_arrays_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(12)
    obs, target, prec, lam = small_problem(rng, N=2, T=5)
    pol = GaussianMLPPolicy(3, 2, hidden_sizes=(6, 5), activation="tanh", seed=4)
    train_policy(pol, obs, target, prec, lam, max_iterations=10)
    np.savez(tmp_path / "p.npz", **pol.to_arrays())
    with np.load(tmp_path / "p.npz", allow_pickle=False) as f:
        back = GaussianMLPPolicy.from_arrays(dict(f))
    a, b = pol.to_arrays(), back.to_arrays()
    assert a.keys() == b.keys() and all(np.array_equal(a[key], b[key]) for key in a)
    assert back.activation == "tanh" and back.hidden_sizes == (6, 5) and back.fitted
    x = rng.standard_normal((4, 3))
    assert np.array_equal(back.mean(x), pol.mean(x)) and np.array_equal(back.jacobian(x), pol.jacobian(x))
    del a["theta"]
    with pytest.raises(CheckpointError, match="theta"):
        GaussianMLPPolicy.from_arrays(a)


def test_params_flat_vector():
    pol = GaussianMLPPolicy(3, 2, hidden_sizes=(4,))
    assert pol.n_params == 3 * 4 + 4 + 4 * 2 + 2 + 2
    theta = np.arange(pol.n_params, dtype=float)
    pol.set_params(theta)
    assert np.array_equal(pol.get_params(), theta)
    assert np.array_equal(pol.weights[0], theta[:12].reshape(3, 4)) and np.array_equal(pol.log_std, theta[-2:])
    assert pol.weight_mask().sum() == 3 * 4 + 4 * 2


def test_warm_start_keeps_weights_and_cold_start_is_seeded():
    rng = np.random.default_rng(13)
    K, k, states = linear_problem(rng)
    T, dU = 8, 2
    prec = np.broadcast_to(np.eye(dU), (T, dU, dU))
    obs_a, obs_b = states(5, T), 3.0 * states(5, T) + 2.0  # the state distribution moves between iterations
    pol = GaussianMLPPolicy(4, dU, seed=3)
    train_policy(pol, obs_a, obs_a @ K.T + k, prec, np.ones(T), max_iterations=30)
    before = GaussianMLPPolicy.from_arrays(pol.to_arrays())
    # A warm start begins from the previous fit's weights, renormalised to the new data: its initial objective
    # is L of those weights under the new data's statistics (and the closed-form σ, which train_policy sets first).
    res = train_policy(pol, obs_b, obs_b @ K.T + k, prec, np.ones(T), max_iterations=5)
    o = obs_b.reshape(-1, 4)
    a = (obs_b @ K.T + k).reshape(-1, dU)
    before.set_normalization(o.mean(0), o.std(0), a.mean(0), a.std(0))
    before.log_std[...] = 0.0  # closed form for P = I, λ = 1: σ² = 1
    assert res.initial_objective == pytest.approx(
        training_objective(before, obs_b, obs_b @ K.T + k, prec, np.ones(T))[0], rel=1e-10)
    # A cold start from a seed ignores the current weights and is reproducible.
    fits = []
    for start in (pol, GaussianMLPPolicy(4, dU, seed=99)):
        train_policy(start, obs_b, obs_b @ K.T + k, prec, np.ones(T), max_iterations=5, seed=7)
        fits.append(start.get_params())
    assert np.array_equal(fits[0], fits[1])


def test_weight_decay_shrinks_weights():
    rng = np.random.default_rng(14)
    obs, target, prec, lam = small_problem(rng, N=4, T=10)
    norms = []
    for alpha in (0.0, 1e-1):
        pol = GaussianMLPPolicy(3, 2, hidden_sizes=(10,), seed=0)
        train_policy(pol, obs, target, prec, lam, max_iterations=200, weight_decay=alpha)
        norms.append(np.linalg.norm(pol.get_params()[pol.weight_mask()]))
    assert norms[1] < 0.5 * norms[0]


def test_reports_result():
    rng = np.random.default_rng(15)
    obs, target, prec, lam = small_problem(rng)
    pol = GaussianMLPPolicy(3, 2, hidden_sizes=(5,), seed=0)
    res = train_policy(pol, obs, target, prec, lam, max_iterations=3)
    assert res.iterations == 3 and not res.converged and res.wall_time > 0 and res.evaluations >= 3
    assert res.objective == pytest.approx(training_objective(pol, obs, target, prec, lam)[0], rel=1e-12)
    linear = GaussianMLPPolicy(3, 2, hidden_sizes=())  # convex least squares: L-BFGS meets its tolerance
    res = train_policy(linear, obs, target, prec, lam, max_iterations=500)
    assert res.converged and res.iterations < 500


@pytest.mark.parametrize("case,error,name", [
    ("obs_dim", ShapeError, "obs"),
    ("target_T", ShapeError, "target_mean"),
    ("prec_shape", ShapeError, "target_precision"),
    ("lam_shape", ShapeError, "weights"),
    ("obs_nan", NonFiniteError, "obs[t=2]"),
    ("target_inf", NonFiniteError, "target_mean[t=1]"),
    ("prec_nan", NonFiniteError, "target_precision[t=3]"),
    ("prec_asym", NotSymmetricError, "target_precision[t=0]"),
    ("lam_negative", GPSXError, "weights[t=1]"),
    ("lam_zero", GPSXError, "weights"),
])
def test_training_input_errors_name_the_array(case, error, name):
    rng = np.random.default_rng(16)
    obs, target, prec, lam = small_problem(rng, N=2, T=4, per_sample=False)
    if case == "obs_dim":
        obs = obs[..., :2]
    elif case == "target_T":
        target = target[:, :3]
    elif case == "prec_shape":
        prec = prec[:, :1]
    elif case == "lam_shape":
        lam = lam[:3]
    elif case == "obs_nan":
        obs[1, 2, 0] = np.nan
    elif case == "target_inf":
        target[0, 1, 1] = np.inf
    elif case == "prec_nan":
        prec[3, 0, 0] = np.nan
    elif case == "prec_asym":
        prec[0, 0, 1] += 1.0
    elif case == "lam_negative":
        lam[1] = -1.0
    elif case == "lam_zero":
        lam[:] = 0.0
    pol = GaussianMLPPolicy(3, 2, hidden_sizes=(4,))
    with pytest.raises(error) as info:
        train_policy(pol, obs, target, prec, lam, max_iterations=2)
    assert str(info.value).startswith(name + ":")


def test_policy_input_errors_name_the_array():
    pol = GaussianMLPPolicy(3, 2)
    with pytest.raises(ShapeError, match="^obs:"):
        pol.mean(np.zeros((4, 2)))
    with pytest.raises(NonFiniteError, match="^x:"):
        pol.act(np.full((1, 3), np.nan), 0, np.zeros((1, 2)))
    with pytest.raises(ShapeError, match="^noise:"):
        pol.act(np.zeros((2, 3)), 0, np.zeros((1, 2)))
    with pytest.raises(ShapeError, match="^u:"):
        pol.log_likelihood(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ShapeError, match="^theta:"):
        pol.set_params(np.zeros(pol.n_params + 1))
    with pytest.raises(NonFiniteError, match="^theta:"):
        pol.set_params(np.full(pol.n_params, np.inf))
    obs, target, prec, lam = small_problem(np.random.default_rng(17), per_sample=False)
    with pytest.raises(ValueError, match="weight_decay"):
        train_policy(GaussianMLPPolicy(3, 2), obs, target, prec, lam, weight_decay=-1.0)


def test_warm_start_still_trains_after_the_states_spread_out():
    """The octopus case: the first iteration's states barely vary, later ones spread 100× wider. The warm start
    must train as well as a fresh network does (rescaling the weights to keep μ^π would saturate the units)."""
    rng = np.random.default_rng(15)
    K, k, states = linear_problem(rng)
    T, dU = 20, 2
    prec = np.broadcast_to(np.eye(dU), (T, dU, dU))
    centre = states(1)[0]
    narrow = centre + 0.01 * (states(5, T) - centre)
    wide = states(5, T)
    target = lambda obs: np.tanh(obs @ K.T + k)
    warm = GaussianMLPPolicy(4, dU, seed=0)
    train_policy(warm, narrow, target(narrow), prec, np.ones(T), max_iterations=50)
    objective = {}
    for name, pol in (("warm", warm), ("fresh", GaussianMLPPolicy(4, dU, seed=1))):
        objective[name] = train_policy(pol, wide, target(wide), prec, np.ones(T), max_iterations=200).objective
    # L's covariance part ½ Σ_j (σ_j² D_j − W log σ_j²) at σ² = W/D = 1 (P = I, λ = 1); the rest is least squares
    covariance_part = 0.5 * dU * wide.shape[0] * T
    excess = {name: value - covariance_part for name, value in objective.items()}
    assert excess["warm"] < 2.0 * excess["fresh"] + 1e-3, objective
