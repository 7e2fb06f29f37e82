"""Guided policy search with the neural-network policy (issue 6): λ rule, observations, loop, checkpoints."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpsx.tasks
from gpsx import checkpoint
from gpsx.config import GPSConfig, GuidedConfig
from gpsx.errors import ConvergenceWarning
from gpsx.gps import GPS, POLICY_PHASES
from gpsx.guided import ObservedPolicy, adapt_rate, policy_outcomes, update_lambda

T_SHORT = 40


@pytest.fixture(scope="module")
def peg2d():
    return gpsx.tasks.make("peg2d").with_horizon(T_SHORT)


def small_config(**guided) -> GPSConfig:
    """Two conditions, a small network and few L-BFGS iterations per GPS iteration."""
    return GPSConfig(conditions=(0, 3), guided={"hidden_sizes": [20, 20], "train_iterations": 30, **guided})


def run(task, config: GPSConfig, iterations: int, seed: int = 0) -> tuple[GPS, list]:
    algo = GPS(task, config, seed=seed)
    with warnings.catch_warnings():   # λ/η is large at tiny η: the fixed-point sweeps may stop early there
        warnings.simplefilter("ignore", ConvergenceWarning)
        return algo, list(algo.run(iterations))


@pytest.fixture(scope="module")
def guided_runs(peg2d):
    """The same 10 iterations with the dual updates and with λ held near zero."""
    return {name: run(peg2d, small_config(**g), 10)[1]
            for name, g in [("dual", {}), ("no_dual", {"initial_lambda": 1e-9, "lambda_rate": 1e-9})]}


# --- the λ rule ----------------------------------------------------------------------------------------------
def test_lambda_rises_where_the_policy_kl_is_large():
    lam = np.full(5, 0.01)
    kl = np.array([0.0, 0.1, 5.0, 0.2, 0.0])
    new = update_lambda(lam, kl, rate=0.5)
    assert np.array_equal(new, np.maximum(0.0, lam + 0.5 * kl))
    assert np.argmax(new - lam) == 2 and new[0] == new[4] == 0.01
    assert (update_lambda(np.zeros(3), np.zeros(3), 1.0) == 0).all()


def test_dual_step_grows_only_while_the_kl_does_not_fall():
    assert adapt_rate(0.1, 1.0, None, 2.0, 10.0) == 0.1            # first iteration: nothing to compare
    assert adapt_rate(0.1, 0.5, 1.0, 2.0, 10.0) == 0.1             # KL fell: keep α
    assert adapt_rate(0.1, 1.0, 1.0, 2.0, 10.0) == 0.2             # KL did not fall: larger steps
    assert adapt_rate(8.0, 2.0, 1.0, 2.0, 10.0) == 10.0            # capped


def test_kl_target_lets_lambda_fall_where_the_policy_already_matches():
    lam = np.full(5, 1.0)
    kl = np.array([0.0, 0.01, 0.02, 0.05, 1.0])
    new = update_lambda(lam, kl, rate=2.0, target=0.02)
    assert np.allclose(new, lam + 2.0 * (kl - 0.02))
    assert new[0] < new[1] < lam[1]                               # below the target: λ falls, more so further below
    assert new[2] == lam[2]                                       # at the target: unchanged
    assert lam[3] < new[3] < new[4]                               # above the target: λ rises, more so further above
    assert (update_lambda(np.full(3, 0.01), np.zeros(3), 10.0, target=0.02) == 0).all()   # clipped at 0


def test_kl_target_zero_is_the_plain_rule_bit_for_bit():
    rng = np.random.default_rng(0)
    lam, kl = rng.uniform(0, 3, 50), rng.exponential(0.05, 50)
    kl[:5] = 0.0
    plain = np.maximum(0.0, lam + 0.37 * kl)
    assert np.array_equal(update_lambda(lam, kl, 0.37), plain)
    assert np.array_equal(update_lambda(lam, kl, 0.37, target=0.0), plain)
    assert (update_lambda(lam, kl, 0.37) >= lam).all()            # without a target λ never falls
    for args in [(0.1, 1.0, None), (0.1, 0.5, 1.0), (0.1, 1.0, 1.0), (8.0, 2.0, 1.0), (0.1, 0.0, 0.0)]:
        assert adapt_rate(*args, 2.0, 10.0) == adapt_rate(*args, 2.0, 10.0, target=0.0)
    assert GuidedConfig().kl_target == 0.0


def test_dual_step_grows_only_while_the_kl_is_above_its_target_and_does_not_fall():
    assert adapt_rate(0.1, 0.01, 0.005, 2.0, 10.0, target=0.02) == 0.1   # rose, but below the target: keep α
    assert adapt_rate(0.1, 0.02, 0.02, 2.0, 10.0, target=0.02) == 0.1    # at the target: keep α
    assert adapt_rate(0.1, 0.05, 0.04, 2.0, 10.0, target=0.02) == 0.2    # above and not falling: larger steps
    assert adapt_rate(0.1, 0.05, 0.06, 2.0, 10.0, target=0.02) == 0.1    # above but falling: keep α
    assert adapt_rate(8.0, 0.5, 0.4, 2.0, 10.0, target=0.02) == 10.0     # capped


def test_kl_target_is_validated():
    assert GPSConfig(guided={"kl_target": 0.03}).guided.kl_target == 0.03
    assert GPSConfig.from_dict(GPSConfig(guided={"kl_target": 0.03}).to_dict()).guided.kl_target == 0.03
    for bad in (-0.01, float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="kl_target"):
            GuidedConfig(kl_target=bad)
    for bad in ("0.02", None, True, [0.02]):
        with pytest.raises(TypeError, match="kl_target"):
            GuidedConfig(kl_target=bad)
    with pytest.raises(TypeError, match="kl_target"):
        GPSConfig(guided={"kl_taget": 0.02})                      # misspelled: named, with the close match


def test_guide_uses_the_kl_target(peg2d):
    """A target far above any KL of the run drives every λ_t to 0 at the first dual step and never raises α;
    with every λ_t at 0 the policy objective vanishes, so the next iteration keeps the policy as it is."""
    cfg = small_config(kl_target=100.0)
    algo = GPS(peg2d, cfg, seed=0)
    reports, params = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for r in algo.run(2):
            reports.append(r)
            params.append(algo.policy.get_params().copy())
    assert all(r.lam == (0.0, 0.0) for r in reports)
    assert all(k < 100.0 for r in reports for k in r.policy_kl)
    assert all(algo.guide.rate[c] == cfg.guided.lambda_rate for c in algo.guide.conditions)
    assert reports[0].policy_train_samples > 0 and reports[0].policy_iterations > 0
    assert reports[1].policy_train_samples == 0 and reports[1].policy_iterations == 0
    assert np.array_equal(params[0], params[1]) and np.isfinite(reports[1].policy_cost).all()


def test_guided_config_is_typed():
    c = GPSConfig()
    assert c.policy is True and c.guided == GuidedConfig()
    assert (c.guided.initial_lambda, c.guided.hidden_sizes, c.guided.activation) == (0.01, (40, 40), "softplus")
    with pytest.raises(TypeError, match="lambda_rate"):
        GPSConfig(guided={"lamda_rate": 1.0})
    with pytest.raises(TypeError, match="max_samples"):
        GPSConfig(guided={"policy_prior": {"max_sample": 3}})
    for bad in ({"activation": "sigmoid"}, {"lambda_rate_increase": 0.5}, {"train_iterations": 0},
                {"hidden_sizes": [0]}, {"weight_decay": -1.0}):
        with pytest.raises((TypeError, ValueError)):
            GPSConfig(guided=bad)
    with pytest.raises(TypeError, match="policy"):
        GPSConfig(policy="yes")


# --- observations --------------------------------------------------------------------------------------------
def test_the_policy_observes_the_slot_so_peg_conditions_differ(peg2d):
    X = np.zeros((2, 3, peg2d.dX))
    o0, o3 = peg2d.observe(X, 0), peg2d.observe(X, 3)
    assert o0.shape == (2, 3, peg2d.dO) and peg2d.dO == peg2d.dX + 3
    assert np.array_equal(o0[..., :peg2d.dX], X) and np.array_equal(o0[0, 0, peg2d.dX:], peg2d.conditions[0].target)
    assert not np.array_equal(o0, o3)
    swimmer = gpsx.tasks.make("swimmer")
    Xs = np.arange(2 * 3 * swimmer.dX, dtype=float).reshape(2, 3, swimmer.dX)
    assert swimmer.dO == swimmer.dX and np.array_equal(swimmer.observe(Xs, 0), Xs)   # no goal: the state alone


# --- the loop ------------------------------------------------------------------------------------------------
def test_reports_are_complete_and_the_policy_improves(peg2d, guided_runs):
    reports = guided_runs["dual"]
    for r in reports:
        assert set(r.timings) == set(POLICY_PHASES)
        assert r.test_conditions == peg2d.test_conditions
        assert len(r.policy_cost) == len(r.policy_success) == len(r.policy_kl) == len(r.lam) == 2
        assert len(r.test_policy_cost) == len(r.test_policy_success) == len(peg2d.test_conditions)
        assert np.isfinite(r.policy_cost).all() and all(k >= 0 for k in r.policy_kl)
        assert r.policy_train_samples == 2 * 5 * T_SHORT * min(r.iteration + 1, 3)   # the relabelling buffer
    first, last = reports[0], reports[-1]
    assert np.all(np.array(last.lam) > np.array(first.lam))
    # the policy follows the improving controllers, on the trained and on the held-out conditions
    assert np.mean(last.policy_cost) < 0.9 * np.mean(first.policy_cost)
    assert np.mean(last.test_policy_cost) < 0.9 * np.mean(first.test_policy_cost)


def test_mean_policy_kl_falls_under_the_dual_updates(guided_runs):
    dual = [np.mean(r.policy_kl) for r in guided_runs["dual"]]
    free = [np.mean(r.policy_kl) for r in guided_runs["no_dual"]]
    peak = int(np.argmax(dual))
    assert peak < len(dual) - 2 and np.mean(dual[-2:]) < 0.5 * dual[peak], dual
    assert np.mean(dual[-2:]) < 0.25 * np.mean(free[-2:]), (dual, free)   # without λ the controllers drift away


def test_reported_policy_cost_is_a_noise_free_rollout_of_the_policy(peg2d):
    algo, reports = run(peg2d, small_config(), 2)
    X, U = peg2d.rollout(ObservedPolicy(algo.policy, peg2d, 3), 3, n=1, noise=False)
    assert reports[-1].policy_cost[1] == pytest.approx(peg2d.cost(X, U, 3).sum())
    assert [o.cost for o in policy_outcomes(peg2d, algo.policy, (3,))] == [reports[-1].policy_cost[1]]


# --- checkpoints ---------------------------------------------------------------------------------------------
def test_resumed_guided_run_is_bit_identical_to_an_uninterrupted_one(peg2d, tmp_path):
    straight, reports = run(peg2d, small_config(), 4, seed=7)
    interrupted, _ = run(peg2d, small_config(), 2, seed=7)
    interrupted.save(tmp_path / "ckpt.npz")
    resumed = GPS.load(tmp_path / "ckpt.npz")
    assert resumed.policy is not None and resumed.iteration == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        last = list(resumed.run(4))
    for a, b in zip(reports[2:], last):
        da, db = a.to_dict(), b.to_dict()
        da.pop("timings"), db.pop("timings")
        assert da == db
    meta_a, arr_a = checkpoint.read(_saved(straight, tmp_path / "a.npz"))
    meta_b, arr_b = checkpoint.read(_saved(resumed, tmp_path / "b.npz"))
    assert meta_a == meta_b and arr_a.keys() == arr_b.keys()
    assert any(k.startswith("policy.") for k in arr_a) and any(".buffer." in k for k in arr_a)
    for name in arr_a:
        assert np.array_equal(arr_a[name], arr_b[name]), name
    obs = peg2d.observe(np.zeros((1, peg2d.dX)), 0)
    assert np.array_equal(straight.policy.mean(obs), resumed.policy.mean(obs))


def _saved(algo: GPS, path):
    algo.save(path)
    return path


def test_checkpoint_of_a_guided_run_holds_no_pickles(peg2d, tmp_path):
    algo, _ = run(peg2d, small_config(), 1)
    algo.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)


# --- a real run ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_policy_learns_peg2d_at_full_horizon():
    task = gpsx.tasks.make("peg2d")
    cfg = GPSConfig(initial_noise_scale=50.0)
    algo, reports = run(task, cfg, 12)
    assert np.mean(reports[-1].policy_cost) < 0.5 * np.mean(reports[0].policy_cost)
