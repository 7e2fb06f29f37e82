"""The compiled kernels equal their numpy twins (gpsx.reference) on many random problems."""
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch import PATHS, on_path
from gpsx import reference
from gpsx.synthetic import random_problem

RTOL = 1e-9
ARRAYS = ("P", "p", "K", "k", "C", "mean", "cov", "kl", "expected_cost", "Fr", "fr", "Cr", "cr")
GPS_ARRAYS = ("Kg", "kg", "Cg")


def assert_twins(a, b, names):
    for name in names:
        scale = max(1.0, np.abs(b[name]).max(initial=0.0))
        err = np.abs(a[name] - b[name]).max(initial=0.0) / scale
        assert err <= RTOL, f"{name}: relative difference {err:.3g}"


def workspace(compiled, T, dX, dU, path):
    return on_path(compiled.Workspace, T, dX, dU, path=path)


@pytest.mark.parametrize("dU", [1, 3, 8])
@pytest.mark.parametrize("dX", [1, 2, 7, 30])
@pytest.mark.parametrize("T", [1, 2, 3, 50])
def test_compiled_equals_reference(compiled, kernels_runner, T, dX, dU):
    problem = random_problem(T, dX, dU, seed=1000 * T + 10 * dX + dU)
    lam = np.linspace(0.0, 3.0, T)          # includes λ_t = 0 steps beside λ_t > 0 ones
    eta = 0.7
    ref = kernels_runner(reference, reference.Workspace(T, dX, dU), problem, eta, lam)
    assert ref["status"] == (0, -1) and ref["gps_status"][0] == 0
    for path in PATHS:
        got = kernels_runner(compiled, workspace(compiled, T, dX, dU, path), problem, eta, lam)
        assert got["status"] == ref["status"]
        assert got["kl_status"] == ref["kl_status"]
        assert got["gps_status"][:2] == ref["gps_status"][:2]
        assert abs(got["gps_status"][2] - ref["gps_status"][2]) <= 1, "sweep counts differ"
        assert_twins(got, ref, ARRAYS + GPS_ARRAYS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(T=st.integers(1, 10), dX=st.integers(1, 8), dU=st.integers(1, 4), seed=st.integers(0, 2**31),
       log_eta=st.floats(-3, 3), lam_scale=st.floats(0, 20), path=st.sampled_from(sorted(PATHS)),
       cost_scale=st.floats(0.01, 100))
def test_twins_property(compiled, kernels_runner, T, dX, dU, seed, log_eta, lam_scale, path, cost_scale):
    problem = random_problem(T, dX, dU, seed=seed, cost_scale=cost_scale)
    lam = lam_scale * np.random.default_rng(seed).uniform(size=T)
    eta = 10.0 ** log_eta
    ref = kernels_runner(reference, reference.Workspace(T, dX, dU), problem, eta, lam)
    got = kernels_runner(compiled, workspace(compiled, T, dX, dU, path), problem, eta, lam)
    assert got["status"] == ref["status"]
    assert got["gps_status"][:2] == ref["gps_status"][:2]
    names = ARRAYS + (GPS_ARRAYS if ref["gps_status"][0] == 0 else ())
    assert_twins(got, ref, names)


def test_not_pd_status_matches(compiled, kernels_runner):
    problem = random_problem(6, 4, 2, seed=3)
    problem.cost.C[3, 4:, 4:] = -1e6 * np.eye(2)     # containers are frozen, arrays are not: make Q_uu indefinite
    ref = kernels_runner(reference, reference.Workspace(6, 4, 2), problem)
    got = kernels_runner(compiled, compiled.Workspace(6, 4, 2), problem)
    assert ref["status"] == got["status"] == (1, 3)


def test_workspace_rejects_mismatched_problem(compiled):
    problem = random_problem(5, 3, 2, seed=0)
    d, c, p = problem.dyn, problem.cost, problem.prev
    n = 5
    P, pv = np.zeros((5, n, n)), np.zeros((5, n))
    out = (np.zeros((5, 2, 3)), np.zeros((5, 2)), np.zeros((5, 2, 2)))
    for ws in (compiled.Workspace(5, 4, 2), compiled.Workspace(5, 3, 1), compiled.Workspace(4, 3, 2)):
        with pytest.raises(ValueError):
            compiled.backward(ws, d.F, d.f, c.C, c.c, P, pv, 1.0, *out)


@pytest.mark.parametrize("bad", ["F_short", "f_wide", "P_small", "out_short", "lam_short", "noncontig", "float32"])
def test_kernels_refuse_bad_arrays(compiled, bad):
    """Direct kernel calls with inconsistent arrays raise instead of reading or writing out of bounds."""
    T, dX, dU = 6, 4, 3
    n = dX + dU
    problem = random_problem(T, dX, dU, seed=1)
    d, c, p, pi = problem.dyn, problem.cost, problem.prev, problem.policy
    ws = compiled.Workspace(T, dX, dU)
    P, pv = np.zeros((T, n, n)), np.zeros((T, n))
    P[:, dX:, dX:] = p.precision
    args = dict(F=d.F, f=d.f, L=c.C, l=c.c, P=P, p=pv, K=np.zeros((T, dU, dX)), k=np.zeros((T, dU)),
                C=np.zeros((T, dU, dU)), lam=np.ones(T))
    if bad == "F_short":
        args["F"] = d.F[:-1].copy()
    elif bad == "f_wide":
        args["f"] = np.zeros((T - 1, dX + 1))
    elif bad == "P_small":
        args["P"] = np.zeros((T, n - 1, n - 1))
    elif bad == "out_short":
        args["K"] = np.zeros((T, dU, dX - 1))
    elif bad == "lam_short":
        args["lam"] = np.ones(T - 1)
    elif bad == "noncontig":
        args["L"] = np.asfortranarray(c.C)
    elif bad == "float32":
        args["F"] = d.F.astype(np.float32)
    with pytest.raises((ValueError, TypeError)):
        if bad == "lam_short":
            compiled.backward_gps(ws, args["F"], args["f"], d.cov, d.x0_mean, d.x0_cov, args["L"], args["l"],
                                  args["P"], args["p"], 1.0, pi.K, pi.k, pi.cov, args["lam"], 1e-10, 10,
                                  p.K.copy(), p.k.copy(), p.cov.copy())
        else:
            compiled.backward(ws, args["F"], args["f"], args["L"], args["l"], args["P"], args["p"], 1.0,
                              args["K"], args["k"], args["C"])


def test_forward_and_kl_refuse_bad_arrays(compiled):
    T, dX, dU = 4, 3, 2
    problem = random_problem(T, dX, dU, seed=2)
    d, p = problem.dyn, problem.prev
    ws = compiled.Workspace(T, dX, dU)
    with pytest.raises(ValueError):
        compiled.forward(ws, d.F, d.f, d.cov, d.x0_mean, d.x0_cov, p.K, p.k, p.cov,
                         np.zeros((T, dX + dU)), np.zeros((T, dX + dU, dX)))
    with pytest.raises(ValueError):
        compiled.conditional_kl(ws, np.zeros((T, dX + dU)), np.zeros((T, dX + dU, dX + dU)), p.K, p.k, p.cov,
                                p.K, p.k, p.cov, np.zeros(T + 1))
    with pytest.raises(ValueError):
        compiled.expected_cost(np.zeros((T, 6)), np.zeros((T, 6, 6)), problem.cost.C, problem.cost.c,
                               problem.cost.c0, np.zeros(T))


def test_inner_iteration_cap_is_shared(compiled):
    """The per-step C <-> (K, k) iteration cap is part of the twins' contract."""
    assert compiled.INNER_MAX_ITERATIONS == reference.INNER_MAX


def test_workspace_pickles(compiled):
    ws = compiled.Workspace(7, 3, 2, blas_min=123)
    clone = pickle.loads(pickle.dumps(ws))
    assert (clone.T, clone.dX, clone.dU, clone.blas_min) == (7, 3, 2, 123)


def test_workspace_rejects_empty_sizes(compiled):
    with pytest.raises(ValueError):
        compiled.Workspace(0, 3, 2)


@pytest.mark.parametrize("bad", ["F_out_short", "f_wide", "C_out_small", "kh_short", "K_wide"])
def test_relative_coordinates_refuse_bad_arrays(compiled, bad):
    T, dX, dU = 4, 3, 2
    n = dX + dU
    problem = random_problem(T, dX, dU, seed=3)
    d, c, p = problem.dyn, problem.cost, problem.prev
    args = dict(F=d.F, f=d.f, C=c.C, c=c.c, K=p.K, k=p.k, F_out=np.empty_like(d.F), f_out=np.empty_like(d.f),
                C_out=np.empty_like(c.C), c_out=np.empty_like(c.c))
    args.update({"F_out_short": {"F_out": np.empty((T - 2, dX, n))}, "f_wide": {"f": np.zeros((T - 1, dX + 1))},
                 "C_out_small": {"C_out": np.empty((T, n - 1, n - 1))}, "kh_short": {"k": np.zeros((T - 1, dU))},
                 "K_wide": {"K": np.zeros((T, dU, dX + 1))}}[bad])
    with pytest.raises(ValueError):
        compiled.relative_coordinates(compiled.Workspace(T, dX, dU), *args.values())
