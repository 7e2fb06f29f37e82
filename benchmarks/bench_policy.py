"""Policy-training benchmark: wall time of ``train_policy`` (default 2×40 softplus MLP) at GPS-sized problems.

For each size (N samples, T steps, dO observation dims, dU actions) the targets are a smooth nonlinear
function of the observations (what the controllers of several conditions look like to one policy), the
precisions are random SPD per step and λ_t = 1. Reported: L-BFGS iterations, objective evaluations, time per
evaluation (forward + backward over all N·T samples), total wall time of a cold start and of a warm start
on a fresh batch of the same distribution (the situation of later GPS iterations).

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=python python benchmarks/bench_policy.py [--iterations 200] [--quick]
"""
from __future__ import annotations

import argparse

import numpy as np

from gpsx.policy import GaussianMLPPolicy
from gpsx.policy_training import train_policy

SIZES = [  # (label, N, T, dO, dU)
    ("small", 5, 100, 10, 2),
    ("swimmer", 20, 400, 10, 2),
    ("peg3d", 20, 800, 12, 6),
    ("octopus-dims", 20, 800, 50, 18),
]


def problem(rng: np.random.Generator, N: int, T: int, dO: int, dU: int, A: np.ndarray, B: np.ndarray):
    """Observations, nonlinear targets tanh(o A) B, random SPD precisions (T, dU, dU), λ = 1."""
    obs = rng.standard_normal((N, T, dO))
    target = np.tanh(obs @ A) @ B
    G = rng.standard_normal((T, dU, dU))
    prec = G @ np.swapaxes(G, 1, 2) / dU + np.eye(dU)
    return obs, target, prec, np.ones(T)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="only the two smallest sizes")
    args = parser.parse_args()
    print(f"{'size':>13} {'N*T':>6} {'dO':>3} {'dU':>3} | {'start':>5} {'iters':>5} {'evals':>5} "
          f"{'ms/eval':>7} {'wall s':>7} {'L0/L':>8}")
    for label, N, T, dO, dU in SIZES[:2] if args.quick else SIZES:
        rng = np.random.default_rng(0)
        A, B = rng.standard_normal((dO, 8)) / np.sqrt(dO), rng.standard_normal((8, dU))
        policy = GaussianMLPPolicy(dO, dU, seed=0)
        for start in ("cold", "warm"):
            res = train_policy(policy, *problem(rng, N, T, dO, dU, A, B), max_iterations=args.iterations)
            print(f"{label:>13} {N * T:>6} {dO:>3} {dU:>3} | {start:>5} {res.iterations:>5} {res.evaluations:>5} "
                  f"{1e3 * res.wall_time / res.evaluations:>7.2f} {res.wall_time:>7.2f} "
                  f"{res.initial_objective / res.objective:>8.1f}")


if __name__ == "__main__":
    main()
