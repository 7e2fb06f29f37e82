"""Guided policy search with the neural-network policy (issue 6): λ rule, observations, loop, checkpoints."""
from __future__ import annotations

import numpy as np
import pytest

import gpsx.gps as gps_module
import gpsx.tasks
from gpsx import checkpoint, guided
from gpsx.config import GPSConfig, GuidedConfig
from gpsx.containers import LinearGaussianController
from gpsx.errors import CheckpointError, ShapeError
from gpsx.gps import GPS, POLICY_PHASES
from gpsx.guided import (ObservedPolicy, PolicyOutcome, adapt_rate, adapt_step_mirror, policy_controller,
                          policy_outcomes, update_lambda)
from gpsx.lqr import trajectory_kl
from gpsx.policy import GaussianMLPPolicy
from gpsx.tasks.walker import leg_geometry
from reports import best_reported_iteration

# λ/η is large at tiny η, so the DP's fixed-point sweeps may stop early there with a ConvergenceWarning; these
# tests check the loop's results, not those sweeps (test_lqr.py tests the warning itself).
pytestmark = pytest.mark.filterwarnings("ignore::gpsx.errors.ConvergenceWarning")

T_SHORT = 40


@pytest.fixture(scope="module")
def peg2d():
    return gpsx.tasks.make("peg2d").with_horizon(T_SHORT)


def small_config(**guided) -> GPSConfig:
    """Two conditions, a small network and few L-BFGS iterations per GPS iteration."""
    return GPSConfig(conditions=(0, 3), guided={"hidden_sizes": [20, 20], "train_iterations": 30, **guided})


def run(task, config: GPSConfig, iterations: int, seed: int = 0) -> tuple[GPS, list]:
    algo = GPS(task, config, seed=seed)
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
    for r in algo.run(2):
        reports.append(r)
        params.append(algo.policy.get_params().copy())
    assert all(r.lam == (0.0, 0.0) for r in reports)
    assert all(k < 100.0 for r in reports for k in r.policy_kl)
    assert all(algo.guide.rate[c] == cfg.guided.lambda_rate for c in algo.guide.conditions)
    assert reports[0].policy_train_samples > 0 and reports[0].policy_iterations > 0
    assert reports[1].policy_train_samples == 0 and reports[1].policy_iterations == 0
    assert np.array_equal(params[0], params[1]) and np.isfinite(reports[1].policy_cost).all()


def test_dual_kl_max_clips_the_kl_the_dual_step_sees(peg2d, monkeypatch):
    """A blown-up KL at some steps (marginals diverging under the fitted dynamics) moves λ_t there by at most
    α·(dual_kl_max − kl_target); without the clip λ_t follows the KL."""
    kl = np.full(T_SHORT, 0.5)
    kl[[3, 17]] = 1e30
    monkeypatch.setattr(guided, "policy_kl", lambda dyn, ctrl, lin: kl.copy())
    for clip, want in ((2.0, np.minimum(kl, 2.0)), (None, kl)):
        guide = guided.Guide(peg2d, (0,), GuidedConfig(dual_kl_max=clip, kl_target=0.1), seed=0)
        lam0, rate = guide.lam[0].copy(), guide.rate[0]
        guide.update_duals([None], [None], [None])
        np.testing.assert_allclose(guide.lam[0], np.maximum(0.0, lam0 + rate * (want - 0.1)))
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="dual_kl_max"):
            GuidedConfig(dual_kl_max=bad)
        with pytest.raises(ValueError, match="policy_std"):
            GuidedConfig(policy_std=bad)


def test_balanced_weights_give_every_condition_the_common_mean_and_keep_the_profiles_and_total():
    rng = np.random.default_rng(0)
    lams = [rng.uniform(0.1, 1.0, 7) * scale for scale in (1.0, 30.0, 0.2)] + [np.zeros(7)]
    out = guided.balance_weights(lams)
    positive = [m.mean() for m in lams if m.mean() > 0]
    for lam, new in zip(lams[:3], out[:3]):
        assert new.mean() == pytest.approx(sum(positive) / 3)       # the common mean
        np.testing.assert_allclose(new / new.sum(), lam / lam.sum())   # the profile over t
    assert (out[3] == 0).all()                                       # nothing to rescale: it stays 0
    assert sum(o.sum() for o in out) == pytest.approx(sum(lam.sum() for lam in lams))
    equal = [np.full(100, 0.01)] * 8        # warm-up λ_t: the sum of the 8 means over 8 is 1 ulp below a mean
    assert all(np.array_equal(a, b) for a, b in zip(guided.balance_weights(equal), equal))


@pytest.mark.parametrize("setting", ["lambda", "balanced"])
def test_policy_weights_setting_picks_the_training_weights(monkeypatch, peg2d, setting):
    """The fit gets λ_t of each sample's condition ("lambda") or the balanced λ_t ("balanced")."""
    seen = {}
    monkeypatch.setattr(guided, "train_policy", lambda *args, **kwargs: seen.setdefault("weights", args[4]))
    guide = guided.Guide(peg2d, (0, 3), GuidedConfig(policy_weights=setting), seed=0)
    guide.lam = {0: np.linspace(1.0, 2.0, T_SHORT), 3: np.full(T_SHORT, 30.0)}
    ctrl = peg2d.initial_controller(0)
    for c in (0, 3):
        guide.buffer[c] = [peg2d.rollout(ctrl, c, n=2, seed=c)[0]]
    guide.train([ctrl, ctrl])
    lams = [guide.lam[0], guide.lam[3]]
    common = (1.5 + 30.0) / 2                  # the two conditions' means, averaged
    want = lams if setting == "lambda" else [lams[0] * (common / 1.5), np.full(T_SHORT, common)]
    np.testing.assert_array_equal(seen["weights"], np.concatenate([np.broadcast_to(w, (2, T_SHORT)) for w in want]))
    with pytest.raises(ValueError, match="policy_weights"):
        GuidedConfig(policy_weights="uniform")


def test_policy_std_fixes_the_policy_covariance_in_training(peg2d):
    algo, _ = run(peg2d, small_config(policy_std=3.0), 2)
    np.testing.assert_allclose(algo.policy.covariance(), 9.0 * np.eye(peg2d.dU))


@pytest.mark.parametrize("warm_start", [True, False])
def test_cold_start_fits_from_the_run_s_initial_weights_every_iteration(peg2d, warm_start):
    """With ``warm_start`` False a fit on some data gives the same policy whatever was fitted before it (every fit
    starts from the run's seeded weights); a warm start continues from the previous fit."""
    ctrl = peg2d.initial_controller(0)
    data, other = (peg2d.rollout(ctrl, 0, n=2, seed=s)[0] for s in (0, 1))
    cfg = GuidedConfig(hidden_sizes=(6,), train_iterations=5, warm_start=warm_start)
    fresh, used = (guided.Guide(peg2d, (0,), cfg, seed=3) for _ in range(2))
    used.buffer[0] = [other]
    used.train([ctrl])
    for guide in (fresh, used):
        guide.buffer[0] = [data]
        guide.train([ctrl])
    assert np.array_equal(fresh.policy.get_params(), used.policy.get_params()) == (not warm_start)
    with pytest.raises(TypeError, match="warm_start"):
        GuidedConfig(warm_start="no")


def test_guided_config_is_typed():
    c = GPSConfig()
    assert c.policy is True and c.guided == GuidedConfig()
    assert (c.guided.initial_lambda, c.guided.hidden_sizes, c.guided.activation) == (0.01, (40, 40), "softplus")
    with pytest.raises(TypeError, match="lambda_rate"):
        GPSConfig(guided={"lamda_rate": 1.0})
    with pytest.raises(TypeError, match="max_samples"):
        GPSConfig(guided={"policy_prior": {"max_sample": 3}})
    for bad in ({"activation": "sigmoid"}, {"lambda_rate_increase": 0.5}, {"train_iterations": 0},
                {"hidden_sizes": [0]}, {"weight_decay": -1.0}, {"huber_threshold": 0.0}, {"huber_threshold": "1"},
                {"controller_reset": "yes"}):
        with pytest.raises((TypeError, ValueError)):
            GPSConfig(guided=bad)
    with pytest.raises(TypeError, match="policy"):
        GPSConfig(policy="yes")


def test_method_and_step_rule_are_validated():
    g = GuidedConfig()
    assert (g.method, g.step_rule) == ("dual", "objective")
    assert (g.linearization_covariance, g.dual_step) == ("fit", "after")
    for bad in ({"method": "badmm"}, {"step_rule": "adaptive"}, {"linearization_covariance": "none"},
                {"dual_step": "during"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            GPSConfig(guided=bad)


# --- the step rule with the policy ----------------------------------------------------------------------------
def test_mirror_step_rule_measures_the_retrained_policy(monkeypatch):
    """Predicted: Ĵ(start | old) − Ĵ(cur | old); actual: Ĵ(start | old) − Ĵ(new policy linearisation | new)."""
    old_dyn, new_dyn, old_cost, new_cost, start, cur, new_lin = (object() for _ in range(7))
    table = {(old_dyn, start, old_cost): 10.0, (old_dyn, cur, old_cost): 8.0, (new_dyn, new_lin, new_cost): 9.0,
             (new_dyn, cur, new_cost): 100.0}   # the controller's own new estimate must not be used
    monkeypatch.setattr(guided, "laplace_cost", lambda d, c, q: table[(d, c, q)])
    upd = adapt_step_mirror(1.0, start, cur, (old_dyn, old_cost), (new_dyn, new_cost, new_lin), 0.01, 10.0)
    assert (upd.predicted, upd.actual) == (2.0, 1.0)
    assert upd.step_mult == pytest.approx(2.0 / (2 * 1.0))


def _rules_called(monkeypatch, peg2d, iterations: int = 3, **g) -> tuple[list[str], list]:
    """Which step rule each condition's update used over ``iterations`` iterations, and the reports."""
    calls = []

    def spy(name, real):
        def wrapped(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)
        return wrapped

    for name, attr in (("cost", "adapt_step"), ("dual", "adapt_step_gps"), ("mirror", "adapt_step_mirror")):
        monkeypatch.setattr(gps_module, attr, spy(name, getattr(gps_module, attr)))
    return calls, run(peg2d, small_config(**g), iterations)[1]


@pytest.mark.parametrize("g, used", [({}, "dual"), ({"step_rule": "cost"}, "cost"),
                                     ({"method": "mirror"}, "mirror"),
                                     ({"method": "mirror", "step_rule": "cost"}, "cost")])
def test_step_rule_setting_picks_the_estimates(monkeypatch, peg2d, g, used):
    calls, reports = _rules_called(monkeypatch, peg2d, **g)
    assert calls == [used] * 4                                     # iterations 1 and 2, two conditions each
    assert reports[0].step_mult == (1.0, 1.0)


def test_fixed_step_rule_keeps_the_multiplier(monkeypatch, peg2d):
    calls, reports = _rules_called(monkeypatch, peg2d, step_rule="fixed")
    assert calls == [] and all(r.step_mult == (1.0, 1.0) for r in reports)
    assert all(r.kl_bound == pytest.approx((0.2 * T_SHORT,) * 2) for r in reports)


def test_clip_action_covariance_bounds_the_eigenvalues_and_keeps_the_rest():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 3, 3))
    cov = 5.0 * A @ A.transpose(0, 2, 1) + 0.5 * np.eye(3)
    ctrl = LinearGaussianController(rng.normal(size=(6, 3, 4)), rng.normal(size=(6, 3)), cov)
    clipped = guided.clip_action_covariance(ctrl, 4.0)
    w, V = np.linalg.eigh(cov)
    w_new = np.linalg.eigvalsh(clipped.cov)
    np.testing.assert_allclose(w_new, np.minimum(w, 4.0), rtol=1e-12, atol=1e-12)
    for t in range(6):   # the same eigenvectors: V diagonalises the clipped covariance too
        D = V[t].T @ clipped.cov[t] @ V[t]
        np.testing.assert_allclose(D, np.diag(np.minimum(w[t], 4.0)), atol=1e-12)
    assert np.array_equal(clipped.K, ctrl.K) and np.array_equal(clipped.k, ctrl.k)
    assert guided.clip_action_covariance(ctrl, float(w.max())) is ctrl     # nothing above the bound


def test_max_action_variance_bounds_the_controllers_after_the_warmup_only(peg2d):
    cfg = small_config(warmup_iterations=2, max_action_variance=0.5)
    algo, _ = run(peg2d, cfg, 2)
    plain, _ = run(peg2d, small_config(warmup_iterations=2), 2)
    for c in algo.conditions:                                    # the warm-up is untouched
        assert np.array_equal(algo.controllers[c].cov, plain.controllers[c].cov)
    assert max(np.linalg.eigvalsh(algo.controllers[c].cov).max() for c in algo.conditions) > 0.5
    algo.step()
    for c in algo.conditions:
        assert np.linalg.eigvalsh(algo.controllers[c].cov).max() <= 0.5 * (1 + 1e-12)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="max_action_variance"):
            GuidedConfig(max_action_variance=bad)


def test_warmup_is_validated():
    assert GuidedConfig().warmup_iterations == 0
    assert GPSConfig.from_dict(GPSConfig(guided={"warmup_iterations": 5}).to_dict()).guided.warmup_iterations == 5
    with pytest.raises(ValueError, match="warmup_iterations"):
        GuidedConfig(warmup_iterations=-1)
    for bad in (2.0, "2", True, None):
        with pytest.raises(TypeError, match="warmup_iterations"):
            GuidedConfig(warmup_iterations=bad)


def test_warmup_updates_the_controllers_as_trajectory_only_mode_and_leaves_lambda(peg2d):
    """During the warm-up the controllers are bit for bit those of trajectory-only mode, λ_t and α stay at
    their initial values, and the policy is trained every iteration; then the dual step starts."""
    cfg = small_config(warmup_iterations=2, kl_target=0.02)
    algo, reports = run(peg2d, cfg, 2)
    plain, _ = run(peg2d, cfg.replace(policy=False), 2)
    for c in algo.conditions:
        for name in ("K", "k", "cov"):
            assert np.array_equal(getattr(algo.controllers[c], name), getattr(plain.controllers[c], name))
        assert np.array_equal(algo.guide.lam[c], np.full(T_SHORT, 0.01)) and algo.guide.rate[c] == 0.01
    assert all(r.policy_iterations > 0 and r.lam == (0.01, 0.01) for r in reports)
    guided_report, _ = algo.step(), plain.step()
    assert guided_report.lam != (0.01, 0.01)                     # the policy term is on from iteration 2
    assert not any(np.array_equal(algo.controllers[c].K, plain.controllers[c].K) for c in algo.conditions)


def test_warmup_uses_the_cost_step_rule_until_the_first_guided_update_is_checked(monkeypatch, peg2d):
    calls, _ = _rules_called(monkeypatch, peg2d, iterations=4, warmup_iterations=2)
    assert calls == ["cost"] * 4 + ["dual"] * 2                  # iterations 1, 2 (checks iteration 1's), then 3


def test_mirror_trust_region_is_centred_on_the_policy(monkeypatch, peg2d):
    """With method="mirror" the controllers are optimised from the policy's linearisation without λ terms, so
    the new controller is p ∝ π_lin·exp(−ℓ/η): its covariance is at most the linearisation's at every step,
    and its KL from the linearisation (not from the previous controller) meets the bound."""
    seen = []
    real = gps_module.optimize_trajectory

    def spy(dyn, cost, prev, bound, **kw):
        res = real(dyn, cost, prev, bound, **kw)
        seen.append((dyn, prev, kw, res, bound))
        return res

    monkeypatch.setattr(gps_module, "optimize_trajectory", spy)
    algo, reports = run(peg2d, small_config(method="mirror"), 3)
    assert len(seen) == 6 and all(kw == {"eta0": kw["eta0"]} for _, _, kw, _, _ in seen)
    for dyn, lin, _, res, bound in seen:
        assert lin.cov.shape == res.controller.cov.shape
        gap = np.linalg.eigvalsh(lin.cov - res.controller.cov)
        assert gap.min() > -1e-8 * np.abs(lin.cov).max()
        assert trajectory_kl(dyn, res.controller, lin).sum() == pytest.approx(res.kl)
        assert res.kl <= 1.1 * bound
    assert all(r.lam == () for r in reports)
    assert all(np.array_equal(algo.guide.lam[c], np.full(T_SHORT, 0.01)) for c in algo.conditions)


@pytest.mark.parametrize("when", ["after", "before"])
def test_dual_step_comes_before_or_after_the_controller_update(monkeypatch, peg2d, when):
    """"before": λ steps on the controllers that were sampled (and the policy trained on), then they move;
    "after": the controllers move first and λ steps on the new ones."""
    algo = GPS(peg2d, small_config(dual_step=when), seed=0)
    events = []
    real_duals, real_opt = algo.guide.update_duals, algo._optimize_trajectories
    monkeypatch.setattr(algo.guide, "update_duals",
                        lambda dyns, ctrls, lins: events.append(("duals", ctrls)) or real_duals(dyns, ctrls, lins))
    monkeypatch.setattr(algo, "_optimize_trajectories",
                        lambda *a: events.append(("trajopt", None)) or real_opt(*a))
    sampled = list(algo.controllers.values())
    algo.step()
    order = [e[0] for e in events]
    assert order == (["duals", "trajopt"] if when == "before" else ["trajopt", "duals"])
    used = events[order.index("duals")][1]
    moved = list(algo.controllers.values())
    assert all(a is b for a, b in zip(used, sampled if when == "before" else moved))
    assert not any(a is b for a, b in zip(sampled, moved))


def test_linearization_covariance_is_the_policy_s_own_or_adds_the_fit_residual(peg2d):
    """"policy": every step's covariance is Σ^π exactly; "fit": Σ^π plus a PSD fit residual, same mean."""
    X, _ = peg2d.rollout(peg2d.initial_controller(0), 0, n=5, seed=0)
    lins = {}
    for kind in ("fit", "policy"):
        g = GPSConfig(guided={"hidden_sizes": [8], "linearization_covariance": kind}).guided
        guide = guided.Guide(peg2d, (0,), g, seed=0)
        lins[kind] = guide.linearize([X], np.random.SeedSequence(0))[0]
        cov = guide.policy.covariance()
    assert np.array_equal(lins["policy"].cov, np.broadcast_to(cov, lins["policy"].cov.shape))
    assert np.array_equal(lins["policy"].K, lins["fit"].K) and np.array_equal(lins["policy"].k, lins["fit"].k)
    residual = np.linalg.eigvalsh(lins["fit"].cov - cov)
    assert residual.min() > -1e-9 and residual.max() > 0


# --- observations --------------------------------------------------------------------------------------------
def test_peg_conditions_differ_to_the_policy_only_by_the_tip_offset(peg2d):
    X = np.zeros((2, 3, peg2d.dX))
    o0, o3 = peg2d.observe(X, 0), peg2d.observe(X, 3)
    assert o0.shape == (2, 3, peg2d.dO) and peg2d.dO == peg2d.dX + 2   # the state and the offset (x, z), no p*
    assert np.array_equal(o0[..., :peg2d.dX], X) and np.array_equal(o3[..., :peg2d.dX], X)
    shift = (peg2d.conditions[0].target - peg2d.conditions[3].target)[[0, 2]]
    assert np.abs(shift).max() > 0.2
    np.testing.assert_allclose(o3[..., peg2d.dX:] - o0[..., peg2d.dX:], np.broadcast_to(shift, (2, 3, 2)), atol=1e-12)
    swimmer = gpsx.tasks.make("swimmer")
    Xs = np.arange(2 * 3 * swimmer.dX, dtype=float).reshape(2, 3, swimmer.dX)
    assert swimmer.dO == swimmer.dX and np.array_equal(swimmer.observe(Xs, 0), Xs)   # no goal: the state alone


@pytest.mark.parametrize("name", gpsx.tasks.names())
def test_every_task_observes_dO_numbers_starting_with_the_state(name):
    task = gpsx.tasks.make(name)
    X = task.rollout(task.initial_controller(0), 0, n=2, seed=0)[0][:, :7]  # (2, 7, dX): real states
    for c in (0, task.test_conditions[0]):
        obs = task.observe(X, c)
        assert obs.shape == (2, 7, task.dO) and np.isfinite(obs).all()
        assert np.array_equal(obs[..., :task.dX], X)
        np.testing.assert_array_equal(task.observe(X[0, 3], c), obs[0, 3])  # one state alone: the same numbers
    with pytest.raises(ShapeError, match="last axis"):
        task.observe(X[..., 1:], 0)


def test_the_octopus_policy_also_observes_its_tip_relative_to_the_target():
    octopus = gpsx.tasks.make("octopus")
    X = octopus.rollout(octopus.initial_controller(0), 0, n=2, seed=0)[0]  # (2, T, dX), the arm moving
    straight_arm_tip = np.array([1.0, 0.0])  # where every rollout starts
    for c in (0, 5):
        obs, target = octopus.observe(X, c), octopus.conditions[c].target
        assert octopus.dO == octopus.dX + 4 and obs.shape == (2, octopus.T, octopus.dO)
        assert np.array_equal(obs[..., :octopus.dX], X) and np.array_equal(obs[0, 0, -2:], target)
        np.testing.assert_allclose(obs[..., octopus.dX:octopus.dX + 2], octopus.tip_positions(X) - target, atol=1e-12)
        np.testing.assert_allclose(obs[0, 0, octopus.dX:octopus.dX + 2], straight_arm_tip - target, atol=1e-9)


@pytest.mark.parametrize("name, axes, start_tip, slot", [("peg2d", [0, 2], [0.47, 0.0, 0.30], False),  # docstrings
                                                           ("peg3d", [0, 1, 2], [0.45, 0.0, 0.30], True)])
def test_the_peg_policies_also_observe_the_tip_relative_to_the_slot_bottom(name, axes, start_tip, slot):
    task = gpsx.tasks.make(name)
    X = task.rollout(task.initial_controller(0), 0, n=2, seed=0)[0][:, :50]  # (2, 50, dX), the arm moving
    assert task.dO == task.dX + len(axes) + 3 * slot
    for c in (0, task.test_conditions[0]):
        obs, target = task.observe(X, c), task.conditions[c].target
        offset = obs[..., task.dX:task.dX + len(axes)]
        np.testing.assert_allclose(offset, (task.tip_positions(X, c) - target)[..., axes], atol=1e-12)
        np.testing.assert_allclose(offset[0, 0], (np.array(start_tip) - target)[axes], atol=1e-3)  # the start's IK
        if slot:
            assert np.array_equal(obs[..., -3:], np.broadcast_to(target, (2, 50, 3)))
    with pytest.raises(IndexError, match="conditions"):   # the tip is the same everywhere, the index still checked
        task.tip_positions(X, len(task.conditions))


def test_the_walker_policy_also_observes_its_feet():
    walker = gpsx.tasks.make("walker")
    X = walker.rollout(walker.initial_controller(0), 0, n=2, seed=0)[0]  # the gait: each foot lifts and lands
    obs = walker.observe(X, 0)
    assert walker.dO == walker.dX + 4 and obs.shape == (2, walker.T, walker.dO)
    assert np.array_equal(obs[..., :walker.dX], X)
    for leg in (0, 1):
        ahead, lowest = leg_geometry(X, leg)
        assert np.array_equal(obs[..., walker.dX + 2 * leg], ahead)
        assert np.array_equal(obs[..., walker.dX + 2 * leg + 1], lowest)
    for height in (walker.dX + 1, walker.dX + 3):
        assert obs[..., height].min() < 0.005 and obs[..., height].max() > 0.05  # on the floor, then lifted


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


# --- the controller reset ------------------------------------------------------------------------------------
def test_policy_controller_is_the_policy_linearised_about_its_own_rollout(peg2d):
    policy = GaussianMLPPolicy(peg2d.dO, peg2d.dU, (20, 20), seed=3)
    cov = np.broadcast_to(2.0 * np.eye(peg2d.dU), (peg2d.T, peg2d.dU, peg2d.dU))
    ctrl = policy_controller(peg2d, policy, 1, cov)
    X, _ = peg2d.rollout(ObservedPolicy(policy, peg2d, 1), 1, n=1, noise=False)
    Xc, _ = peg2d.rollout(ctrl, 1, n=1, noise=False)
    assert np.abs(Xc - X).max() < 1e-8 * (1 + np.abs(X).max())        # the same rollout, noise-free
    mean = lambda x: policy.mean(peg2d.observe(x, 1))
    x = X[0]
    assert np.allclose(np.einsum("tux,tx->tu", ctrl.K, x) + ctrl.k, mean(x), rtol=0, atol=1e-10)
    h = 1e-4                                                           # an independent one-sided difference
    jac = np.stack([(mean(x + h * e) - mean(x)) / h for e in np.eye(peg2d.dX)], axis=-1)
    assert np.allclose(ctrl.K, jac, rtol=1e-3, atol=1e-3 * np.abs(jac).max())
    assert np.array_equal(ctrl.cov, cov)


def _condition_0_succeeds(task, policy, conditions):
    """Stands in for :func:`policy_outcomes`: the policy's rollout succeeds on condition 0 only (cost 1)."""
    return [PolicyOutcome(c, 1.0, c == 0) for c in conditions]


def test_controller_reset_hands_the_policy_to_conditions_whose_samples_all_fail(monkeypatch, peg2d):
    """Condition 0's policy rollout is made to succeed, condition 3's to fail; at T=40 no sample succeeds."""
    monkeypatch.setattr(gps_module, "policy_outcomes", _condition_0_succeeds)
    algo, reports = run(peg2d, small_config(controller_reset=True), 1)
    plain, plain_reports = run(peg2d, small_config(), 1)
    assert reports[0].success == (0.0, 0.0)
    assert reports[0].controller_reset == (True, False) and plain_reports[0].controller_reset == (False, False)
    cov = np.broadcast_to(algo.policy.covariance(), plain.controllers[0].cov.shape)
    reset = policy_controller(peg2d, algo.policy, 0, cov)
    for name in ("K", "k", "cov"):
        assert np.array_equal(getattr(algo.controllers[0], name), getattr(reset, name))
        assert np.array_equal(getattr(algo.controllers[3], name), getattr(plain.controllers[3], name))
    assert algo._states[0].last is None and algo._states[1].last is not None
    # a condition with a successful sample keeps its controller, whatever the policy does
    monkeypatch.setattr(peg2d, "success", lambda X, c: np.ones(len(X), dtype=bool))
    algo, reports = run(peg2d, small_config(controller_reset=True), 1)
    assert reports[0].controller_reset == (False, False)
    assert np.array_equal(algo.controllers[0].K, plain.controllers[0].K)


def test_controller_reset_falls_back_on_the_best_policy_where_the_policy_fails(monkeypatch, peg2d):
    """The live policy's rollouts are made to fail everywhere, a copy's (the best policy) to succeed on condition
    0: the first iteration's best is the live policy itself, so nothing is reset; the second's is iteration 0's."""
    algo = GPS(peg2d, small_config(controller_reset=True), seed=0)
    live = algo.guide.policy
    monkeypatch.setattr(gps_module, "policy_outcomes", lambda task, policy, conditions: [
        PolicyOutcome(c, 1.0, c == 0 and policy is not live) for c in conditions])
    reports = list(algo.run(2))
    assert [r.success for r in reports] == [(0.0, 0.0)] * 2
    assert [r.controller_reset for r in reports] == [(False, False), (True, False)]
    assert algo.best_policy.iteration == 0 and algo._states[0].last is None and algo._states[1].last is not None
    best = algo.best_policy.policy
    reset = policy_controller(peg2d, best, 0, np.broadcast_to(best.covariance(), algo.controllers[0].cov.shape))
    for name in ("K", "k", "cov"):
        assert np.array_equal(getattr(algo.controllers[0], name), getattr(reset, name))


# --- the best policy -----------------------------------------------------------------------------------------
def test_best_policy_is_chosen_on_trained_successes_then_cost(peg2d):
    guide = guided.Guide(peg2d, (0, 3), GuidedConfig(hidden_sizes=(4,)), seed=0)
    outcome = guided.PolicyOutcome
    seen = []
    for iteration, trained in enumerate([
            [outcome(0, 10.0, False), outcome(3, 20.0, False)],
            [outcome(0, 50.0, True), outcome(3, 60.0, False)],          # more successes beat a lower cost
            [outcome(0, 40.0, True), outcome(3, float("nan"), False)],  # a diverged rollout costs infinity
            [outcome(0, 30.0, True), outcome(3, 20.0, False)],          # as many successes, lower cost
            [outcome(0, 30.0, True), outcome(3, 21.0, False)]]):
        guide.policy.set_params(guide.policy.get_params() + 1.0)   # a different policy every iteration
        seen.append(guide.policy.get_params())
        guide.consider(iteration, trained)
        assert guide.best.iteration == [0, 1, 1, 3, 3][iteration]
    assert (guide.best.successes, guide.best.cost) == (1, 50.0)
    assert np.array_equal(guide.best.policy.get_params(), seen[3])   # a copy, not the live policy


def test_best_policy_of_a_run_is_its_best_reported_iteration(peg2d):
    algo, reports = run(peg2d, small_config(), 4)
    best = algo.best_policy
    assert best.iteration == best_reported_iteration(reports)
    X, U = peg2d.rollout(ObservedPolicy(best.policy, peg2d, 3), 3, n=1, noise=False)
    assert peg2d.cost(X, U, 3).sum() == pytest.approx(reports[best.iteration].policy_cost[1])


# --- checkpoints ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("g", [{"method": "dual"}, {"method": "mirror"}, {"warmup_iterations": 2},
                               {"controller_reset": True}])
def test_resumed_guided_run_is_bit_identical_to_an_uninterrupted_one(peg2d, tmp_path, g, monkeypatch):
    """With a warm-up of 2 the checkpoint falls between the last warm-up update and the first guided one; with
    the reset, condition 0's controller is reset after every iteration, the checkpoint's included."""
    if g.get("controller_reset"):
        monkeypatch.setattr(gps_module, "policy_outcomes", _condition_0_succeeds)
    straight, reports = run(peg2d, small_config(**g), 4, seed=7)
    interrupted, _ = run(peg2d, small_config(**g), 2, seed=7)
    interrupted.save(tmp_path / "ckpt.npz")
    resumed = GPS.load(tmp_path / "ckpt.npz")
    assert resumed.policy is not None and resumed.iteration == 2
    last = list(resumed.run(4))
    assert all(r.controller_reset == (True, False) for r in reports) == bool(g.get("controller_reset"))
    for a, b in zip(reports[2:], last):
        da, db = a.to_dict(), b.to_dict()
        da.pop("timings"), db.pop("timings")
        assert da == db
    meta_a, arr_a = checkpoint.read(_saved(straight, tmp_path / "a.npz"))
    meta_b, arr_b = checkpoint.read(_saved(resumed, tmp_path / "b.npz"))
    assert meta_a == meta_b and arr_a.keys() == arr_b.keys()
    assert any(k.startswith("policy.") for k in arr_a) and any(".buffer." in k for k in arr_a)
    assert any(k.startswith("best.") for k in arr_a) and meta_a["guided"]["best"] is not None
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


def test_a_checkpoint_whose_policy_sees_other_inputs_is_refused_by_name():
    config = GuidedConfig()
    swimmer = guided.Guide(gpsx.tasks.make("swimmer"), (0,), config, seed=0)
    walker = guided.Guide(gpsx.tasks.make("walker"), (0,), config, seed=0)
    meta, arrays = swimmer.state()
    with pytest.raises(CheckpointError, match=r"\(10, 2\), the task needs \(22, 6\)"):
        walker.restore(meta, arrays)


def test_relabel_gives_each_state_the_controllers_mean_action():
    rng = np.random.default_rng(4)
    T, dX, dU = 3, 4, 2
    controller = LinearGaussianController.from_gains(T, dX, dU, K=rng.standard_normal((T, dU, dX)),
                                                     k=rng.standard_normal((T, dU)))
    X = rng.standard_normal((5, T, dX))
    want = np.array([[controller.K[t] @ X[i, t] + controller.k[t] for t in range(T)] for i in range(5)])
    np.testing.assert_allclose(guided.relabel(controller, X), want, rtol=1e-14, atol=1e-14)
