"""Bad input gives a clear gpsx error (naming the array and the time step) or a correct result; never a crash."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpsx
from gpsx.synthetic import random_problem

T, dX, dU = 6, 4, 2


@pytest.fixture
def problem():
    return random_problem(T, dX, dU, seed=0)


def controller_arrays(ctrl):
    return dict(K=ctrl.K.copy(), k=ctrl.k.copy(), cov=ctrl.cov.copy())


def dynamics_arrays(dyn):
    return dict(F=dyn.F.copy(), f=dyn.f.copy(), cov=dyn.cov.copy(), x0_mean=dyn.x0_mean.copy(),
                x0_cov=dyn.x0_cov.copy())


@pytest.mark.parametrize("name", ["K", "k", "cov"])
def test_controller_nan_names_array_and_step(problem, name):
    arrays = controller_arrays(problem.prev)
    arrays[name][3] = np.nan
    with pytest.raises(gpsx.NonFiniteError) as info:
        gpsx.LinearGaussianController(**arrays)
    assert info.value.array == name and info.value.t == 3
    assert f"{name}[t=3]" in str(info.value)


def test_controller_rejects_non_symmetric_and_non_pd(problem):
    arrays = controller_arrays(problem.prev)
    arrays["cov"][2, 0, 1] += 1.0
    with pytest.raises(gpsx.NotSymmetricError) as info:
        gpsx.LinearGaussianController(**arrays)
    assert info.value.t == 2
    arrays = controller_arrays(problem.prev)
    arrays["cov"][4] = -np.eye(dU)
    with pytest.raises(gpsx.NotPositiveDefiniteError) as info:
        gpsx.LinearGaussianController(**arrays)
    assert info.value.t == 4 and isinstance(info.value, np.linalg.LinAlgError)


def test_singular_covariance_is_not_pd(problem):
    arrays = controller_arrays(problem.prev)
    arrays["cov"][1] = np.ones((dU, dU))            # rank one
    with pytest.raises(gpsx.NotPositiveDefiniteError):
        gpsx.LinearGaussianController(**arrays)


@pytest.mark.parametrize("name, shape", [("K", (T, dU)), ("k", (T + 1, dU)), ("cov", (T, dU, dU + 1))])
def test_controller_shape_errors(problem, name, shape):
    arrays = controller_arrays(problem.prev)
    arrays[name] = np.zeros(shape)
    with pytest.raises(gpsx.ShapeError) as info:
        gpsx.LinearGaussianController(**arrays)
    assert info.value.array == name


@pytest.mark.parametrize("dtype", [np.complex128, np.bool_, object])
def test_lossy_dtypes_are_rejected(problem, dtype):
    arrays = controller_arrays(problem.prev)
    arrays["k"] = arrays["k"].astype(dtype)
    with pytest.raises(gpsx.DTypeError):
        gpsx.LinearGaussianController(**arrays)


def test_dynamics_errors(problem):
    arrays = dynamics_arrays(problem.dyn)
    arrays["cov"][2] = -np.eye(dX)
    with pytest.raises(gpsx.NotPositiveDefiniteError) as info:
        gpsx.LinearGaussianDynamics(**arrays)
    assert info.value.t == 2
    arrays = dynamics_arrays(problem.dyn)
    arrays["x0_mean"][1] = np.inf
    with pytest.raises(gpsx.NonFiniteError, match="x0_mean"):
        gpsx.LinearGaussianDynamics(**arrays)
    arrays = dynamics_arrays(problem.dyn)
    arrays["f"] = arrays["f"][:, :-1]
    with pytest.raises(gpsx.ShapeError, match="f"):
        gpsx.LinearGaussianDynamics(**arrays)


def test_lossless_conversions_give_identical_results(problem):
    """Integer, float32, Fortran-ordered and strided inputs are converted; the result is unchanged."""
    d, c, p = problem.dyn, problem.cost, problem.prev
    base = gpsx.backward(d, c, p, 1.0)
    wide = np.zeros((T, dU, 2 * dX))
    wide[:, :, ::2] = p.K                                  # a strided view of K
    dyn_f = gpsx.LinearGaussianDynamics(np.asfortranarray(d.F), d.f, d.cov, d.x0_mean, d.x0_cov)
    cost32 = gpsx.QuadraticCost(np.round(c.C * 4).astype(np.int64) / 4, c.c.astype(np.float32).astype(np.float64))
    prev_strided = gpsx.LinearGaussianController(wide[:, :, ::2], p.k, p.cov)
    got = gpsx.backward(dyn_f, c, prev_strided, 1.0)
    np.testing.assert_array_equal(got.K, base.K)
    # float32 and integer arrays are accepted and converted exactly
    ctrl32 = gpsx.LinearGaussianController(p.K.astype(np.float32), p.k.astype(np.float32), np.eye(dU, dtype=np.int32)[None].repeat(T, 0))
    assert ctrl32.K.dtype == np.float64 and np.array_equal(ctrl32.K, p.K.astype(np.float32))
    gpsx.backward(d, cost32, ctrl32, 1.0)


def test_api_argument_errors(problem):
    d, c, p, pi = problem.dyn, problem.cost, problem.prev, problem.policy
    other = random_problem(T, dX + 1, dU, seed=1).prev
    with pytest.raises(gpsx.ShapeError, match="prev"):
        gpsx.backward(d, c, other, 1.0)
    for eta in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(gpsx.GPSXError, match="eta"):
            gpsx.backward(d, c, p, eta)
    with pytest.raises(gpsx.ShapeError, match="lam"):
        gpsx.backward(d, c, p, 1.0, pi, -np.ones(T))
    with pytest.raises(gpsx.ShapeError, match="lam"):
        gpsx.backward(d, c, p, 1.0, pi, np.ones(T + 1))
    with pytest.raises(gpsx.NonFiniteError, match="lam"):
        gpsx.backward(d, c, p, 1.0, pi, np.full(T, np.nan))
    with pytest.raises(gpsx.ShapeError, match="policy"):
        gpsx.backward(d, c, p, 1.0, None, np.ones(T))
    with pytest.raises(gpsx.GPSXError, match="kl_bound"):
        gpsx.optimize_trajectory(d, c, p, -1.0)
    short_cost = gpsx.QuadraticCost(c.C[:-1], c.c[:-1])
    with pytest.raises(gpsx.ShapeError, match="cost"):
        gpsx.optimize_trajectory(d, short_cost, p, 1.0)


CORRUPTIONS = ["nan", "inf", "huge", "transpose", "drop_step", "negate", "float32", "int", "fortran", "zero"]


@settings(max_examples=150, deadline=None)
@given(target=st.sampled_from(["F", "f", "dyn_cov", "x0_mean", "x0_cov", "C", "c", "K", "k", "cov"]),
       corruption=st.sampled_from(CORRUPTIONS), t=st.integers(0, T - 2), seed=st.integers(0, 1000),
       lam=st.sampled_from([None, 0.7]))
def test_fuzz_boundary(target, corruption, t, seed, lam):
    """Any single corruption: either a gpsx error at construction/solve time, or a finite, valid result."""
    problem = random_problem(T, dX, dU, seed=seed)
    d, c, p = problem.dyn, problem.cost, problem.prev
    arrays = {"F": d.F, "f": d.f, "dyn_cov": d.cov, "x0_mean": d.x0_mean, "x0_cov": d.x0_cov, "C": c.C,
              "c": c.c, "K": p.K, "k": p.k, "cov": p.cov}
    arrays = {k: v.copy() for k, v in arrays.items()}
    a = arrays[target]
    idx = (t,) if a.ndim >= 2 and target not in ("x0_cov",) else ()
    if corruption == "nan":
        a[idx] = np.nan
    elif corruption == "inf":
        a[idx] = np.inf
    elif corruption == "huge":
        a[idx] = 1e300
    elif corruption == "transpose":
        arrays[target] = a.T.copy()
    elif corruption == "drop_step":
        arrays[target] = a[:-1].copy()
    elif corruption == "negate":
        a[idx] = -a[idx]
    elif corruption == "float32":
        arrays[target] = a.astype(np.float32)
    elif corruption == "int":
        arrays[target] = np.round(a).astype(np.int64)
    elif corruption == "fortran":
        arrays[target] = np.asfortranarray(a)
    elif corruption == "zero":
        a[idx] = 0.0
    try:
        dyn = gpsx.LinearGaussianDynamics(arrays["F"], arrays["f"], arrays["dyn_cov"], arrays["x0_mean"],
                                          arrays["x0_cov"])
        cost = gpsx.QuadraticCost(arrays["C"], arrays["c"])
        prev = gpsx.LinearGaussianController(arrays["K"], arrays["k"], arrays["cov"])
        res = gpsx.optimize_trajectory(dyn, cost, prev, 1.0, policy=problem.policy, lam=lam)
    except gpsx.GPSXError as exc:
        assert exc.array is not None and exc.array in str(exc), f"error does not name the array: {exc}"
        return
    assert np.isfinite(res.controller.K).all() and np.isfinite(res.kl)
    assert np.isfinite(res.marginals.cov).all()
