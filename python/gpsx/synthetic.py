"""Random, well-posed trajectory-optimisation problems for tests and benchmarks.

The generator follows the recipe of the performance anchors (notes/perf-anchors.md §2): stable
time-varying linear dynamics around a scaled random rotation, SPD quadratic costs, a previous controller
with moderate gains and covariance, and (for λ > 0) a linear-Gaussian policy linearisation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .containers import LinearGaussianController, LinearGaussianDynamics, QuadraticCost

__all__ = ["LQProblem", "random_problem", "BENCH_SIZES"]

#: (T, dX, dU) of the benchmark cases: the paper's tasks and the PR2 arm of the anchors, then a dX sweep.
BENCH_SIZES = {
    "pr2": (100, 26, 7),
    "swimmer": (400, 10, 2),
    "walker": (500, 18, 6),
    "peg3d": (800, 12, 6),
    "octopus": (200, 50, 24),
    **{f"sweep_dX{d}": (100, d, max(1, d // 4)) for d in (8, 16, 32, 64, 128)},
}


@dataclass(frozen=True)
class LQProblem:
    """Dynamics, cost, previous controller and policy linearisation of one synthetic problem."""

    dyn: LinearGaussianDynamics
    cost: QuadraticCost
    prev: LinearGaussianController
    policy: LinearGaussianController


def _spd(rng: np.random.Generator, T: int, d: int, scale: float, shift: float) -> np.ndarray:
    W = rng.standard_normal((T, d, d)) / np.sqrt(d)
    return scale * (W @ np.swapaxes(W, -1, -2) + shift * np.eye(d))


def random_problem(T: int, dX: int, dU: int, seed: int = 0, *, cost_scale: float = 1.0) -> LQProblem:
    """A random problem of horizon T with state size dX and action size dU (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    n = dX + dU
    Q0, _ = np.linalg.qr(rng.standard_normal((dX, dX)))
    A = 0.9 * Q0 + 0.02 * rng.standard_normal((max(T - 1, 0), dX, dX)) / np.sqrt(dX)
    radius = np.abs(np.linalg.eigvals(A)).max(axis=-1, initial=0.0) if T > 1 else np.zeros(0)
    A = A * np.minimum(1.0, 0.97 / np.maximum(radius, 1e-12))[:, None, None]
    B = 0.5 * rng.standard_normal((max(T - 1, 0), dX, dU)) / np.sqrt(dX)
    dyn = LinearGaussianDynamics(
        F=np.concatenate([A, B], axis=2),
        f=0.05 * rng.standard_normal((max(T - 1, 0), dX)),
        cov=_spd(rng, max(T - 1, 0), dX, 1e-3, 0.1),
        x0_mean=rng.standard_normal(dX),
        x0_cov=1e-2 * np.eye(dX),
    )
    cost = QuadraticCost(cost_scale * _spd(rng, T, n, 1.0, 0.05), cost_scale * rng.standard_normal((T, n)))
    prev = LinearGaussianController(
        0.1 * rng.standard_normal((T, dU, dX)), 0.1 * rng.standard_normal((T, dU)), _spd(rng, T, dU, 0.1, 0.5)
    )
    policy = LinearGaussianController(
        prev.K + 0.1 * rng.standard_normal((T, dU, dX)),
        prev.k + 0.1 * rng.standard_normal((T, dU)),
        _spd(rng, T, dU, 0.05, 0.5),
    )
    return LQProblem(dyn, cost, prev, policy)
