"""Where a peg run's controllers and policy miss their slots: in the slot and out at the end, or never in.

For the last checkpoint of RUN_DIR (peg2d or peg3d), per trained condition, the newest buffered samples (those
of the current controllers): the tip's final distance to the slot bottom, the first step within 1 cm of it
(the success radius; −1: never) and the share of the later steps it stays within 1 cm. With ``--policy``,
the same for one noise-free rollout of the final policy on every trained and held-out condition.
docs/results.md (issue 6, session 8, §6) quotes these.

    PYTHONPATH=build/dev:python python benchmarks/peg_tips.py RUN_DIR [--policy]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gpsx.guided import ObservedPolicy
from gpsx.runs import RunDir
from gpsx.tasks.peg import SUCCESS_RADIUS


def bottom_distance_per_step(task, X: np.ndarray, condition: int) -> np.ndarray:
    """Distance (m) of the tip to the slot bottom at every step, (n, T)."""
    return np.stack([task.bottom_distances(X[:, t:t + 1], condition) for t in range(X.shape[1])], axis=1)


def describe(distances: np.ndarray) -> str:
    """Final distance (cm), first step inside the success radius and the share of later steps inside."""
    parts = []
    for d in distances:
        inside = d < SUCCESS_RADIUS
        first = int(np.argmax(inside)) if inside.any() else -1
        share = inside[first:].mean() if first >= 0 else 0.0
        parts.append(f"{100 * d[-1]:5.1f} cm (in from {first:3d}, {100 * share:3.0f} % after)")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--policy", action="store_true", help="also roll out the final policy, noise-free")
    args = parser.parse_args()
    algo = RunDir(args.run_dir).load()
    task = algo.task
    if algo.guide is None:
        parser.error(f"{args.run_dir} is a --no-policy run: it keeps no samples")
    print("controllers' newest samples, per trained condition: final distance to the slot bottom "
          "(first step within 1 cm, share of later steps within 1 cm)")
    for c in algo.conditions:
        X = algo.guide.buffer[c][-1]
        print(f"  condition {c:2d}: {describe(bottom_distance_per_step(task, X, c))}")
    if args.policy:
        print("the final policy, noise-free, per trained and held-out condition:")
        for c in list(algo.conditions) + list(task.test_conditions):
            rollout = task.sample(ObservedPolicy(algo.policy, task, c), c, 1, seed=0, noise=False)
            print(f"  condition {c:2d}: {describe(bottom_distance_per_step(task, rollout.X, c))}")


if __name__ == "__main__":
    main()
