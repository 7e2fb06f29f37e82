"""The GPS loop (Levine & Abbeel 2014, Algorithm 1): guided policy search, or trajectory optimisation alone.

One iteration, per condition (each condition has its own controller, dynamics prior, η and step multiplier):

1. **sampling**: ``samples_per_condition`` rollouts of the current controller (joblib across conditions when
   ``jobs`` > 1); diverged rollouts are reported and left out;
2. **dynamics**: the GMM prior takes the new samples, then the linear-Gaussian dynamics are fitted to them;
3. **cost**: the cost's analytic expansion at every sample, averaged into a quadratic model
   (:mod:`gpsx.cost_expansion`);
4. **trajopt**: the step multiplier is adapted from predicted vs actual improvement (:mod:`gpsx.step_size`),
   then the controller is re-optimised under KL(p_new ‖ p_cur) ≤ kl_step · T · step_mult
   (:func:`gpsx.optimize_trajectory`).

With ``config.policy`` (the default) the policy phases of :mod:`gpsx.guided` run between 3 and 4, in the
order of Appendix A (sample from the new p, train the policy on those samples, then update p):

- **policy**: this iteration's states join the relabelling buffer and the policy is trained on it;
- **linearization**: the trained policy is linearised around this iteration's samples;
- **trajopt**: as 4, with ``policy=lin, lam=λ`` (``guided.step_rule`` picks the step rule's estimates); then
  λ_t takes its dual step (KL(π‖p) under the new controllers; with ``guided.dual_step="before"`` the dual
  step comes before the trajectory optimisation instead, on the policy and the controller it was trained
  on). With ``guided.method="mirror"`` the trust
  region is centred on the policy instead, KL(p_new ‖ lin) ≤ ε, without λ terms or dual step. During the
  first ``guided.warmup_iterations`` iterations trajopt is the trajectory-only step 4 and λ_t takes no dual
  step (the policy is still trained and linearised, so its prior is fitted when the policy term starts);
  after them, ``guided.max_action_variance`` (if set) clips each updated controller's covariance;
- **evaluation**: one noise-free rollout of the policy's mean on every trained and every held-out test
  condition (noise-free: deterministic, so one rollout says what the policy does; the noisy samples of the
  controllers are reported separately).

Threads: an iteration runs with BLAS and OpenMP limited to one thread (``threadpoolctl``). The matrices are
small, and on a shared machine the scikit-learn EM of the prior was measured 10–30× slower with the default
thread pools than with one thread; parallelism comes from ``jobs`` instead.

Randomness: the run's seed is a ``numpy.random.SeedSequence``; iteration i and condition m use the child
``SeedSequence(entropy, spawn_key=(i, m))`` (split into the sampling noise and the prior's EM). Results
therefore depend neither on ``jobs`` nor on whether the run was checkpointed and resumed. That needs the
checkpoint to restore memory layouts where they change the order of floating-point sums: the GMM priors'
precision factors (:mod:`gpsx.gmm_prior`; without it a resumed full-horizon peg2d run differed by 1e-13 at
its next iteration and then became a different run, docs/results.md, issue 6, session 8).
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from os import PathLike
from typing import Any, Iterator, Mapping

import numpy as np
from threadpoolctl import threadpool_limits

from . import checkpoint
from .config import GPSConfig
from .containers import LinearGaussianController, LinearGaussianDynamics, QuadraticCost
from .cost_expansion import quadratic_cost
from .dynamics import DynamicsPrior, fit_dynamics
from .errors import CheckpointError, NotPositiveDefiniteError
from .guided import (BestPolicy, Guide, PolicyOutcome, adapt_step_gps, adapt_step_mirror, clip_action_covariance,
                     policy_controller, policy_outcomes)
from .lqr import optimize_trajectory, policy_kl
from .sampling import Rollouts
from .step_size import StepUpdate, adapt_step

__all__ = ["GPS", "IterationReport", "PHASES", "POLICY_PHASES"]

logger = logging.getLogger(__name__)

#: Timed phases of an iteration, in order: trajectory-only mode, and guided policy search.
PHASES = ("sampling", "dynamics", "cost", "trajopt")
POLICY_PHASES = ("sampling", "dynamics", "cost", "policy", "linearization", "trajopt", "evaluation")


@dataclass(frozen=True)
class IterationReport:
    """What one iteration did. Tuples run over ``conditions``.

    iteration: 0-based index; samples_used: rollouts taken so far over all conditions (this iteration's
    included); mean_cost: mean total cost of this iteration's (valid) samples; success: fraction of this
    iteration's samples that solve the task (a diverged sample counts as a failure); invalid_samples:
    diverged rollouts left out; kl: KL(p_new ‖ p_cur) of the update; kl_bound: its bound ε; updated:
    False where the η search failed (``NotPositiveDefiniteError``) and the controller was kept unchanged
    (kl 0); eta: the η found; step_mult: the step multiplier of this update (kl_bound = kl_step · T ·
    step_mult); timings: seconds per phase (:data:`PHASES`, or :data:`POLICY_PHASES` with the policy).

    With the policy (empty / None in trajectory-only mode): policy_cost, policy_success: total cost and
    success of one noise-free rollout of the policy's mean per trained condition (cost NaN if it diverged);
    test_conditions, test_policy_cost, test_policy_success: the same on the task's held-out test conditions;
    policy_kl: mean over t of E_p KL(π‖p) under the new controller (with ``guided.dual_step="before"``: under
    the controller the policy was trained on, the KL the dual step used); lam: mean λ_t after the dual step (during
    the warm-up, which takes none: unchanged; empty with ``guided.method="mirror"``, which has no λ);
    policy_objective, policy_initial_objective: the training objective after/before this iteration's
    L-BFGS run; policy_iterations: L-BFGS iterations it took; policy_train_samples: (sample, step) pairs
    trained on; controller_reset: per trained condition, whether its controller was replaced by the policy's
    (or the best policy's, where ``policy_success`` is False) after this iteration (``guided.controller_reset``).
    """

    iteration: int
    samples_used: int
    conditions: tuple[int, ...]
    mean_cost: tuple[float, ...]
    success: tuple[float, ...]
    invalid_samples: tuple[int, ...]
    kl: tuple[float, ...]
    kl_bound: tuple[float, ...]
    updated: tuple[bool, ...]
    eta: tuple[float, ...]
    step_mult: tuple[float, ...]
    timings: dict[str, float]
    action_variance: tuple[float, ...] = ()
    policy_cost: tuple[float, ...] = ()
    policy_success: tuple[bool, ...] = ()
    test_conditions: tuple[int, ...] = ()
    test_policy_cost: tuple[float, ...] = ()
    test_policy_success: tuple[bool, ...] = ()
    policy_kl: tuple[float, ...] = ()
    lam: tuple[float, ...] = ()
    policy_objective: float | None = None
    policy_initial_objective: float | None = None
    policy_iterations: int | None = None
    policy_train_samples: int | None = None
    controller_reset: tuple[bool, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (one line of ``metrics.jsonl``)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "IterationReport":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass(frozen=True)
class _Update:
    """What produced a condition's current controller: the controller it started from (with
    ``guided.method="mirror"`` the policy linearisation), the dynamics and the cost model it was optimised under
    (the "old" side of the step-size rule), and with the "dual" policy terms the linearisation and λ it was
    optimised with."""

    start: LinearGaussianController
    dyn: LinearGaussianDynamics
    cost: QuadraticCost
    lin: LinearGaussianController | None = None
    lam: np.ndarray | None = None


@dataclass
class _ConditionState:
    index: int
    controller: LinearGaussianController
    prior: DynamicsPrior
    eta: float
    step_mult: float
    last: _Update | None = None


@dataclass(frozen=True)
class _Batch:
    """One condition's valid samples of this iteration and how many rollouts diverged."""

    X: np.ndarray
    U: np.ndarray
    invalid: int


@contextmanager
def _timed(timings: dict[str, float], phase: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = time.perf_counter() - t0


def _sample_condition(task, controller: LinearGaussianController, condition: int, n: int, seed: int) -> Rollouts:
    """Module-level so joblib workers can run it."""
    return task.sample(controller, condition, n, seed=seed, noise=True)


class GPS:
    """Guided Policy Search on a task: linear-Gaussian controllers per condition guiding a neural-network
    policy (``config.policy``, the default), or the controllers alone (``policy=False``).

    >>> algo = GPS(gpsx.tasks.make("swimmer"), GPSConfig(samples_per_condition=5), seed=0)
    >>> for report in algo.run(iterations=20): ...
    >>> algo.save("swimmer.gpsx"); algo = GPS.load("swimmer.gpsx")
    """

    def __init__(self, task, config: GPSConfig | None = None, seed: int | None = 0,
                 initial_controllers: Mapping[int, LinearGaussianController] | None = None):
        """``initial_controllers``: condition -> controller to start from (e.g. a demonstration's stabilising
        controller); conditions not given start from ``task.initial_controller(c)``. ``config.initial_noise_scale``
        scales the covariance of either."""
        self.task = task
        self.config = config if config is not None else GPSConfig()
        if not isinstance(self.config, GPSConfig):
            raise TypeError(f"config must be a GPSConfig, got {type(self.config).__name__}")
        conds = self.config.conditions or tuple(task.train_conditions)
        for c in conds:
            if not 0 <= c < len(task.conditions):
                raise ValueError(f"condition {c} does not exist: {task.name} has conditions "
                                 f"0..{len(task.conditions) - 1}")
        #: entropy of the run's SeedSequence (a random one when ``seed`` is None)
        self.entropy: int = np.random.SeedSequence(seed).entropy
        #: iterations completed
        self.iteration = 0
        #: rollouts taken so far, over all conditions
        self.samples_used = 0
        given = dict(initial_controllers or {})
        unknown = set(given) - set(conds)
        if unknown:
            raise ValueError(f"initial_controllers for conditions {sorted(unknown)} that are not trained: {conds}")
        self._states = [self._initial_state(c, given.get(c)) for c in conds]
        root = int(np.random.SeedSequence(self.entropy).generate_state(1)[0])
        #: the policy half (None in trajectory-only mode)
        self.guide = Guide(task, conds, self.config.guided, seed=root) if self.config.policy else None

    def _initial_state(self, condition: int, ctrl: LinearGaussianController | None) -> _ConditionState:
        if ctrl is None:
            ctrl = self.task.initial_controller(condition)
        elif (ctrl.T, ctrl.dX, ctrl.dU) != (need := (self.task.T, self.task.dX, self.task.dU)):
            raise ValueError(f"initial controller of condition {condition} has (T, dX, dU) = "
                             f"{(ctrl.T, ctrl.dX, ctrl.dU)}, the task needs {need}")
        scale = self.config.initial_noise_scale
        if scale != 1.0:
            ctrl = LinearGaussianController(ctrl.K, ctrl.k, scale * ctrl.cov)
        p = self.config.dynamics_prior
        prior = DynamicsPrior(p.max_clusters, p.min_samples_per_cluster, p.max_samples, p.strength,
                              em_iterations=p.em_iterations, max_em_points=p.max_em_points)
        return _ConditionState(condition, ctrl, prior, self.config.initial_eta, self.config.initial_step_mult)

    # --- public state --------------------------------------------------------------------------------------
    @property
    def conditions(self) -> tuple[int, ...]:
        """The conditions trained on."""
        return tuple(s.index for s in self._states)

    @property
    def policy(self):
        """The neural-network policy (a :class:`gpsx.policy.GaussianMLPPolicy` on ``task.observe(x, c)``), or
        None in trajectory-only mode."""
        return None if self.guide is None else self.guide.policy

    @property
    def best_policy(self) -> BestPolicy | None:
        """The policy after the iteration whose noise-free rollouts succeeded on the most trained conditions (ties:
        the lowest total cost), chosen on trained conditions only (:meth:`gpsx.guided.Guide.consider`); None in
        trajectory-only mode or before the first iteration."""
        return None if self.guide is None else self.guide.best

    @property
    def controllers(self) -> dict[int, LinearGaussianController]:
        """The current controller of every trained condition (what the next iteration samples)."""
        return {s.index: s.controller for s in self._states}

    # --- the loop ------------------------------------------------------------------------------------------
    def run(self, iterations: int | None = None) -> Iterator[IterationReport]:
        """Iterate until ``iterations`` (default ``config.iterations``) have been done in total, yielding a
        report after each; a loaded (resumed) run continues from where it stopped."""
        total = self.config.iterations if iterations is None else int(iterations)
        while self.iteration < total:
            yield self.step()

    def step(self) -> IterationReport:
        """One iteration: sample, fit dynamics, expand costs, (train and linearise the policy,) optimise the
        controllers (and update λ, evaluate the policy)."""
        with threadpool_limits(limits=1):
            return self._step()

    def _step(self) -> IterationReport:
        timings: dict[str, float] = {}
        seeds = [np.random.SeedSequence(self.entropy, spawn_key=(self.iteration, s.index)).spawn(2)
                 for s in self._states]
        with _timed(timings, "sampling"):
            batches = self._sample([int(ss[0].generate_state(1, np.uint64)[0]) for ss in seeds])
        with _timed(timings, "dynamics"):
            dyns = self._fit_dynamics(batches, [ss[1] for ss in seeds])
        with _timed(timings, "cost"):
            costs, sample_costs = self._expand_costs(batches)
        n = self.config.samples_per_condition
        success = [float(self.task.success(b.X, s.index).sum()) / n if len(b.X) else 0.0
                   for s, b in zip(self._states, batches)]
        extra: dict[str, Any] = {}
        if self.guide is None:
            with _timed(timings, "trajopt"):
                results = self._optimize_trajectories(dyns, costs, None)
        else:
            results = self._guided_phases(batches, dyns, costs, success, timings, extra)
        self.samples_used += n * len(self._states)
        report = IterationReport(
            iteration=self.iteration, samples_used=self.samples_used, conditions=self.conditions,
            mean_cost=tuple(sample_costs), success=tuple(success),
            invalid_samples=tuple(b.invalid for b in batches),
            kl=tuple(r[0] for r in results), kl_bound=tuple(r[1] for r in results),
            updated=tuple(r[2] for r in results),
            eta=tuple(s.eta for s in self._states), step_mult=tuple(s.step_mult for s in self._states),
            timings=timings, action_variance=tuple(_action_variance(s.controller) for s in self._states),
            **extra)
        self.iteration += 1
        logger.info("iteration %d: mean cost %s, KL %s, eta %s (%.2f s)", report.iteration,
                    _fmt(report.mean_cost), _fmt(report.kl), _fmt(report.eta), sum(timings.values()))
        if self.guide is not None:
            logger.info("iteration %d: policy cost %s (test %s), KL(pi||p) %s, mean lambda %s", report.iteration,
                        _fmt(report.policy_cost), _fmt(report.test_policy_cost), _fmt(report.policy_kl),
                        _fmt(report.lam))
        return report

    # --- phases --------------------------------------------------------------------------------------------
    def _sample(self, seeds: list[int]) -> list[_Batch]:
        """Roll out every condition's controller (in parallel across conditions when ``jobs`` > 1)."""
        n, jobs = self.config.samples_per_condition, min(self.config.jobs, len(self._states))
        args = [(self.task, s.controller, s.index, n, seed) for s, seed in zip(self._states, seeds)]
        if jobs > 1:
            from joblib import Parallel, delayed

            rollouts = Parallel(n_jobs=jobs)(delayed(_sample_condition)(*a) for a in args)
        else:
            rollouts = [_sample_condition(*a) for a in args]
        batches = []
        for s, r in zip(self._states, rollouts):
            valid = r.valid
            if not valid.any():
                r.check()   # raises RolloutDivergedError naming the sample and step
            if not valid.all():
                bad = int(np.flatnonzero(~valid)[0])
                logger.warning("iteration %d, condition %d: %d of %d rollouts diverged and are left out "
                               "(sample %d: %s)", self.iteration, s.index, int((~valid).sum()), n, bad,
                               r.reason[bad])
            batches.append(_Batch(r.X[valid], r.U[valid], int((~valid).sum())))
        return batches

    def _fit_dynamics(self, batches: list[_Batch], prior_seeds) -> list[LinearGaussianDynamics]:
        """Update each condition's GMM prior with its samples and fit the linear-Gaussian dynamics."""
        dyns = []
        for s, b, seed in zip(self._states, batches, prior_seeds):
            s.prior.reseed(seed)
            s.prior.update(b.X, b.U)
            dyns.append(fit_dynamics(b.X, b.U, prior=s.prior))
        return dyns

    def _expand_costs(self, batches: list[_Batch]) -> tuple[list[QuadraticCost], list[float]]:
        """Quadratic cost models and the mean total cost of the samples, per condition."""
        costs, totals = [], []
        for s, b in zip(self._states, batches):
            d = self.task.cost.derivatives(b.X, b.U, s.index)
            costs.append(quadratic_cost(d, b.X, b.U))
            totals.append(float(d.l.sum(axis=1).mean()))
        return costs, totals

    def _guided_phases(self, batches: list[_Batch], dyns, costs, success: list[float], timings: dict[str, float],
                       extra: dict[str, Any]) -> list[tuple[float, float, bool]]:
        """Train and linearise the policy, optimise the controllers towards it, update λ, evaluate the policy
        (and with ``guided.controller_reset`` hand it, or the best policy so far, to the conditions whose samples
        all failed: ``success``, their shares of successful samples); the report's policy fields go into
        ``extra``. Returns what :meth:`_optimize_trajectories` does."""
        guide, states, warmup = self.guide, [b.X for b in batches], not self._policy_term(self.iteration)
        with _timed(timings, "policy"):
            guide.remember(states)
            trained = guide.train([s.controller for s in self._states])
        dual = not (self._mirror or warmup)
        before = dual and guide.config.dual_step == "before"
        with _timed(timings, "linearization"):
            lins = guide.linearize(states, np.random.SeedSequence(self.entropy, spawn_key=(self.iteration,)))
            if before:
                kls = guide.update_duals(dyns, [s.controller for s in self._states], lins)
        with _timed(timings, "trajopt"):
            results = self._optimize_trajectories(dyns, costs, None if warmup else lins)
            ctrls = [s.controller for s in self._states]
            if not dual:
                kls = [float(policy_kl(*a).mean()) for a in zip(dyns, ctrls, lins)]
            elif not before:
                kls = guide.update_duals(dyns, ctrls, lins)
        with _timed(timings, "evaluation"):
            train = policy_outcomes(self.task, guide.policy, self.conditions)
            test = policy_outcomes(self.task, guide.policy, self.task.test_conditions)
            guide.consider(self.iteration, train)
            reset = self._reset_to_policy(train, success) if guide.config.controller_reset else (False,) * len(train)
        extra.update(
            policy_cost=_costs(train), policy_success=_successes(train),
            test_conditions=tuple(self.task.test_conditions), test_policy_cost=_costs(test),
            test_policy_success=_successes(test), policy_kl=tuple(kls),
            lam=() if self._mirror else tuple(float(guide.lam[c].mean()) for c in self.conditions),
            policy_objective=trained.objective, policy_initial_objective=trained.initial_objective,
            policy_iterations=trained.iterations, policy_train_samples=trained.n_samples, controller_reset=reset)
        return results

    def _reset_to_policy(self, trained: list[PolicyOutcome], success: list[float]) -> tuple[bool, ...]:
        """``guided.controller_reset``: each trained condition whose samples all failed (``success`` 0) gets
        :func:`policy_controller` of the policy, with its Σ^π, if the policy's rollout there succeeded
        (``trained``); else that of the best policy so far (:attr:`best_policy`, an earlier iteration's) if its
        rollout there succeeds. Returns which conditions were reset."""
        best = self.guide.best
        earlier = best.policy if best is not None and best.iteration < self.iteration else None
        reset = []
        for s, outcome, share in zip(self._states, trained, success):
            leader = None
            if share == 0.0 and outcome.success:
                leader, whose = self.guide.policy, "the policy's"
            elif share == 0.0 and earlier is not None and policy_outcomes(self.task, earlier, [s.index])[0].success:
                leader, whose = earlier, f"the best policy's (iteration {best.iteration})"
            reset.append(leader is not None)
            if leader is not None:
                cov = np.broadcast_to(leader.covariance(), (self.task.T, self.task.dU, self.task.dU))
                s.controller = policy_controller(self.task, leader, s.index, cov)
                s.last = None       # the step rule has no prediction of its own to check for this controller
                logger.info("iteration %d, condition %d: every sample failed where %s rollout succeeds: its "
                            "controller is reset to that policy", self.iteration, s.index, whose)
        return tuple(reset)

    def _optimize_trajectories(self, dyns, costs, lins) -> list[tuple[float, float, bool]]:
        """Adapt each step multiplier, then take the KL-bounded step; returns (KL, bound, updated) per condition.

        If the η search fails (Q_uu indefinite up to η = 1e16) the condition keeps its controller for this
        iteration (with a warning) rather than ending the run: the next iteration's samples and fit may differ,
        and the failure is recorded in the report (``updated``). Without an update the step rule skips the
        next iteration.

        ``lins``: the policy linearisation per condition (guided mode, λ from the guide), or None (trajectory-only
        mode, and the guided warm-up).
        """
        cfg = self.config
        out = []
        for i, (s, dyn, cost) in enumerate(zip(self._states, dyns, costs)):
            lin = None if lins is None else lins[i]
            lam = None if lins is None or self._mirror else self.guide.lam[s.index].copy()
            start = lin if self._mirror else s.controller
            guided = {} if lam is None else {"policy": lin, "lam": lam}
            if s.last is not None:
                upd = self._adapt_step(s, dyn, cost, lin)
                logger.debug("condition %d: predicted improvement %.4g, actual %.4g, step_mult %.4g -> %.4g",
                             s.index, upd.predicted, upd.actual, s.step_mult, upd.step_mult)
                s.step_mult = upd.step_mult
            bound = cfg.kl_step * dyn.T * s.step_mult
            try:
                res = optimize_trajectory(dyn, cost, start, bound, eta0=s.eta, **guided)
            except NotPositiveDefiniteError as exc:
                logger.warning("iteration %d, condition %d: trajectory optimisation failed, controller kept: %s",
                               self.iteration, s.index, exc)
                s.last = None
                out.append((0.0, bound, False))
                continue
            s.last = _Update(start, dyn, cost, None if lam is None else lin, lam)
            s.controller, s.eta = res.controller, res.eta
            cap = cfg.guided.max_action_variance if lin is not None else None
            if cap is not None:
                s.controller = clip_action_covariance(s.controller, cap)
            out.append((res.kl, bound, True))
        return out

    def _adapt_step(self, s: _ConditionState, dyn, cost, lin):
        """The step rule for a condition with a previous update; with the policy ``guided.step_rule`` picks the
        estimates (:class:`gpsx.config.GuidedConfig`), without it the rule runs on the Laplace cost. So does
        the first update after the warm-up: the previous update, whose prediction is checked, had no policy."""
        cfg = self.config
        rule = "cost" if lin is None or not self._policy_term(self.iteration - 1) else cfg.guided.step_rule
        if rule == "fixed":
            return StepUpdate(s.step_mult, float("nan"), float("nan"))
        if rule == "cost":
            return adapt_step(s.step_mult, s.last.start, s.controller, s.last.dyn, s.last.cost, dyn, cost,
                              cfg.min_step_mult, cfg.max_step_mult)
        if self._mirror:
            return adapt_step_mirror(s.step_mult, s.last.start, s.controller, (s.last.dyn, s.last.cost),
                                     (dyn, cost, lin), cfg.min_step_mult, cfg.max_step_mult)
        return adapt_step_gps(s.step_mult, s.last.start, s.controller, (s.last.dyn, s.last.cost, s.last.lin),
                              (dyn, cost, lin), s.last.lam, cfg.min_step_mult, cfg.max_step_mult)

    def _policy_term(self, iteration: int) -> bool:
        """The controller update of ``iteration`` is guided by the policy: there is one, and the warm-up
        (``guided.warmup_iterations``, trajectory-only updates) is over."""
        return self.guide is not None and iteration >= self.config.guided.warmup_iterations

    @property
    def _mirror(self) -> bool:
        """Guided policy search with the trust region centred on the policy (``guided.method="mirror"``)."""
        return self.guide is not None and self.config.guided.method == "mirror"

    # --- checkpoints ---------------------------------------------------------------------------------------
    def save(self, path: str | PathLike) -> None:
        """Write the complete state (atomically) to ``path``: arrays in an ``.npz``, settings as JSON."""
        meta = {"task": self.task.name, "horizon": self.task.T, "config": self.config.to_dict(),
                "entropy": self.entropy, "iteration": self.iteration, "samples_used": self.samples_used,
                "conditions": [{"index": s.index, "eta": s.eta, "step_mult": s.step_mult,
                                "has_last": s.last is not None} for s in self._states]}
        arrays: dict[str, np.ndarray] = {}
        for s in self._states:
            parts: dict[str, Any] = {"controller": s.controller}
            if s.last is not None:
                parts.update(start=s.last.start, dyn=s.last.dyn, cost=s.last.cost)
                if s.last.lin is not None:
                    parts["lin"] = s.last.lin
                    arrays[f"c{s.index}.last_lam"] = s.last.lam
            for part, obj in parts.items():
                for name in type(obj).__dataclass_fields__:
                    arrays[f"c{s.index}.{part}.{name}"] = getattr(obj, name)
            for name, value in s.prior.state_arrays().items():
                arrays[f"c{s.index}.prior.{name}"] = value
        if self.guide is not None:
            meta["guided"], guide_arrays = self.guide.state()
            arrays.update(guide_arrays)
        checkpoint.write(path, meta, arrays)

    @classmethod
    def load(cls, path: str | PathLike, task=None) -> "GPS":
        """Restore a run saved by :meth:`save`. ``task``: the task object, needed only for a task that
        ``gpsx.tasks.make`` cannot build by name; otherwise the saved task (and horizon) is rebuilt."""
        meta, arrays = checkpoint.read(path)
        try:
            if task is None:
                from . import tasks

                task = tasks.make(meta["task"])
            if task.T != meta["horizon"]:
                task = task.with_horizon(meta["horizon"])
            algo = cls(task, GPSConfig.from_dict(meta["config"]), seed=meta["entropy"])
            algo.iteration, algo.samples_used = int(meta["iteration"]), int(meta["samples_used"])
            saved = meta["conditions"]
            if [c["index"] for c in saved] != list(algo.conditions):
                hint = ("" if algo.config.conditions is not None else
                        f" (the config trains on the task's training conditions, and {task.name} has changed them "
                        f"since this run; evaluate it with the gpsx version it ran on)")
                raise CheckpointError(f"{path}: conditions {[c['index'] for c in saved]} do not match the "
                                      f"config's {list(algo.conditions)}{hint}")
            for s, c in zip(algo._states, saved):
                part = _Parts(arrays, f"c{s.index}.")
                s.eta, s.step_mult = float(c["eta"]), float(c["step_mult"])
                s.controller = part.build("controller", LinearGaussianController)
                if c["has_last"]:
                    guided = algo._policy_term(algo.iteration - 1) and not algo._mirror   # lin and λ kept
                    s.last = _Update(part.build("start", LinearGaussianController),
                                     part.build("dyn", LinearGaussianDynamics), part.build("cost", QuadraticCost),
                                     part.build("lin", LinearGaussianController) if guided else None,
                                     arrays[f"c{s.index}.last_lam"] if guided else None)
                s.prior.load_state(part.group("prior"))
            if algo.guide is not None:
                algo.guide.restore(meta["guided"], arrays)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: inconsistent checkpoint ({type(exc).__name__}: {exc})") from exc
        return algo


class _Parts:
    """The arrays of one condition in a checkpoint, named ``c<index>.<part>.<field>``."""

    def __init__(self, arrays: dict[str, np.ndarray], prefix: str):
        self.arrays, self.prefix = arrays, prefix

    def group(self, part: str) -> dict[str, np.ndarray]:
        head = f"{self.prefix}{part}."
        return {k[len(head):]: v for k, v in self.arrays.items() if k.startswith(head)}

    def build(self, part: str, kind: type):
        """A container of type ``kind`` from its saved fields (``KeyError`` if one is missing)."""
        group = self.group(part)
        return kind(**{name: group[name] for name in kind.__dataclass_fields__})


def _costs(outcomes: list[PolicyOutcome]) -> tuple[float, ...]:
    return tuple(o.cost for o in outcomes)


def _successes(outcomes: list[PolicyOutcome]) -> tuple[bool, ...]:
    return tuple(o.success for o in outcomes)


def _action_variance(ctrl: LinearGaussianController) -> float:
    return float(np.trace(ctrl.cov, axis1=1, axis2=2).mean() / ctrl.dU)


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
