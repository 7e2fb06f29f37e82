"""Where a peg run's controllers and policy miss their slots: in the slot and out at the end, or never in.

For the last checkpoint of RUN_DIR (peg2d or peg3d), per trained condition, the newest buffered samples (those
of the current controllers): the tip's final distance to the slot bottom, the first step within 1 cm of it
(the success radius; −1: never) and the share of the later steps it stays within 1 cm. With ``--policy``,
the same for one noise-free rollout of the final policy on every trained and held-out condition. With ``--end``,
the controllers' mean action over the last steps at those samples' states, beside the initial controller's mean
action at the same states: where the two agree, the last steps still act like the initial controller, which holds
the start pose above the slot. docs/results.md (issue 6, sessions 8 and 11) quotes these.

    PYTHONPATH=build/dev:python python benchmarks/peg_tips.py RUN_DIR [--policy] [--end]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gpsx.guided import ObservedPolicy
from gpsx.runs import RunDir
from gpsx.sampling import LinearGaussianPolicy
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


def end_actions(controller, initial, X: np.ndarray, steps) -> str:
    """Mean over the samples of the controller's and the initial controller's mean actions, at the given steps."""
    policies = LinearGaussianPolicy(controller), LinearGaussianPolicy(initial)
    no_noise = np.zeros((X.shape[0], controller.dU))
    parts = []
    for t in steps:
        now, start = (np.array2string(p.act(X[:, t], t, no_noise).mean(axis=0), precision=0) for p in policies)
        parts.append(f"{t}: {now} vs {start}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--policy", action="store_true", help="also roll out the final policy, noise-free")
    parser.add_argument("--end", action="store_true",
                        help="also the controllers' mean actions over the last steps against the initial controller's")
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
    if args.end:
        steps = range(task.T - 20, task.T, 4)
        print(f"controllers' mean action (N·m) at their newest samples' states, against the initial controller's at "
              f"the same states, steps {steps.start}–{task.T - 1}:")
        for c in algo.conditions:
            X = algo.guide.buffer[c][-1]
            line = end_actions(algo.controllers[c], task.initial_controller(c), X, [*steps, task.T - 1])
            print(f"  condition {c:2d}: {line}")
    if args.policy:
        print("the final policy, noise-free, per trained and held-out condition:")
        for c in list(algo.conditions) + list(task.test_conditions):
            rollout = task.sample(ObservedPolicy(algo.policy, task, c), c, 1, seed=0, noise=False)
            print(f"  condition {c:2d}: {describe(bottom_distance_per_step(task, rollout.X, c))}")


if __name__ == "__main__":
    main()
