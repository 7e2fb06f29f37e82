"""Evaluate a run's controllers or its policy on conditions: cost, success and each task's headline number.

The headline number of a sample (:func:`outcome`) is what the paper's success tests measure: the distance
travelled along +x over the horizon for a task with ``forward_distance`` (swimmer, walker), the final tip's
distance to the slot bottom for a task with ``bottom_distances`` (pegs), else the final distance of the cost's
point target (octopus tip) to its goal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .containers import LinearGaussianController
from .costs import PointTarget
from .guided import ObservedPolicy
from .policy import GaussianMLPPolicy
from .sampling import Rollouts

__all__ = ["outcome", "ConditionResult", "clean_and_noisy", "evaluate_controller", "evaluate_policy"]


def outcome(task, X: np.ndarray, condition: int) -> tuple[str, np.ndarray]:
    """(label, values (n,)) for samples X (n, T, dX): forward distance, distance to the slot bottom, or final
    distance to the target (m)."""
    if hasattr(task, "forward_distance"):
        return "forward distance (m)", task.forward_distance(X)
    if hasattr(task, "bottom_distances"):
        return "final distance to the slot bottom (m)", task.bottom_distances(X, condition)
    terms = [t for t in task.cost_for(condition).terms if isinstance(t, PointTarget)]
    if not terms:
        raise ValueError(f"{task.name}: no forward_distance and no point target to measure")
    term = terms[0]
    final = np.ascontiguousarray(X[:, -1, : term.points.nq])
    return "final distance to target (m)", np.linalg.norm(term.points.positions(final) - term.target, axis=1)


@dataclass(frozen=True)
class ConditionResult:
    """One condition under one controller: noise-free (a single rollout) and with exploration noise."""

    condition: int
    label: str
    cost: float
    success: bool
    measure: float
    noisy_success: float
    noisy_measure: float
    noisy_diverged: int


def clean_and_noisy(task, controller: LinearGaussianController | ObservedPolicy, condition: int, samples: int,
                    seed: int = 0) -> tuple[Rollouts, Rollouts]:
    """One noise-free rollout of ``controller`` (or any sampler policy) on ``condition`` (``RolloutDivergedError``
    if it diverges) and ``samples`` with its noise (diverged ones are flagged in ``.valid``)."""
    clean = task.sample(controller, condition, 1, seed=seed, noise=False).check()
    return clean, task.sample(controller, condition, samples, seed=seed, noise=True)


def evaluate_controller(task, controller: LinearGaussianController | ObservedPolicy, condition: int,
                        samples: int = 10, seed: int = 0) -> ConditionResult:
    """Run ``controller`` (or any sampler policy) on ``condition`` once without noise and ``samples`` times
    with its noise."""
    clean, noisy = clean_and_noisy(task, controller, condition, samples, seed)
    label, measure = outcome(task, clean.X, condition)
    ok = noisy.valid
    noisy_success = float(task.success(noisy.X[ok], condition).sum()) / samples if ok.any() else 0.0
    noisy_measure = float(outcome(task, noisy.X[ok], condition)[1].mean()) if ok.any() else float("nan")
    return ConditionResult(condition, label, float(task.cost(clean.X, clean.U, condition).sum()),
                           bool(task.success(clean.X, condition)[0]), float(measure[0]), noisy_success,
                           noisy_measure, int((~ok).sum()))


def evaluate_policy(task, policy: GaussianMLPPolicy, condition: int, samples: int = 10,
                    seed: int = 0) -> ConditionResult:
    """:func:`evaluate_controller` for the neural-network policy (observing ``task.observe(x, condition)``);
    its noise is the policy's own Σ^π."""
    return evaluate_controller(task, ObservedPolicy(policy, task, condition), condition, samples, seed)
