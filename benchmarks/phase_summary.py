"""How steady a guided run's policy was after the warm-up: its per-iteration metrics from iteration FROM on.

Per run folder, over the iterations from ``--from`` (default 45, the peg recipes' warm-up) to the last: the
mean number of conditions (trained plus held-out) the policy's noise-free rollout solved ("λ phase" in
docs/results.md), the iterations at which it solved every trained condition, the mean share of the
controllers' samples that succeeded, and the controllers' mean action variance per condition just before
FROM and at the last iteration. docs/results.md (issue 6, session 8) quotes these.

    PYTHONPATH=build/dev:python python benchmarks/phase_summary.py RUN_DIR [RUN_DIR ...] [--from 45]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gpsx.runs import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--from", dest="start", type=int, default=45, help="first iteration summarised")
    args = parser.parse_args()
    for run_dir in args.run_dirs:
        reports = RunDir(run_dir).metrics()
        phase = [r for r in reports if r.iteration >= args.start]
        if not phase or not phase[0].policy_success:
            raise SystemExit(f"{run_dir}: no guided iterations from {args.start} on")
        before = [r for r in reports if r.iteration == args.start - 1]
        solved = np.mean([sum(r.policy_success) + sum(r.test_policy_success) for r in phase])
        total = len(phase[0].policy_success) + len(phase[0].test_policy_success)
        all_trained = sum(all(r.policy_success) for r in phase)
        samples = np.mean([np.mean(r.success) for r in phase])
        variance = lambda r: ", ".join(f"{v:.0f}" for v in r.action_variance)
        print(f"{run_dir}: iterations {args.start}-{phase[-1].iteration}: policy solved {solved:.2f} of {total} "
              f"on average, all trained at {all_trained} of {len(phase)}; samples' success {samples:.2f}; "
              f"action variance {variance(before[0]) if before else '?'} -> {variance(phase[-1])}")


if __name__ == "__main__":
    main()
