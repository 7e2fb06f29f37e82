"""Typed configuration of the GPS loop: :class:`GPSConfig` and its nested :class:`PriorConfig` and
:class:`GuidedConfig`.

Configs are frozen dataclasses. ``GPSConfig.from_dict`` (used for ``--config FILE.json`` and checkpoints)
rejects unknown keys with an error naming the key (and the closest known one), and every field is
type- and range-checked on construction, so a misspelled or mistyped setting never passes silently.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from .policy import ACTIVATIONS

__all__ = ["GPSConfig", "GuidedConfig", "PriorConfig", "DUAL_STEPS", "LINEARIZATION_COVARIANCES", "METHODS",
           "POLICY_WEIGHTS", "STEP_RULES"]

#: values of ``GuidedConfig.dual_step``, ``.linearization_covariance``, ``.method``, ``.policy_weights`` and
#: ``.step_rule``
DUAL_STEPS = ("after", "before")
LINEARIZATION_COVARIANCES = ("fit", "policy")
METHODS = ("dual", "mirror")
POLICY_WEIGHTS = ("lambda", "balanced")
STEP_RULES = ("objective", "cost", "fixed")


def _check_keys(cls: type, d: Mapping[str, Any]) -> None:
    if not isinstance(d, Mapping):
        raise TypeError(f"{cls.__name__}: expected a mapping of settings, got {type(d).__name__}")
    known = [f.name for f in fields(cls)]
    for key in d:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"{cls.__name__}: unknown setting {key!r}{hint}; known: {', '.join(known)}")


class _FromDict:
    """``from_dict``: build a config from a (JSON) mapping; an unknown key raises ``TypeError`` naming it."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        _check_keys(cls, d)
        return cls(**d)


def _nested(obj: Any, name: str, cls: type) -> None:
    """Accept the nested config ``obj.name`` as a ``cls`` or as a mapping (turned into one, keys checked)."""
    value = getattr(obj, name)
    if isinstance(value, Mapping):
        value = cls.from_dict(value)
        object.__setattr__(obj, name, value)
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be a {cls.__name__} or a mapping, got {value!r}")


def _int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} finite number, "
                         f"got {value!r}")


@dataclass(frozen=True)
class PriorConfig(_FromDict):
    """Settings of the per-condition GMM dynamics prior (:class:`gpsx.dynamics.DynamicsPrior`).

    max_clusters: at most this many mixture components; min_samples_per_cluster: tuples per component
    (clusters = max(2, min(max_clusters, tuples / min_samples_per_cluster))); max_samples: trajectories
    remembered per condition; strength: the normal-inverse-Wishart pseudo-count n0 = m; em_iterations and
    max_em_points: caps on each EM refit.
    """

    max_clusters: int = 20
    min_samples_per_cluster: int = 40
    max_samples: int = 20
    strength: float = 1.0
    em_iterations: int = 3
    max_em_points: int = 1000

    def __post_init__(self):
        _int("max_clusters", self.max_clusters, 2)
        _int("min_samples_per_cluster", self.min_samples_per_cluster, 1)
        _int("max_samples", self.max_samples, 1)
        _positive("strength", self.strength)
        _int("em_iterations", self.em_iterations, 1)
        _int("max_em_points", self.max_em_points, 2)



@dataclass(frozen=True)
class GuidedConfig(_FromDict):
    """Settings of the policy half of guided policy search (DESIGN §4 "λ_t" and "Policy"; :mod:`gpsx.guided`).

    hidden_sizes, activation, init_std: the Gaussian MLP policy (:class:`gpsx.policy.GaussianMLPPolicy`).
    train_iterations: L-BFGS iterations per GPS iteration.
    warm_start: True (default): each iteration's fit starts from the previous iteration's weights. False: from
        the same seeded initial weights every iteration (a cold start; give it more ``train_iterations``). On
        the octopus the warm-started weights grew to ~100 as the arm's states spread out over the run (the
        first iterations barely move it); that network no longer fits (objective 3.9e3 after 500 more
        L-BFGS iterations, against 3.1e3 for a fresh one on the same data, docs/results.md).
    weight_decay: dimensionless weight decay of :func:`gpsx.policy_training.train_policy`.
    huber_threshold: robust residuals in the policy's fit: a sample's residual ½(m − μ^π)ᵀC⁻¹(m − μ^π) above this
        many nats counts as 2√(δq) − δ instead of q (Huber in the Mahalanobis distance), so states where a
        controller's feedback extrapolates far (a rollout that wandered off) cannot dominate the fit. None
        (the default): the seed's least squares.
    buffer_iterations: the policy trains on the states of this many most recent iterations per condition
        (this one included), all relabelled with the current controllers' actions (Appendix A).
    policy_weights: the per-sample weights of the policy's fit. "lambda" (the seed's objective): λ_t of the
        sample's condition and step. "balanced": each condition's λ_t rescaled to a common mean
        (:func:`gpsx.guided.balance_weights`); the profile over t within a condition is kept, and so is the
        total weight, but no condition outweighs another. With ``dual_step`` "after" the KL that drives λ_t
        contains the controllers' own step and never reaches the target, so every condition's λ_t keeps
        growing, at a rate set by its own α adaptation (the conditions' mean λ_t differed by 3–13× at the end
        of eight peg2d runs); under "lambda" the fastest-growing condition then dominates the fit
        (docs/results.md, issue 6, session 10). While all λ_t are equal (the warm-up) both are the same.
    initial_lambda: λ_t at every step before the first update.
    lambda_rate: the initial dual step α of λ_t ← max(0, λ_t + α·(KL_t − kl_target)).
    lambda_rate_increase: α is multiplied by this (per condition) whenever the mean KL(π‖p) did not fall
        since the previous iteration and is above kl_target; lambda_rate_max caps α.
    kl_target: per-time-step target of KL_t = E_p KL(π‖p), in nats. With a target, λ_t also falls where the
        policy already matches the controller (KL_t < kl_target), so the policy term cannot only grow.
        0 (the default) is the plain dual ascent λ_t ← max(0, λ_t + α·KL_t), under which λ never falls.
    policy_prior: the GMM prior of the policy linearisation (one, pooled over the trained conditions).
    policy_std: the policy's action standard deviation, fixed (the same on every action dimension), instead of
        the seed's closed-form fit σ² = W/D to the controllers' precisions. With the fit, Σ^π follows the
        controllers' covariance and the λ_t·KL(π‖p) term keeps C_t ⪆ Σ^π + the mean mismatch, so the
        exploration noise can only grow (docs/results.md, issue 6). None (the default): the seed's fit.
    dual_kl_max: clip each step's KL(π‖p) at this many nats before the dual step on λ_t (a guard: where the
        forward marginals blow up under the fitted dynamics the KL reaches 1e30 and λ_t would follow).
        None (the default): no clip.
    dual_step: when λ_t takes its dual step ("dual" method). "after" the trajectory optimisation, on
        KL(π‖p_new): that KL contains the controllers' own update (π was fitted to p_cur), so it stays near
        kl_step·step_mult and λ_t keeps growing; "before" it, on KL(π‖p_cur) of the policy just trained on
        p_cur: the imitation residual the constraint π = p is about (the order of the reference
        implementation's BADMM variant: policy, policy fit, dual step, trajectories).
    linearization_covariance: the covariance of the policy linearisation the controllers are optimised
        against. "fit" (DESIGN §4): the GMM fit's conditional covariance of μ^π plus the policy's own Σ^π;
        "policy": Σ^π alone (the policy's actual action noise; the fit residual only measures how far μ^π is
        from linear). With "fit" the residual is added again every iteration: the controllers follow the
        linearisation's covariance, the policy's Σ^π is fitted to the controllers' precisions, and the
        exploration noise ratchets upwards (docs/results.md, issue 6).
    method: how the policy guides the controllers. "dual" (the paper, Appendix A): the trust region is
        KL(p_new ‖ p_cur) ≤ ε and the objective carries Σ_t λ_t·KL(π‖p), λ_t by dual ascent. "mirror" (the
        mirror-descent variant of Montgomery & Levine 2016): the trust region is centred on the policy,
        KL(p_new ‖ π_lin) ≤ ε, with no λ terms; the policy is trained with uniform weights.
    step_rule: how the controllers' step multiplier adapts with the policy. "cost": the rule of
        :mod:`gpsx.step_size` on the controllers' Laplace cost, from the point the step started (the previous
        controller; with "mirror" the previous policy linearisation), as in trajectory-only mode;
        "objective": the rule on the method's objective ("dual": Ĵ = Laplace cost + Σ_t λ_t·policy_kl_t;
        "mirror": the actual side is the new policy linearisation, i.e. the policy after training on the
        new controller, as in Montgomery & Levine's step rule); "fixed": no adaptation, the multiplier stays
        at ``GPSConfig.initial_step_mult``.
    max_action_variance: after the warm-up, each controller update's action covariance C_t has its eigenvalues
        clipped to at most this ((action units)²; eigenvectors and gains kept). A guard outside the seed's
        objective: the λ_t·KL(π‖p) term widens C_t towards Σ^π plus the policy's mean mismatch (the Riccati root
        of math/gps_dp.md §3.1); wider exploration makes rollouts wander off, and the policy's fit to their
        relabelled actions degrades (docs/results.md, issue 6, sessions 5 and 8). The peg2d recipe sets it to
        the policy's variance, ``policy_std``². The reported step KL is the DP's, before the clip. None (the
        default): C_t as the DP gives it.
    controller_reset: after each iteration's evaluation of the policy, a trained condition whose samples all
        failed this iteration while the policy's noise-free rollout on it succeeded gets the policy itself as its
        controller: the policy's linearisation about that rollout (:func:`gpsx.guided.policy_controller`) with
        the policy's covariance Σ^π (with the stuck controller's wider C_t the samples left the region where the
        linearisation holds). A controller stuck in a local optimum (peg2d: hovering over its slot for fifty
        iterations, nearly every sample failing) then restarts where the policy, which learned from the other
        conditions, solves its task (docs/results.md, issue 6, session 13). Where the policy fails too, the
        condition gets the best policy so far instead (:attr:`gpsx.GPS.best_policy`, an earlier iteration's,
        chosen on the trained conditions) if that one's rollout succeeds there: on peg2d the 0.35 m slot's
        controller, reset once, lost its slot again, and the policy lost it with it (session 14). Outside the
        seed's algorithm. False (the default): controllers change only by their own updates.
    warmup_iterations: the first this many iterations optimise the controllers without the policy term (the
        trajectory-only update and step rule, no dual step: λ_t and α stay put), while the policy is still
        trained on every iteration's samples, with weights ``initial_lambda``. The controllers can then find the
        goals before λ_t pulls them towards the policy. 0 (the default): the policy term from the first
        iteration.
    """

    hidden_sizes: tuple[int, ...] = (40, 40)
    activation: str = "softplus"
    init_std: float = 1.0
    train_iterations: int = 50
    warm_start: bool = True
    weight_decay: float = 0.0
    huber_threshold: float | None = None
    buffer_iterations: int = 3
    policy_weights: str = "lambda"
    initial_lambda: float = 0.01
    lambda_rate: float = 0.01
    lambda_rate_increase: float = 2.0
    lambda_rate_max: float = 100.0
    kl_target: float = 0.0
    policy_std: float | None = None
    dual_kl_max: float | None = None
    policy_prior: PriorConfig = field(default_factory=PriorConfig)
    dual_step: str = "after"
    linearization_covariance: str = "fit"
    method: str = "dual"
    step_rule: str = "objective"
    max_action_variance: float | None = None
    controller_reset: bool = False
    warmup_iterations: int = 0

    def __post_init__(self):
        sizes = self.hidden_sizes
        if not isinstance(sizes, (list, tuple)):
            raise TypeError(f"hidden_sizes must be a list of layer widths, got {sizes!r}")
        for h in sizes:
            _int("hidden_sizes[...]", h, 1)
        object.__setattr__(self, "hidden_sizes", tuple(sizes))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        for name in ("init_std", "initial_lambda", "lambda_rate", "lambda_rate_max"):
            _positive(name, getattr(self, name))
        _int("train_iterations", self.train_iterations, 1)
        for name in ("warm_start", "controller_reset"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be true or false, got {getattr(self, name)!r}")
        _int("buffer_iterations", self.buffer_iterations, 1)
        _int("warmup_iterations", self.warmup_iterations, 0)
        _positive("weight_decay", self.weight_decay, allow_zero=True)
        _positive("lambda_rate_increase", self.lambda_rate_increase)
        if self.lambda_rate_increase < 1:
            raise ValueError(f"lambda_rate_increase must be >= 1, got {self.lambda_rate_increase}")
        if self.lambda_rate > self.lambda_rate_max:
            raise ValueError(f"need lambda_rate <= lambda_rate_max, got {self.lambda_rate}, {self.lambda_rate_max}")
        _positive("kl_target", self.kl_target, allow_zero=True)
        _nested(self, "policy_prior", PriorConfig)
        for name in ("policy_std", "dual_kl_max", "huber_threshold", "max_action_variance"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        for name, choices in (("dual_step", DUAL_STEPS), ("linearization_covariance", LINEARIZATION_COVARIANCES),
                              ("method", METHODS), ("policy_weights", POLICY_WEIGHTS), ("step_rule", STEP_RULES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class GPSConfig(_FromDict):
    """Settings of the GPS loop (DESIGN §4, notes/pitfalls.md §step size).

    iterations: default number of iterations of :meth:`gpsx.GPS.run`.
    samples_per_condition: rollouts per condition per iteration (the paper's "5 samples").
    conditions: the conditions trained on (indices into ``task.conditions``); None = the task's training
        conditions.
    kl_step: KL bound per time step; the bound of an iteration is ε = kl_step · T · step_mult.
    initial_step_mult, min_step_mult, max_step_mult: the step multiplier's start and its clip range.
    initial_eta: the first η of the η search (later searches start from the previous η).
    initial_noise_scale: multiplies the covariance of the task's initial controllers (exploration noise).
    dynamics_prior: :class:`PriorConfig`.
    jobs: worker processes for sampling the conditions in parallel (joblib); results do not depend on it.
    policy: True (default) for guided policy search with the neural-network policy; False for the
        trajectory-only mode (linear-Gaussian controllers only).
    guided: :class:`GuidedConfig`, the policy half's settings (unused when ``policy`` is False).
    """

    iterations: int = 10
    samples_per_condition: int = 5
    conditions: tuple[int, ...] | None = None
    kl_step: float = 0.2
    initial_step_mult: float = 1.0
    min_step_mult: float = 0.01
    max_step_mult: float = 10.0
    initial_eta: float = 1.0
    initial_noise_scale: float = 1.0
    dynamics_prior: PriorConfig = field(default_factory=PriorConfig)
    jobs: int = 1
    policy: bool = True
    guided: GuidedConfig = field(default_factory=GuidedConfig)

    def __post_init__(self):
        _int("iterations", self.iterations, 0)
        _int("samples_per_condition", self.samples_per_condition, 1)
        if self.conditions is not None:
            conds = tuple(self.conditions) if isinstance(self.conditions, (list, tuple)) else None
            if not conds:
                raise ValueError(f"conditions must be a non-empty list of condition indices or None, "
                                 f"got {self.conditions!r}")
            for c in conds:
                _int("conditions[...]", c, 0)
            if len(set(conds)) != len(conds):
                raise ValueError(f"conditions has duplicates: {conds}")
            object.__setattr__(self, "conditions", conds)
        for name in ("kl_step", "initial_step_mult", "min_step_mult", "max_step_mult", "initial_eta",
                     "initial_noise_scale"):
            _positive(name, getattr(self, name))
        if not self.min_step_mult <= self.initial_step_mult <= self.max_step_mult:
            raise ValueError(f"need min_step_mult <= initial_step_mult <= max_step_mult, got "
                             f"{self.min_step_mult}, {self.initial_step_mult}, {self.max_step_mult}")
        _nested(self, "dynamics_prior", PriorConfig)
        _int("jobs", self.jobs, 1)
        if not isinstance(self.policy, bool):
            raise TypeError(f"policy must be true or false, got {self.policy!r}")
        _nested(self, "guided", GuidedConfig)


    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` turns back into an equal config."""
        d = asdict(self)
        if d["conditions"] is not None:
            d["conditions"] = list(d["conditions"])
        d["guided"]["hidden_sizes"] = list(d["guided"]["hidden_sizes"])
        return d

    def replace(self, **changes: Any) -> "GPSConfig":
        """A copy with some settings changed (checked like :meth:`from_dict`)."""
        return GPSConfig.from_dict({**self.to_dict(), **changes})
