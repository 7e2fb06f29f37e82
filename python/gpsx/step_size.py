"""Step-size adaptation of the KL bound: predicted versus actual improvement (notes/pitfalls.md §step size).

After new samples arrive, with ``old`` the dynamics and cost model that produced the current controller from
the previous one and ``new`` those fitted to the current controller's samples:

- predicted improvement = Ĵ(p_prev | old) − Ĵ(p_cur | old),
- actual improvement    = Ĵ(p_prev | old) − Ĵ(p_cur | new),

Ĵ the Laplace estimate of the expected cost (forward marginals under the quadratic cost model). The step
multiplier is scaled by predicted / (2 · max(1e-4, predicted − actual)), that factor clipped to [0.1, 5],
and the result clipped to [min_step_mult, max_step_mult].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .containers import LinearGaussianController, LinearGaussianDynamics, QuadraticCost
from .lqr import expected_cost, forward

__all__ = ["laplace_cost", "StepUpdate", "adapt_step", "step_from_estimates"]

FACTOR_MIN, FACTOR_MAX = 0.1, 5.0
MIN_GAP = 1e-4


def laplace_cost(dyn: LinearGaussianDynamics, ctrl: LinearGaussianController, cost: QuadraticCost) -> float:
    """Ĵ: the expected total cost of ``ctrl`` on ``dyn`` under the quadratic model ``cost``."""
    return float(expected_cost(forward(dyn, ctrl), cost).sum())


@dataclass(frozen=True)
class StepUpdate:
    """One application of the rule: the new multiplier and the improvements that set it."""

    step_mult: float
    predicted: float
    actual: float


def step_from_estimates(step_mult: float, previous: float, cur_under_old: float, cur_under_new: float,
                        min_mult: float, max_mult: float) -> StepUpdate:
    """The rule itself, from three estimates Ĵ: p_prev and p_cur under the old model, p_cur under the new."""
    predicted = previous - cur_under_old
    actual = previous - cur_under_new
    factor = np.clip(predicted / (2.0 * max(MIN_GAP, predicted - actual)), FACTOR_MIN, FACTOR_MAX)
    return StepUpdate(float(np.clip(step_mult * factor, min_mult, max_mult)), predicted, actual)


def adapt_step(step_mult: float, prev: LinearGaussianController, cur: LinearGaussianController,
               old_dyn: LinearGaussianDynamics, old_cost: QuadraticCost, new_dyn: LinearGaussianDynamics,
               new_cost: QuadraticCost, min_mult: float, max_mult: float) -> StepUpdate:
    """The step multiplier after comparing predicted and actual improvement (module docstring)."""
    return step_from_estimates(step_mult, laplace_cost(old_dyn, prev, old_cost), laplace_cost(old_dyn, cur, old_cost),
                               laplace_cost(new_dyn, cur, new_cost), min_mult, max_mult)
