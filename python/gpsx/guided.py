"""The policy half of guided policy search (Levine & Abbeel 2014, Algorithm 1 and Appendix A).

:class:`Guide` holds what the GPS loop needs besides the per-condition controllers: the neural-network policy,
the GMM prior of its linearisation, the multipliers λ_t and their dual step α per condition, and the
relabelling buffer. Per iteration, after sampling from the controllers and fitting the dynamics
(:class:`gpsx.GPS` calls these in this order):

1. :meth:`Guide.remember` adds this iteration's states to the buffer (the last ``buffer_iterations``
   iterations per condition are kept);
2. :meth:`Guide.train` fits the policy (``train_iterations`` L-BFGS iterations from the previous weights, or with
   ``warm_start`` False from the run's seeded initial weights) to the seed's
   objective on every buffered state, each relabelled with the action of its condition's *current*
   controller (the one this iteration sampled: "sample from the new p, then train the policy on those
   samples", Appendix A): targets K_t x + k_t, precisions C_t⁻¹, weights λ_t (with ``policy_weights``
   "balanced", each condition's λ_t rescaled to a common mean: :func:`balance_weights`);
3. :meth:`Guide.linearize` fits π ≈ N(K^π x + k^π, Σ^π) around this iteration's samples of every condition
   (:func:`gpsx.fit_policy_linearization`), with one :class:`gpsx.PolicyPrior` pooled over the conditions;
   the linearisation is of the policy just trained, so the controllers are then optimised
   (``optimize_trajectory(..., policy=lin, lam=λ)``) towards the policy that will be trained on their samples;
4. :meth:`Guide.update_duals`, after the trajectory optimisation: with KL_t = E_{p(x_t)} KL(π‖p) per step
   under the new controller, α ← min(α · lambda_rate_increase, lambda_rate_max) if the mean KL did not fall
   since the previous iteration (and, with a ``kl_target`` > 0, is above the target), then
   λ_t ← max(0, λ_t + α · (KL_t − kl_target)) (DESIGN §4 "λ_t"; ``kl_target`` = 0 is the plain rule, under
   which λ_t never falls).

With ``method="mirror"`` (mirror-descent GPS, Montgomery & Levine 2016) steps 1–3 are the same, but the
controllers are optimised under KL(p ‖ π_lin) ≤ ε from the policy's linearisation (no λ terms), and step 4 is
skipped: λ_t stays at ``initial_lambda``, so the policy is trained with uniform weights. The KL(p ‖ π)
trust region is mode-seeking: the new controller's covariance is at most the policy's, whereas with the
mode-covering λ_t·KL(π‖p) term of "dual" the controllers widen their covariance to cover the (one update
stale) policy mean once λ_t/η ≳ 1 (docs/results.md, issue 6).

``kl_target`` and α: α is the dual step's size, raised only while the constraint is *violated* and not
getting better. Below the target the constraint holds, so α is left alone there (rather than adapted on
|mean KL − target|, which would also raise α while the KL sits below the target and make λ fall ever faster
exactly when the policy matches well). α never decreases, so below the target λ_t falls by at most
α · kl_target per iteration.

:meth:`Guide.consider` keeps a copy of the best policy so far (:class:`BestPolicy`): the one whose noise-free
rollouts succeed on the most *trained* conditions, ties broken by the lower total cost. Held-out conditions
never enter the choice. The policy fluctuates from iteration to iteration, because every iteration's 50
warm-started L-BFGS iterations chase moving targets; this copy is what ``gpsx eval --best`` evaluates.

With ``controller_reset`` the policy can also lead: :func:`policy_controller` turns it into a linear-Gaussian
controller about its own noise-free rollout, which :class:`gpsx.GPS` hands to a trained condition whose samples
all failed where that rollout succeeded; where it failed too, the best policy's (:class:`BestPolicy`, an earlier
iteration's) is handed over if its rollout succeeds there (:class:`gpsx.config.GuidedConfig`).

The policy observes ``task.observe(x, condition)``: the state, then what the task adds (its features and the
condition's goal point, as :meth:`gpsx.tasks.base.Task.observe` says per task); :class:`ObservedPolicy` adapts
it to the sampler.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from . import checkpoint
from .config import GuidedConfig
from .containers import LinearGaussianController, LinearGaussianDynamics, QuadraticCost
from .dynamics import PolicyPrior, fit_policy_linearization
from .errors import CheckpointError
from .lqr import policy_kl
from .policy import GaussianMLPPolicy
from .policy_training import PolicyTrainResult, train_policy
from .step_size import StepUpdate, laplace_cost, step_from_estimates

__all__ = ["BestPolicy", "Guide", "ObservedPolicy", "PolicyOutcome", "policy_controller", "policy_outcomes", "relabel",
           "update_lambda", "balance_weights", "adapt_rate", "adapt_step_gps", "adapt_step_mirror",
           "clip_action_covariance"]


class ObservedPolicy:
    """The sampler's Policy protocol for a policy on observations: it acts on ``task.observe(x, condition)``."""

    def __init__(self, policy: GaussianMLPPolicy, task, condition: int):
        self.policy, self.task, self.condition = policy, task, condition

    def act(self, x: np.ndarray, t: int, noise: np.ndarray) -> np.ndarray:
        return self.policy.act(self.task.observe(x, self.condition), t, noise)


@dataclass(frozen=True)
class PolicyOutcome:
    """One noise-free rollout of the policy's mean on one condition (cost NaN and no success if it diverged)."""

    condition: int
    cost: float
    success: bool


@dataclass(frozen=True)
class BestPolicy:
    """A copy of the policy after ``iteration``, with its trained-condition successes and total cost then."""

    iteration: int
    successes: int
    cost: float
    arrays: dict[str, np.ndarray]

    @property
    def policy(self) -> GaussianMLPPolicy:
        """A fresh policy rebuilt from the copy (changing it leaves the copy alone)."""
        return GaussianMLPPolicy.from_arrays(self.arrays)


def policy_outcomes(task, policy: GaussianMLPPolicy, conditions: Sequence[int]) -> list[PolicyOutcome]:
    """Roll out the policy's mean (no noise: deterministic, so one rollout per condition) on each condition."""
    out = []
    for c in conditions:
        r = task.sample(ObservedPolicy(policy, task, c), c, 1, seed=0, noise=False)
        if r.valid[0]:
            out.append(PolicyOutcome(c, float(task.cost(r.X, r.U, c).sum()), bool(task.success(r.X, c)[0])))
        else:
            out.append(PolicyOutcome(c, float("nan"), False))
    return out


def policy_controller(task, policy: GaussianMLPPolicy, condition: int, cov: np.ndarray,
                      step: float = 1e-5) -> LinearGaussianController:
    """The policy as a linear-Gaussian controller on ``condition``: its mean linearised about its own noise-free
    rollout x̄_t, K_t = ∂μ^π(observe(x))/∂x at x̄_t (central differences, ``step`` per state coordinate) and
    k_t = μ^π(x̄_t) − K_t x̄_t, so that the controller's mean action on x̄_t is the policy's; covariance ``cov``
    (T, dU, dU). ``GuidedConfig.controller_reset`` hands it to a condition whose controller fails where the
    policy (or the best policy so far) succeeds. Raises :class:`gpsx.errors.RolloutDivergedError` if the policy's
    rollout diverges."""
    r = task.sample(ObservedPolicy(policy, task, condition), condition, 1, seed=0, noise=False)
    r.check()
    X = r.X[0]
    T, dX = X.shape
    shift = step * np.eye(dX)[:, None, :]                            # (dX, 1, dX)
    states = np.concatenate([X + shift, X - shift, X[None]])         # (2 dX + 1, T, dX)
    obs = task.observe(states, condition)
    means = policy.mean(obs.reshape(-1, obs.shape[-1])).reshape(2 * dX + 1, T, task.dU)
    K = ((means[:dX] - means[dX:2 * dX]) / (2 * step)).transpose(1, 2, 0)   # (T, dU, dX)
    k = means[-1] - np.einsum("tux,tx->tu", K, X)
    return LinearGaussianController(K, k, np.array(cov, dtype=float))


def relabel(controller: LinearGaussianController, X: np.ndarray) -> np.ndarray:
    """The controller's mean actions K_t x_ti + k_t (N, T, dU) at states X (N, T, dX): the policy's training
    targets for states sampled under any earlier controller (Appendix A)."""
    return np.einsum("tux,ntx->ntu", controller.K, X) + controller.k


def clip_action_covariance(controller: LinearGaussianController, max_variance: float) -> LinearGaussianController:
    """The controller with each C_t's eigenvalues clipped to at most ``max_variance`` (same eigenvectors; gains
    unchanged): the exploration bound of ``GuidedConfig.max_action_variance``."""
    w, V = np.linalg.eigh(controller.cov)
    if w.max() <= max_variance:
        return controller
    cov = np.einsum("tij,tj,tkj->tik", V, np.minimum(w, max_variance), V)
    return LinearGaussianController(controller.K, controller.k, cov)


def update_lambda(lam: np.ndarray, kl: np.ndarray, rate: float, target: float = 0.0) -> np.ndarray:
    """Dual ascent on the policy constraint: λ_t ← max(0, λ_t + α·(KL_t − target)), per step.

    With ``target`` 0 (KL ≥ 0) λ_t can only grow; with a target it falls where KL_t < target.
    """
    return np.maximum(0.0, lam + rate * (kl - target))


def balance_weights(lams: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each condition's λ_t (T,) rescaled to a common mean (``policy_weights`` "balanced"): the total weight and
    each condition's profile over t are kept, and the conditions weigh alike. A condition whose λ_t are all 0
    stays 0 (it has no profile to rescale); the others share its weight. Equal means are returned as they are,
    so that the warm-up's weights are bit for bit those of "lambda" (a rescaling by 1 ± 1 ulp would not be)."""
    means = [float(lam.mean()) for lam in lams]
    if min(means) == max(means):
        return list(lams)
    common = sum(means) / sum(m > 0 for m in means)        # some mean is > 0: they are not all equal
    return [lam * (common / m) if m > 0 else lam for lam, m in zip(lams, means)]


def adapt_rate(rate: float, kl_mean: float, previous_kl_mean: float | None, increase: float,
               rate_max: float, target: float = 0.0) -> float:
    """α, multiplied by ``increase`` (capped at ``rate_max``) when the mean KL did not fall since last time;
    with a ``target`` > 0, only while the mean KL is also above the target (module doc)."""
    if target > 0 and kl_mean <= target:
        return rate
    if previous_kl_mean is not None and kl_mean >= previous_kl_mean:
        return min(rate * increase, rate_max)
    return rate


def adapt_step_gps(step_mult: float, prev: LinearGaussianController, cur: LinearGaussianController,
                   old: tuple[LinearGaussianDynamics, QuadraticCost, LinearGaussianController],
                   new: tuple[LinearGaussianDynamics, QuadraticCost, LinearGaussianController],
                   lam: np.ndarray, min_mult: float, max_mult: float) -> StepUpdate:
    """The step rule of :mod:`gpsx.step_size` with GPS-mode estimates Ĵ = Laplace cost + Σ_t λ_t·policy_kl_t.

    ``old``/``new``: (dynamics, cost model, policy linearisation) that produced ``cur`` / fitted at its
    samples; ``lam`` is the λ ``cur`` was optimised with.
    """
    def estimate(ctrl, dyn, cost, lin):
        return laplace_cost(dyn, ctrl, cost) + float(lam @ policy_kl(dyn, ctrl, lin))

    return step_from_estimates(step_mult, estimate(prev, *old), estimate(cur, *old), estimate(cur, *new),
                               min_mult, max_mult)


def adapt_step_mirror(step_mult: float, start: LinearGaussianController, cur: LinearGaussianController,
                      old: tuple[LinearGaussianDynamics, QuadraticCost],
                      new: tuple[LinearGaussianDynamics, QuadraticCost, LinearGaussianController],
                      min_mult: float, max_mult: float) -> StepUpdate:
    """The step rule of ``method="mirror"``: ``cur`` was optimised from the policy linearisation ``start`` under
    ``old`` (dynamics, cost); the actual improvement is that of the policy after training on ``cur``, i.e. of
    its new linearisation under the new (dynamics, cost) (Montgomery & Levine 2016, their "classic" rule)."""
    old_dyn, old_cost = old
    new_dyn, new_cost, new_lin = new
    return step_from_estimates(step_mult, laplace_cost(old_dyn, start, old_cost), laplace_cost(old_dyn, cur, old_cost),
                               laplace_cost(new_dyn, new_lin, new_cost), min_mult, max_mult)


class Guide:
    """The policy, its linearisation prior, λ_t and α per condition and the relabelling buffer (module doc)."""

    def __init__(self, task, conditions: Sequence[int], config: GuidedConfig, seed: int):
        self.task, self.conditions, self.config, self.seed = task, tuple(conditions), config, seed
        self.policy = GaussianMLPPolicy(task.dO, task.dU, config.hidden_sizes, config.activation,
                                        config.init_std, seed=seed)
        p = config.policy_prior
        self.prior = PolicyPrior(p.max_clusters, p.min_samples_per_cluster, p.max_samples, p.strength,
                                 em_iterations=p.em_iterations, max_em_points=p.max_em_points)
        self.lam = {c: np.full(task.T, config.initial_lambda) for c in self.conditions}
        self.rate = {c: config.lambda_rate for c in self.conditions}
        self.last_kl: dict[int, float | None] = {c: None for c in self.conditions}
        self.buffer: dict[int, list[np.ndarray]] = {c: [] for c in self.conditions}
        self.best: BestPolicy | None = None

    def consider(self, iteration: int, trained: Sequence[PolicyOutcome]) -> None:
        """Keep the current policy as :attr:`best` if its rollouts on the trained conditions succeed more often
        than the best's, or as often at a lower total cost (a diverged rollout costs ∞)."""
        successes = sum(o.success for o in trained)
        cost = sum(o.cost if math.isfinite(o.cost) else math.inf for o in trained)
        if self.best is None or (successes, -cost) > (self.best.successes, -self.best.cost):
            self.best = BestPolicy(iteration, successes, cost, self.policy.to_arrays())

    def remember(self, states: Sequence[np.ndarray]) -> None:
        """Add this iteration's states X (N, T, dX) per condition; keep the last ``buffer_iterations``."""
        for c, X in zip(self.conditions, states):
            self.buffer[c] = (self.buffer[c] + [X])[-self.config.buffer_iterations:]

    def train(self, controllers: Sequence[LinearGaussianController]) -> PolicyTrainResult:
        """Fit the policy to every buffered state, relabelled with its condition's controller (module doc).

        With a ``kl_target`` every λ_t may reach 0; the objective Σ λ_t·(...) then vanishes, so the policy is
        kept as it is (a result with 0 iterations and 0 samples) until the dual step raises some λ_t again.
        """
        if not any(np.any(self.lam[c] > 0) for c in self.conditions):
            return PolicyTrainResult(objective=0.0, initial_objective=0.0, iterations=0, evaluations=0,
                                     wall_time=0.0, converged=True,
                                     message="every lambda_t is 0: nothing to train, policy kept", n_samples=0)
        lams = [self.lam[c] for c in self.conditions]
        if self.config.policy_weights == "balanced":
            lams = balance_weights(lams)
        obs, target, precision, weights = [], [], [], []
        for c, ctrl, lam in zip(self.conditions, controllers, lams):
            X = np.concatenate(self.buffer[c])
            obs.append(self.task.observe(X, c))
            target.append(relabel(ctrl, X))
            precision.append(np.broadcast_to(ctrl.precision, (len(X), *ctrl.precision.shape)))
            weights.append(np.broadcast_to(lam, (len(X), self.task.T)))
        return train_policy(self.policy, np.concatenate(obs), np.concatenate(target), np.concatenate(precision),
                            np.concatenate(weights), max_iterations=self.config.train_iterations,
                            seed=None if self.config.warm_start else self.seed,
                            weight_decay=self.config.weight_decay, fixed_std=self.config.policy_std,
                            huber=self.config.huber_threshold)

    def _policy_means(self, X: np.ndarray, condition: int) -> np.ndarray:
        obs = self.task.observe(X, condition)
        return self.policy.mean(obs.reshape(-1, obs.shape[-1])).reshape(*X.shape[:2], self.task.dU)

    def linearize(self, states: Sequence[np.ndarray], prior_seed: np.random.SeedSequence
                  ) -> list[LinearGaussianController]:
        """Update the pooled prior with (x, μ^π) of this iteration's states, then fit each condition's
        linearisation of the policy around its states (covariance: ``config.linearization_covariance``)."""
        means = [self._policy_means(X, c) for c, X in zip(self.conditions, states)]
        self.prior.reseed(prior_seed)
        self.prior.update(np.concatenate(states), np.concatenate(means))
        cov = self.policy.covariance()
        lins = [fit_policy_linearization(X, m, cov, prior=self.prior) for X, m in zip(states, means)]
        if self.config.linearization_covariance == "fit":
            return lins
        return [LinearGaussianController(lin.K, lin.k, np.broadcast_to(cov, lin.cov.shape)) for lin in lins]

    def update_duals(self, dyns: Sequence[LinearGaussianDynamics], controllers: Sequence[LinearGaussianController],
                     lins: Sequence[LinearGaussianController]) -> list[float]:
        """Adapt α and take the dual step on λ per condition; returns the mean KL(π‖p) per condition."""
        cfg, means = self.config, []
        for c, dyn, ctrl, lin in zip(self.conditions, dyns, controllers, lins):
            kl = policy_kl(dyn, ctrl, lin)
            if cfg.dual_kl_max is not None:
                kl = np.minimum(kl, cfg.dual_kl_max)
            mean = float(kl.mean())
            self.rate[c] = adapt_rate(self.rate[c], mean, self.last_kl[c], cfg.lambda_rate_increase,
                                      cfg.lambda_rate_max, cfg.kl_target)
            self.lam[c] = update_lambda(self.lam[c], kl, self.rate[c], cfg.kl_target)
            self.last_kl[c] = mean
            means.append(mean)
        return means

    # --- checkpoints ---------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(meta, arrays) for a checkpoint: policy, best policy, prior, λ, α, last mean KL and buffer."""
        best = self.best
        meta = {"rate": [self.rate[c] for c in self.conditions],
                "last_kl": [self.last_kl[c] for c in self.conditions],
                "buffered": [len(self.buffer[c]) for c in self.conditions],
                "best": None if best is None else {"iteration": best.iteration, "successes": best.successes,
                                                   "cost": best.cost}}
        arrays = {f"policy.{k}": v for k, v in self.policy.to_arrays().items()}
        if best is not None:
            arrays.update({f"best.{k}": v for k, v in best.arrays.items()})
        arrays.update({f"pprior.{k}": v for k, v in self.prior.state_arrays().items()})
        for c in self.conditions:
            arrays[f"c{c}.lambda"] = self.lam[c]
            arrays.update({f"c{c}.buffer.{j}": X for j, X in enumerate(self.buffer[c])})
        return meta, arrays

    def restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Put the state written by :meth:`state` back (``CheckpointError`` if it does not fit)."""
        policy = GaussianMLPPolicy.from_arrays(_group(arrays, "policy."))
        if (policy.dX, policy.dU) != (self.policy.dX, self.policy.dU):
            raise CheckpointError(f"policy has (dO, dU) = {(policy.dX, policy.dU)}, the task needs "
                                  f"{(self.policy.dX, self.policy.dU)} (written when the task's policy observed "
                                  "other quantities?)")
        self.policy = policy
        best = meta.get("best")  # absent in checkpoints written before the best policy was kept
        self.best = None if best is None else BestPolicy(int(best["iteration"]), int(best["successes"]),
                                                         float(best["cost"]), _group(arrays, "best."))
        self.prior.load_state(_group(arrays, "pprior."))
        for i, c in enumerate(self.conditions):
            self.rate[c] = float(meta["rate"][i])
            self.last_kl[c] = None if meta["last_kl"][i] is None else float(meta["last_kl"][i])
            self.lam[c] = np.array(arrays[f"c{c}.lambda"], dtype=float)
            self.buffer[c] = [arrays[f"c{c}.buffer.{j}"] for j in range(int(meta["buffered"][i]))]


def _group(arrays: dict[str, np.ndarray], head: str) -> dict[str, np.ndarray]:
    return {k[len(head):]: v for k, v in arrays.items() if k.startswith(head)}
