"""The public numerics API: optimality of the DP, KL formulas against brute force, the η search."""
import numpy as np
import pytest
from scipy.optimize import minimize

import gpsx
from gpsx import _backend
from gpsx.lqr import ETA_MIN
from gpsx.synthetic import random_problem


# --- brute-force references -------------------------------------------------------------------------

def trajectory_gaussian(dyn, ctrl):
    """Joint Gaussian of (x_0, u_0, ..., x_{T-1}, u_{T-1}), built as an affine map of independent noise."""
    T, dX, dU = dyn.T, dyn.dX, dyn.dU
    n_noise = dX + T * dU + (T - 1) * dX

    def sqrtm(S):
        w, U = np.linalg.eigh(S)
        return U * np.sqrt(np.maximum(w, 0.0))

    A_x, b_x = np.zeros((dX, n_noise)), dyn.x0_mean.copy()
    A_x[:, :dX] = sqrtm(dyn.x0_cov)
    col = dX
    rows_A, rows_b = [], []
    for t in range(T):
        A_u = ctrl.K[t] @ A_x
        A_u[:, col:col + dU] += np.linalg.cholesky(ctrl.cov[t])
        b_u = ctrl.K[t] @ b_x + ctrl.k[t]
        col += dU
        rows_A += [A_x, A_u]
        rows_b += [b_x, b_u]
        if t < T - 1:
            Fx, Fu = dyn.F[t][:, :dX], dyn.F[t][:, dX:]
            A_next = Fx @ A_x + Fu @ A_u
            A_next[:, col:col + dX] += sqrtm(dyn.cov[t])
            b_x = Fx @ b_x + Fu @ b_u + dyn.f[t]
            A_x = A_next
            col += dX
    A, b = np.vstack(rows_A), np.concatenate(rows_b)
    return b, A @ A.T


def gaussian_kl(m1, S1, m2, S2):
    """KL(N(m1, S1) ‖ N(m2, S2))."""
    d = m2 - m1
    S2_inv_S1 = np.linalg.solve(S2, S1)
    return 0.5 * (np.trace(S2_inv_S1) + d @ np.linalg.solve(S2, d) - len(m1)
                  + np.linalg.slogdet(S2)[1] - np.linalg.slogdet(S1)[1])


def controller_params(ctrl):
    """Flat (K, k, log-Cholesky of C) parameters, the coordinates of the direct minimiser."""
    T, dU = ctrl.T, ctrl.dU
    tri = np.tril_indices(dU)
    L = np.linalg.cholesky(ctrl.cov)
    L[:, np.arange(dU), np.arange(dU)] = np.log(L[:, np.arange(dU), np.arange(dU)])
    return np.concatenate([ctrl.K.ravel(), ctrl.k.ravel(), L[:, tri[0], tri[1]].ravel()])


def controller_from(theta, T, dX, dU):
    tri = np.tril_indices(dU)
    i = T * dU * dX
    K, k = theta[:i].reshape(T, dU, dX), theta[i:i + T * dU].reshape(T, dU)
    L = np.zeros((T, dU, dU))
    L[:, tri[0], tri[1]] = theta[i + T * dU:].reshape(T, -1)
    L[:, np.arange(dU), np.arange(dU)] = np.exp(L[:, np.arange(dU), np.arange(dU)])
    return gpsx.LinearGaussianController(K, k, L @ np.swapaxes(L, 1, 2))


def direct_minimum(problem, eta, lam):
    """Minimise gps_objective over all controller parameters with BFGS and central-difference gradients."""
    T, dX, dU = problem.dyn.T, problem.dyn.dX, problem.dyn.dU

    def J(theta):
        return gpsx.gps_objective(problem.dyn, problem.cost, controller_from(theta, T, dX, dU), problem.prev,
                                  eta, problem.policy, lam)

    def grad(theta, h=1e-6):
        g = np.empty_like(theta)
        for i in range(len(theta)):
            e = np.zeros_like(theta)
            e[i] = h
            g[i] = (J(theta + e) - J(theta - e)) / (2 * h)
        return g

    res = minimize(J, controller_params(problem.prev), jac=grad, method="BFGS",
                   options=dict(gtol=1e-9, maxiter=2000))
    return controller_from(res.x, T, dX, dU), res.fun


# --- optimality --------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed, lam", [(5, [0.5, 2.0, 5.0]), (6, [10.0, 10.0, 10.0]), (7, [0.1, 0.9, 1.0])])
def test_gps_backward_is_the_minimiser_and_one_sweep_is_not(seed, lam):
    problem = random_problem(3, 3, 2, seed=seed)
    eta, lam = 1.0, np.array(lam)
    dp = gpsx.backward(problem.dyn, problem.cost, problem.prev, eta, problem.policy, lam)
    best, J_best = direct_minimum(problem, eta, lam)
    J_dp = gpsx.gps_objective(problem.dyn, problem.cost, dp, problem.prev, eta, problem.policy, lam)
    assert J_dp == pytest.approx(J_best, abs=1e-8)
    assert J_dp <= J_best + 1e-10
    for a, b in ((dp.K, best.K), (dp.k, best.k), (dp.cov, best.cov)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.warns(gpsx.ConvergenceWarning):
        one = gpsx.backward(problem.dyn, problem.cost, problem.prev, eta, problem.policy, lam, max_sweeps=1)
    J_one = gpsx.gps_objective(problem.dyn, problem.cost, one, problem.prev, eta, problem.policy, lam)
    assert J_one - J_dp > 1e-6


def test_lqr_backward_is_the_minimiser():
    problem = random_problem(3, 3, 2, seed=11)
    dp = gpsx.backward(problem.dyn, problem.cost, problem.prev, 0.5)
    best, J_best = direct_minimum(problem, 0.5, None)
    J_dp = gpsx.gps_objective(problem.dyn, problem.cost, dp, problem.prev, 0.5)
    assert J_dp == pytest.approx(J_best, abs=1e-8)
    np.testing.assert_allclose(dp.K, best.K, atol=1e-5)
    np.testing.assert_allclose(dp.cov, best.cov, atol=1e-5)


def test_zero_lambda_is_the_plain_pass():
    problem = random_problem(8, 4, 2, seed=2)
    plain = gpsx.backward(problem.dyn, problem.cost, problem.prev, 2.0)
    zero = gpsx.backward(problem.dyn, problem.cost, problem.prev, 2.0, problem.policy, np.zeros(8))
    np.testing.assert_array_equal(plain.K, zero.K)


# --- KL formulas against joint Gaussians of whole trajectories ----------------------------------------

@pytest.mark.parametrize("T, dX, dU", [(1, 2, 1), (4, 3, 2), (6, 5, 3)])
def test_trajectory_kl_matches_joint_gaussian_kl(T, dX, dU):
    problem = random_problem(T, dX, dU, seed=T + dX)
    new = gpsx.backward(problem.dyn, problem.cost, problem.prev, 1.0)
    per_step = gpsx.trajectory_kl(problem.dyn, new, problem.prev)
    m1, S1 = trajectory_gaussian(problem.dyn, new)
    m2, S2 = trajectory_gaussian(problem.dyn, problem.prev)
    assert per_step.sum() == pytest.approx(gaussian_kl(m1, S1, m2, S2), rel=1e-9)


@pytest.mark.parametrize("T, dX, dU", [(1, 2, 1), (5, 4, 2)])
def test_policy_kl_matches_joint_gaussian_kl(T, dX, dU):
    problem = random_problem(T, dX, dU, seed=3 * T + dU)
    ctrl, pi = problem.prev, problem.policy
    marg = gpsx.forward(problem.dyn, ctrl)
    per_step = gpsx.policy_kl(problem.dyn, ctrl, pi)
    for t in range(T):
        x, S = marg.mean[t, :dX], marg.cov[t, :dX, :dX]
        mean = np.concatenate([x, pi.K[t] @ x + pi.k[t]])
        KS = pi.K[t] @ S
        cov = np.block([[S, KS.T], [KS, KS @ pi.K[t].T + pi.cov[t]]])
        assert per_step[t] == pytest.approx(gaussian_kl(mean, cov, marg.mean[t], marg.cov[t]), rel=1e-9)


def test_forward_marginals_match_joint_gaussian():
    problem = random_problem(5, 3, 2, seed=9)
    marg = gpsx.forward(problem.dyn, problem.prev)
    m, S = trajectory_gaussian(problem.dyn, problem.prev)
    n = 5
    for t in range(5):
        np.testing.assert_allclose(marg.mean[t], m[t * n:(t + 1) * n], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(marg.cov[t], S[t * n:(t + 1) * n, t * n:(t + 1) * n], rtol=1e-10, atol=1e-12)


def test_expected_cost_matches_monte_carlo():
    problem = random_problem(4, 3, 2, seed=4)
    marg = gpsx.forward(problem.dyn, problem.prev)
    rng = np.random.default_rng(0)
    z = np.stack([rng.multivariate_normal(marg.mean[t], marg.cov[t], size=200_000) for t in range(4)], axis=1)
    mc = problem.cost.evaluate(z)
    exact = gpsx.expected_cost(marg, problem.cost)
    np.testing.assert_allclose(exact, mc.mean(axis=0), atol=5 * mc.std(axis=0).max() / np.sqrt(200_000))


# --- the η search --------------------------------------------------------------------------------------

@pytest.mark.parametrize("lam", [None, 0.5])
@pytest.mark.parametrize("T, dX, dU", [(20, 6, 2), (50, 12, 4)])
def test_optimize_trajectory_meets_the_kl_bound(T, dX, dU, lam):
    problem = random_problem(T, dX, dU, seed=T * dU)
    bound = 0.2 * T
    res = gpsx.optimize_trajectory(problem.dyn, problem.cost, problem.prev, bound, policy=problem.policy, lam=lam)
    assert abs(res.kl - bound) <= 0.1 * bound
    assert res.kl == pytest.approx(gpsx.trajectory_kl(problem.dyn, res.controller, problem.prev).sum(), rel=1e-9)
    assert ETA_MIN < res.eta < 1e16
    assert res.passes >= 1 and res.sweeps >= res.passes - 0


def test_optimize_trajectory_stops_at_the_lower_eta_limit():
    problem = random_problem(10, 4, 2, seed=1)
    res = gpsx.optimize_trajectory(problem.dyn, problem.cost, problem.prev, 1e6)
    assert res.eta == ETA_MIN and res.kl < 1e6


def test_compiled_and_numpy_searches_agree():
    problem = random_problem(30, 6, 3, seed=8)
    with _backend.use("compiled"):
        a = gpsx.optimize_trajectory(problem.dyn, problem.cost, problem.prev, 6.0, policy=problem.policy, lam=0.3)
    with _backend.use("numpy"):
        b = gpsx.optimize_trajectory(problem.dyn, problem.cost, problem.prev, 6.0, policy=problem.policy, lam=0.3)
    assert (a.eta, a.passes) == (b.eta, b.passes)
    np.testing.assert_allclose(a.controller.K, b.controller.K, rtol=1e-8, atol=1e-10)


def indefinite_cost(problem, t, curvature):
    C = problem.cost.C.copy()
    dX = problem.dyn.dX
    C[t, dX:, dX:] = -curvature * np.eye(problem.dyn.dU)
    C[t, dX:, :dX] = C[t, :dX, dX:] = 0.0
    return gpsx.QuadraticCost(C, problem.cost.c)


def test_non_pd_q_uu_is_recovered_by_raising_eta():
    problem = random_problem(20, 4, 2, seed=3)
    cost = indefinite_cost(problem, 7, 2.0)
    with pytest.raises(gpsx.NotPositiveDefiniteError) as info:
        gpsx.backward(problem.dyn, cost, problem.prev, 1e-3)
    assert info.value.t == 7
    res = gpsx.optimize_trajectory(problem.dyn, cost, problem.prev, 0.2 * 20, eta0=1e-3)
    assert res.passes > res.sweeps            # some passes failed and were retried at a larger η
    assert abs(res.kl - 4.0) <= 0.4 or res.eta == ETA_MIN
    assert np.isfinite(res.controller.K).all()


def test_persistent_non_pd_raises_with_diagnostics():
    problem = random_problem(10, 3, 2, seed=4)
    cost = indefinite_cost(problem, 4, 1e30)
    with pytest.raises(gpsx.NotPositiveDefiniteError) as info:
        gpsx.optimize_trajectory(problem.dyn, cost, problem.prev, 2.0)
    assert info.value.t == 4
    assert "t=4" in str(info.value) and "C_uu" in str(info.value)


def test_optimize_trajectory_stops_when_even_the_upper_eta_limit_is_too_loose(monkeypatch):
    # A KL that no η brings under the bound (as unstable fitted dynamics can make it, by blowing up the
    # marginals): the search says so once it reaches η = 1e16 instead of repeating that pass MAX_PASSES times.
    problem = random_problem(10, 4, 2, seed=2)
    kl = gpsx.lqr._Problem.kl
    monkeypatch.setattr(gpsx.lqr._Problem, "kl", lambda self, *a: kl(self, *a) + 1.0)   # KL ≥ T = 10 always
    with pytest.warns(gpsx.ConvergenceWarning, match="cannot be met"):
        res = gpsx.optimize_trajectory(problem.dyn, problem.cost, problem.prev, 5.0)
    assert res.eta == 1e16 and res.passes == 17          # η = 1, 10, ..., 1e16
    np.testing.assert_allclose(res.controller.K, problem.prev.K, rtol=1e-6, atol=1e-9)
