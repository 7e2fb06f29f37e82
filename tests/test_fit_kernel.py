"""The conditional-fit kernel (``conditional_fit``, used by every local-model fit) against its numpy twin."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dispatch import PATHS, on_path
from gpsx import reference



def fit_inputs(T, R, n_in, n_out, seed, prior=False, collinear_from=None):
    """Rows R_t, and for the prior case a PD base matrix per step, plus the kernel's output arrays."""
    rng = np.random.default_rng(seed)
    n = n_in + n_out
    rows = rng.standard_normal((T, R, n)) * rng.uniform(0.1, 10.0, n)
    rows[:, :, n_in:] += rows[:, :, :n_in] @ rng.standard_normal((n_in, n_out))   # outputs depend on inputs
    if collinear_from is not None:
        rows[collinear_from:, :, n_in - 1] = rows[collinear_from:, :, 0]
    base = np.zeros((T, n, n))
    if prior:
        A = rng.standard_normal((T, n, n))
        base = A @ np.swapaxes(A, 1, 2) + np.eye(n)
    return dict(rows=rows, alpha=1.0 / R, beta=0.5 if prior else 0.0, sigma=base, mean=rng.standard_normal((T, n)),
                ridge=1e-6, check_rank=not prior)


def run(kern, ws, inp):
    T, n = inp["mean"].shape
    a = ws.n_in
    out = dict(sigma=inp["sigma"].copy(), gain=np.zeros((T, n - a, a)), bias=np.zeros((T, n - a)),
               cov=np.zeros((T, n - a, n - a)), pivots=np.ones(T), cov_ok=np.zeros(T, np.int8))
    out["status"] = kern.conditional_fit(ws, inp["rows"], inp["alpha"], inp["beta"], out["sigma"], inp["mean"],
                                         inp["ridge"], inp["check_rank"], out["gain"], out["bias"], out["cov"],
                                         out["pivots"], out["cov_ok"])
    return out


def compiled_ws(compiled, n_in, n_out, path):
    return on_path(compiled.FitWorkspace, n_in, n_out, path=path)


def assert_same(a, b):
    assert a["status"] == b["status"]
    for key in ("sigma", "gain", "bias", "cov", "pivots"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-9 * max(1.0, np.abs(b[key]).max()), err_msg=key)
    # whether a covariance factors is decided by round-off when it is singular (fewer samples than outputs):
    # the flags must agree wherever the smallest eigenvalue is clearly away from zero
    for t, cov in enumerate(b["cov"]):
        w = np.linalg.eigvalsh(cov)
        if abs(w[0]) > 1e-8 * max(np.abs(w).max(), 1e-300):
            assert a["cov_ok"][t] == b["cov_ok"][t] == (w[0] > 0), (t, w[0])


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("prior", [False, True])
@pytest.mark.parametrize("n_in,n_out,R", [(1, 1, 3), (3, 2, 12), (33, 26, 66), (8, 40, 60)])
def test_fit_kernel_equals_twin(compiled, path, prior, n_in, n_out, R):
    inp = fit_inputs(7, R, n_in, n_out, seed=n_in * 100 + n_out, prior=prior)
    got = run(compiled, compiled_ws(compiled, n_in, n_out, path), inp)
    want = run(reference, reference.FitWorkspace(n_in, n_out), inp)
    assert got["status"] == (reference.OK, -1)
    assert_same(got, want)
    # and the result is the conditional of the joint Gaussian it built
    S = want["sigma"][3]
    S_in = S[:n_in, :n_in] + 1e-6 * np.eye(n_in)
    np.testing.assert_allclose(got["gain"][3], np.linalg.solve(S_in, S[:n_in, n_in:]).T, rtol=1e-7, atol=1e-9)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(T=st.integers(1, 6), n_in=st.integers(1, 9), n_out=st.integers(1, 6), extra=st.integers(1, 12),
       seed=st.integers(0, 2**31), prior=st.booleans(), path=st.sampled_from(sorted(PATHS)))
def test_fit_twins_property(compiled, T, n_in, n_out, extra, seed, prior, path):
    inp = fit_inputs(T, n_in + extra, n_in, n_out, seed, prior)
    assert_same(run(compiled, compiled_ws(compiled, n_in, n_out, path), inp),
                run(reference, reference.FitWorkspace(n_in, n_out), inp))


def test_collinear_inputs_give_the_same_failure(compiled):
    inp = fit_inputs(6, 20, 4, 2, seed=3, collinear_from=2)
    got = run(compiled, compiled.FitWorkspace(4, 2), inp)
    want = run(reference, reference.FitWorkspace(4, 2), inp)
    # exactly collinear inputs: the unridged factorisation fails, or passes with a vanishing pivot
    for out in (got, want):
        status, t = out["status"]
        assert (status, t) == (reference.NOT_PD, 2) or (status != reference.NOT_PD and out["pivots"][2] < 1e-10)
    np.testing.assert_allclose(got["pivots"][:2], want["pivots"][:2], rtol=1e-9)


def test_overflow_is_reported_with_its_step(compiled):
    inp = fit_inputs(5, 8, 2, 2, seed=4)
    inp["rows"][3, 0, 0] = 1e200
    for kern, ws in ((compiled, compiled.FitWorkspace(2, 2)), (reference, reference.FitWorkspace(2, 2))):
        with np.errstate(over="ignore", invalid="ignore"):
            assert run(kern, ws, inp)["status"] == (reference.NON_FINITE, 3)


def test_singular_output_covariance_is_flagged(compiled):
    inp = fit_inputs(4, 10, 3, 2, seed=5)
    inp["rows"][1:3, :, 4] = 0.0            # one output constant at t = 1, 2: its variance is exactly 0
    got = run(compiled, compiled.FitWorkspace(3, 2), inp)
    want = run(reference, reference.FitWorkspace(3, 2), inp)
    np.testing.assert_array_equal(got["cov_ok"], [1, 0, 0, 1])
    np.testing.assert_array_equal(want["cov_ok"], [1, 0, 0, 1])


@pytest.mark.parametrize("bad", ["rows_wide", "sigma_short", "gain_T", "mean_wide", "pivot_short", "float32",
                                 "noncontig"])
def test_fit_kernel_refuses_bad_arrays(compiled, bad):
    T, n_in, n_out = 4, 3, 2
    inp = fit_inputs(T, 8, n_in, n_out, seed=6)
    ws = compiled.FitWorkspace(n_in, n_out)
    out = dict(sigma=np.zeros((T, 5, 5)), gain=np.zeros((T, n_out, n_in)), bias=np.zeros((T, n_out)),
               cov=np.zeros((T, n_out, n_out)), pivots=np.ones(T), cov_ok=np.zeros(T, np.int8))
    rows, mean = inp["rows"], inp["mean"]
    if bad == "rows_wide":
        rows = np.zeros((T, 8, 6))
    elif bad == "sigma_short":
        out["sigma"] = np.zeros((T - 1, 5, 5))
    elif bad == "gain_T":
        out["gain"] = np.zeros((T, n_in, n_out))
    elif bad == "mean_wide":
        mean = np.zeros((T, 6))
    elif bad == "pivot_short":
        out["pivots"] = np.ones(T - 1)
    elif bad == "float32":
        rows = rows.astype(np.float32)
    else:
        rows = np.zeros((T, 8, 10))[:, :, ::2]
    with pytest.raises(ValueError):
        compiled.conditional_fit(ws, rows, 0.125, 0.0, out["sigma"], mean, 1e-6, True, out["gain"], out["bias"],
                                 out["cov"], out["pivots"], out["cov_ok"])


def test_fit_workspace_checks_and_pickles(compiled):
    import pickle
    with pytest.raises(ValueError):
        compiled.FitWorkspace(0, 2)
    ws = pickle.loads(pickle.dumps(compiled.FitWorkspace(3, 2, 77)))
    assert (ws.n_in, ws.n_out, ws.blas_min) == (3, 2, 77)
