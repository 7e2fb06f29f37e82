"""The GPS loop in trajectory-only mode (issue 5): config, cost expansion, step size, loop, checkpoints."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import gpsx.tasks
from gpsx import checkpoint, step_size
from gpsx.config import GPSConfig, PriorConfig
from gpsx.cost_expansion import quadratic_cost
from gpsx.costs import CostDerivatives
from gpsx.errors import CheckpointError, RolloutDivergedError
from gpsx.gps import GPS, PHASES
from gpsx.runs import RunDir
from gpsx.synthetic import random_problem

T_SHORT = 40   # peg2d horizon for the fast loop tests (the arm moves a few cm in 0.4 s)


@pytest.fixture(scope="module")
def peg2d():
    return gpsx.tasks.make("peg2d").with_horizon(T_SHORT)


def small_config(**changes) -> GPSConfig:
    """Two conditions, trajectory-only mode (the policy mode is tested in test_gps_policy.py)."""
    return GPSConfig(conditions=(0, 3), policy=False, **changes)


def state_of(algo: GPS, path) -> tuple[dict, dict[str, np.ndarray]]:
    """The algorithm's whole state as saved: (meta, arrays: controllers, last update, priors)."""
    algo.save(path)
    return checkpoint.read(path)


def assert_same_state(a: GPS, b: GPS, tmp_path) -> None:
    meta_a, arr_a = state_of(a, tmp_path / "a.npz")
    meta_b, arr_b = state_of(b, tmp_path / "b.npz")
    assert meta_a == meta_b
    assert arr_a.keys() == arr_b.keys()
    for name in arr_a:
        assert np.array_equal(arr_a[name], arr_b[name]), name


# --- config --------------------------------------------------------------------------------------------------
def test_config_defaults_are_the_documented_ones():
    c = GPSConfig()
    assert (c.samples_per_condition, c.kl_step, c.min_step_mult, c.max_step_mult, c.jobs) == (5, 0.2, 0.01, 10.0, 1)
    assert c.conditions is None and c.initial_eta == 1.0 and c.initial_step_mult == 1.0
    p = c.dynamics_prior
    assert (p.max_clusters, p.min_samples_per_cluster, p.max_samples, p.strength) == (20, 40, 20, 1.0)


def test_config_round_trips_through_json():
    c = GPSConfig(samples_per_condition=3, conditions=[1, 2], kl_step=0.5, dynamics_prior={"max_samples": 10})
    assert c.conditions == (1, 2) and c.dynamics_prior == PriorConfig(max_samples=10)
    assert GPSConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


@pytest.mark.parametrize("bad, key", [({"kl_stpe": 0.1}, "kl_stpe"),
                                      ({"dynamics_prior": {"max_cluster": 3}}, "max_cluster")])
def test_misspelled_config_key_raises_naming_it(bad, key):
    with pytest.raises(TypeError, match=f"unknown setting '{key}'.*did you mean"):
        GPSConfig.from_dict(bad)


@pytest.mark.parametrize("bad", [{"samples_per_condition": 0}, {"samples_per_condition": 2.5},
                                 {"kl_step": -1.0}, {"jobs": True}, {"conditions": []},
                                 {"min_step_mult": 1.0, "max_step_mult": 0.5}, {"dynamics_prior": 3}])
def test_invalid_config_values_raise(bad):
    with pytest.raises((TypeError, ValueError)):
        GPSConfig.from_dict(bad)


# --- cost expansion ------------------------------------------------------------------------------------------
def test_expansion_of_a_quadratic_cost_is_exact_at_any_samples():
    """A cost that is exactly quadratic has the same global form whatever samples it is expanded at."""
    rng = np.random.default_rng(1)
    N, T, dX, dU = 4, 3, 3, 2
    n = dX + dU
    W = rng.standard_normal((T, n, n))
    C = W @ np.swapaxes(W, 1, 2)
    c, c0 = rng.standard_normal((T, n)), rng.standard_normal(T)
    z = rng.standard_normal((N, T, n))
    value = 0.5 * np.einsum("nti,tij,ntj->nt", z, C, z) + np.einsum("nti,ti->nt", z, c) + c0
    grad = np.einsum("tij,ntj->nti", C, z) + c
    d = CostDerivatives(value, grad[..., :dX], grad[..., dX:], np.broadcast_to(C[:, :dX, :dX], (N, T, dX, dX)),
                        np.broadcast_to(C[:, dX:, dX:], (N, T, dU, dU)),
                        np.broadcast_to(C[:, dX:, :dX], (N, T, dU, dX)))
    q = quadratic_cost(d, z[..., :dX], z[..., dX:])
    np.testing.assert_allclose(q.C, C, atol=1e-12)
    np.testing.assert_allclose(q.c, c, atol=1e-12)
    np.testing.assert_allclose(q.c0, c0, atol=1e-12)


def test_expansion_at_one_sample_matches_the_task_cost_there(peg2d):
    """With one sample the model is that sample's Taylor expansion: same value and gradient at the sample."""
    X, U = peg2d.rollout(peg2d.initial_controller(0), 0, n=1, seed=3)
    d = peg2d.cost.derivatives(X, U, 0)
    q = quadratic_cost(d, X, U)
    z = np.concatenate([X, U], axis=-1)[0]
    np.testing.assert_allclose(q.evaluate(z), peg2d.cost(X, U, 0)[0], rtol=1e-10, atol=1e-12)
    grad = np.einsum("tij,tj->ti", q.C, z) + q.c
    np.testing.assert_allclose(grad, np.concatenate([d.lx, d.lu], axis=-1)[0], rtol=1e-9, atol=1e-12)


def test_expansion_averages_curvature_over_samples(peg2d):
    X, U = peg2d.rollout(peg2d.initial_controller(1), 1, n=4, seed=0)
    d = peg2d.cost.derivatives(X, U, 1)
    q = quadratic_cost(d, X, U)
    np.testing.assert_allclose(q.C[:, :6, :6], d.lxx.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(q.C[:, 6:, 6:], d.luu.mean(axis=0), rtol=1e-12)


# --- step size -----------------------------------------------------------------------------------------------
def test_laplace_cost_matches_monte_carlo():
    p = random_problem(T=4, dX=3, dU=2, seed=5)
    dyn, ctrl, cost = p.dyn, p.prev, p.cost
    rng = np.random.default_rng(0)
    M = 200_000
    x = rng.multivariate_normal(dyn.x0_mean, dyn.x0_cov, size=M)
    total = np.zeros(M)
    for t in range(dyn.T):
        u = x @ ctrl.K[t].T + ctrl.k[t] + rng.standard_normal((M, dyn.dU)) @ ctrl.chol[t].T
        z = np.concatenate([x, u], axis=1)
        total += 0.5 * np.einsum("mi,ij,mj->m", z, cost.C[t], z) + z @ cost.c[t] + cost.c0[t]
        if t + 1 < dyn.T:
            noise = rng.multivariate_normal(np.zeros(dyn.dX), dyn.cov[t], size=M)
            x = z @ dyn.F[t].T + dyn.f[t] + noise
    se = total.std() / np.sqrt(M)
    assert abs(step_size.laplace_cost(dyn, ctrl, cost) - total.mean()) < 5 * se


@pytest.mark.parametrize("prev_old, cur_old, cur_new, factor", [
    (10.0, 8.0, 8.0, 5.0),      # improved as predicted (gap 0 -> 1e-4): 2 / 2e-4, capped at 5
    (10.0, 8.0, 9.0, 1.0),      # improved 1 of a predicted 2: 2 / (2 * 1)
    (10.0, 8.0, 12.0, 0.25),    # got worse by 2: 2 / (2 * 4)
    (10.0, 9.9, 20.0, 0.1),     # much worse: 0.1 / (2 * 10.1) = 0.005, floored at 0.1
])
def test_step_rule(monkeypatch, prev_old, cur_old, cur_new, factor):
    """Laplace estimates Ĵ(prev | old), Ĵ(cur | old), Ĵ(cur | new) -> the multiplier's factor (pitfalls.md)."""
    old_dyn, new_dyn, old_cost, new_cost, prev, cur = (object() for _ in range(6))
    table = {(old_dyn, prev, old_cost): prev_old, (old_dyn, cur, old_cost): cur_old, (new_dyn, cur, new_cost): cur_new}
    monkeypatch.setattr(step_size, "laplace_cost", lambda d, c, q: table[(d, c, q)])
    upd = step_size.adapt_step(1.0, prev, cur, old_dyn, old_cost, new_dyn, new_cost, 0.01, 10.0)
    assert upd.step_mult == pytest.approx(factor)
    assert (upd.predicted, upd.actual) == (prev_old - cur_old, prev_old - cur_new)
    upd = step_size.adapt_step(4.0, prev, cur, old_dyn, old_cost, new_dyn, new_cost, 0.01, 10.0)
    assert upd.step_mult == pytest.approx(min(4.0 * factor, 10.0))   # clipped to max_step_mult
    upd = step_size.adapt_step(0.02, prev, cur, old_dyn, old_cost, new_dyn, new_cost, 0.01, 10.0)
    assert upd.step_mult == pytest.approx(max(0.02 * factor, 0.01))  # clipped to min_step_mult


# --- the loop ------------------------------------------------------------------------------------------------
def test_with_horizon_shortens_a_task_without_touching_the_original():
    full = gpsx.tasks.make("peg2d")
    short = full.with_horizon(25)
    assert (short.T, full.T) == (25, 800)
    assert short.initial_controller(0).T == 25
    X, U = short.rollout(short.initial_controller(0), 0, n=2, seed=0)
    assert X.shape == (2, 25, short.dX)
    Xs, _ = short.rollout(short.initial_controller(0), 0, n=1, noise=False)
    Xf, _ = full.rollout(full.initial_controller(0), 0, n=1, noise=False)
    assert np.array_equal(Xs, Xf[:, :25])    # same physics over the shared steps
    with pytest.raises(ValueError):
        full.with_horizon(1)


def test_cost_falls_and_reports_are_complete(peg2d):
    algo = GPS(peg2d, small_config(), seed=0)
    reports = list(algo.run(iterations=5))
    assert [r.iteration for r in reports] == list(range(5))
    assert [r.samples_used for r in reports] == [10 * (i + 1) for i in range(5)]
    first, last = np.array(reports[0].mean_cost), np.array(reports[-1].mean_cost)
    assert (last < 0.95 * first).all(), (first, last)
    for r in reports:
        assert r.conditions == (0, 3)
        assert set(r.timings) == set(PHASES) and all(v >= 0 for v in r.timings.values())
        assert all(0 < kl <= 1.1 * b for kl, b in zip(r.kl, r.kl_bound))
        assert r.invalid_samples == (0, 0) and all(0.0 <= s <= 1.0 for s in r.success)
        assert r.updated == (True, True)
        assert r.kl_bound == pytest.approx([0.2 * T_SHORT * m for m in r.step_mult])
    assert reports[0].step_mult == (1.0, 1.0)
    # independent check: the learned controllers' noise-free rollouts cost less than the initial ones'
    for c, ctrl in algo.controllers.items():
        X0, U0 = peg2d.rollout(peg2d.initial_controller(c), c, n=1, noise=False)
        X1, U1 = peg2d.rollout(ctrl, c, n=1, noise=False)
        assert peg2d.cost(X1, U1, c).sum() < peg2d.cost(X0, U0, c).sum()


def test_initial_controllers_can_be_given_and_are_checked(peg2d):
    from gpsx.containers import LinearGaussianController

    base = peg2d.initial_controller(3)
    mine = LinearGaussianController(base.K, base.k + 1.0, base.cov)
    algo = GPS(peg2d, small_config(initial_noise_scale=4.0), initial_controllers={3: mine})
    assert np.array_equal(algo.controllers[3].k, mine.k) and np.allclose(algo.controllers[3].cov, 4.0 * base.cov)
    assert np.array_equal(algo.controllers[0].k, peg2d.initial_controller(0).k)
    with pytest.raises(ValueError, match="not trained"):
        GPS(peg2d, small_config(), initial_controllers={1: mine})
    short = LinearGaussianController(base.K[:5], base.k[:5], base.cov[:5])
    with pytest.raises(ValueError, match="the task needs"):
        GPS(peg2d, small_config(), initial_controllers={0: short})


def test_unknown_condition_raises(peg2d):
    unknown = len(peg2d.conditions)
    with pytest.raises(ValueError, match=f"condition {unknown}"):
        GPS(peg2d, GPSConfig(conditions=(unknown,)))


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(peg2d, tmp_path):
    straight = GPS(peg2d, small_config(), seed=7)
    reports = list(straight.run(3))
    interrupted = GPS(peg2d, small_config(), seed=7)
    list(interrupted.run(2))
    interrupted.save(tmp_path / "ckpt.npz")
    resumed = GPS.load(tmp_path / "ckpt.npz")
    assert resumed.task.T == T_SHORT and resumed.iteration == 2 and resumed.samples_used == 20
    last = list(resumed.run(3))
    assert len(last) == 1
    assert last[0].mean_cost == reports[2].mean_cost and last[0].eta == reports[2].eta
    assert_same_state(straight, resumed, tmp_path)
    for c in straight.conditions:
        for name in ("K", "k", "cov"):
            assert np.array_equal(getattr(straight.controllers[c], name), getattr(resumed.controllers[c], name))


def test_seed_changes_results_and_jobs_does_not(peg2d, tmp_path):
    one = GPS(peg2d, small_config(), seed=3)
    two = GPS(peg2d, small_config(jobs=2), seed=3)
    other = GPS(peg2d, small_config(), seed=4)
    r1, r2, r3 = one.step(), two.step(), other.step()
    assert r1.mean_cost == r2.mean_cost and r1.mean_cost != r3.mean_cost
    for c in one.conditions:
        assert np.array_equal(one.controllers[c].K, two.controllers[c].K)


def test_diverged_rollouts_are_left_out_and_reported(peg2d, monkeypatch, caplog):
    import gpsx.gps as gps_module

    real = gps_module._sample_condition

    def one_diverges(*args):
        r = real(*args)
        r.diverged_at[1], r.reason[1] = 7, "test: pretend MuJoCo reset the simulation"
        return r

    monkeypatch.setattr(gps_module, "_sample_condition", one_diverges)
    algo = GPS(peg2d, small_config(samples_per_condition=4), seed=0)
    with caplog.at_level(logging.WARNING, logger="gpsx"):
        report = algo.step()
    assert report.invalid_samples == (1, 1) and report.samples_used == 8
    assert "1 of 4 rollouts diverged" in caplog.text
    assert all(s.prior.num_samples == 3 for s in algo._states)


def test_all_rollouts_diverged_raises(peg2d, monkeypatch):
    import gpsx.gps as gps_module

    real = gps_module._sample_condition

    def all_diverge(*args):
        r = real(*args)
        r.diverged_at[:] = 3
        return r

    monkeypatch.setattr(gps_module, "_sample_condition", all_diverge)
    with pytest.raises(RolloutDivergedError):
        GPS(peg2d, small_config(), seed=0).step()


def test_failed_trajectory_optimisation_keeps_the_controller_and_the_run_going(peg2d, monkeypatch, caplog):
    import gpsx.gps as gps_module
    from gpsx.errors import NotPositiveDefiniteError

    real = gps_module.optimize_trajectory
    calls = []

    def second_fails(dyn, cost, prev, bound, eta0):
        calls.append(prev)
        if len(calls) == 2:
            raise NotPositiveDefiniteError("Q_uu stays indefinite up to eta=1e+16 (test)", array="Q_uu", t=3)
        return real(dyn, cost, prev, bound, eta0=eta0)

    monkeypatch.setattr(gps_module, "optimize_trajectory", second_fails)
    algo = GPS(peg2d, small_config(), seed=0)
    before = algo.controllers[3]
    with caplog.at_level(logging.WARNING, logger="gpsx"):
        report = algo.step()
    assert report.updated == (True, False) and report.kl[1] == 0.0 and report.kl[0] > 0
    assert algo.controllers[3] is before and "controller kept" in caplog.text
    assert algo.step().updated == (True, True)      # the next iteration proceeds normally


# --- checkpoints ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(peg2d):
    algo = GPS(peg2d, small_config(samples_per_condition=3), seed=1)
    list(algo.run(2))
    return algo


def test_checkpoint_holds_no_pickles_and_round_trips(trained, tmp_path):
    path = tmp_path / "run.gpsx"
    trained.save(path)
    with np.load(path, allow_pickle=False) as npz:      # would raise on an object array
        assert all(npz[name].dtype != object for name in npz.files)
    assert_same_state(trained, GPS.load(path), tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "missing", "not_npz"])
def test_damaged_checkpoint_raises_checkpoint_error(trained, tmp_path, damage):
    path = tmp_path / "run.gpsx"
    trained.save(path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        pos = len(data) // 2
        path.write_bytes(data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "missing":
        path.unlink()
    else:
        np.savez(path.with_suffix(".npz"), x=np.zeros(3))
        path.with_suffix(".npz").replace(path)
    with pytest.raises(CheckpointError):
        GPS.load(path)


def test_checkpoint_of_a_task_whose_training_conditions_changed_says_so(peg2d, tmp_path):
    """A run on the task's default training conditions cannot be loaded once the task has other ones (the octopus
    went from four targets to eight); the error names both lists and the reason."""
    path = tmp_path / "run.gpsx"
    GPS(peg2d, GPSConfig(policy=False), seed=0).save(path)
    changed = peg2d.with_horizon(peg2d.T)
    changed.train_conditions = peg2d.train_conditions[:3]
    with pytest.raises(CheckpointError, match=r"conditions \[0, 1, 2, 3\] do not match the config's \[0, 1, 2\] "
                                              r"\(the config trains on the task's training conditions, and peg2d"):
        GPS.load(path, task=changed)


def test_failed_write_keeps_the_previous_checkpoint(trained, tmp_path, monkeypatch):
    path = tmp_path / "run.gpsx"
    trained.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint.np, "savez", crash)
    with pytest.raises(OSError, match="simulated"):
        trained.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.gpsx"]   # no temporary file left behind


def test_run_folder_keeps_two_checkpoints_and_falls_back_past_a_damaged_one(peg2d, tmp_path, caplog):
    run = RunDir.create(tmp_path / "run", {"task": "peg2d"})
    algo = GPS(peg2d, small_config(samples_per_condition=3), seed=2)
    for report in algo.run(3):
        run.record(algo, report)
    names = [p.name for p in run.checkpoints()]
    assert names == ["iter_0002.npz", "iter_0003.npz"]
    assert len(run.metrics()) == 3
    newest = run.checkpoints()[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="gpsx"):
        resumed = run.resume()
    assert resumed.iteration == 2 and "skipping a checkpoint that cannot be loaded" in caplog.text
    assert (tmp_path / "run" / "checkpoints" / "iter_0002.npz").exists()
    assert [r.iteration for r in run.metrics()] == [0, 1]          # truncated to the checkpoint
