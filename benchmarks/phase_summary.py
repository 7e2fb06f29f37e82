"""How steady a guided run's policy was after the warm-up: its per-iteration metrics from iteration FROM on.

Per run folder, over the iterations from ``--from`` (default: the run's own ``guided.warmup_iterations``) to
``--to`` (default: the last): the mean number of conditions (trained plus held-out) the policy's noise-free rollout solved ("λ phase"
in docs/results.md), the iterations at which it solved every trained condition and every held-out one (summed
over seeds and divided by the iterations, the latter is "seeds at 9/9 per iteration"), the mean share of the
controllers' samples that succeeded, and the controllers' mean action variance per condition just before
FROM and at the last iteration. docs/results.md (issue 6, session 8) quotes these. A second line gives, per
trained condition, the samples' mean success over those iterations and the mean λ_t at the last one (with the
largest over the smallest), and the range of the per-condition mean KL(π‖p) the dual step saw (after
``dual_kl_max``) over those iterations (session 10 quotes these). A third line gives the mean seconds per
iteration of each phase over the whole run (``IterationReport.timings``; session 12 quotes the dynamics fit's).
A fourth line, for runs with ``guided.controller_reset``, lists the iterations after which each condition's
controller was reset to the policy's (session 13), marked "(best)" where the policy's own rollout failed and the
best policy's was used instead (session 14).

    PYTHONPATH=build/dev:python python benchmarks/phase_summary.py RUN_DIR [RUN_DIR ...] [--from 25] [--to 39]

``--from 15 --to 24`` summarises the end of a 25-iteration warm-up instead (docs/results.md, issue 6, session 19
quotes the samples' success per condition over it).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gpsx.runs import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--from", dest="start", type=int, default=None,
                        help="first iteration summarised (default: the run's warm-up length)")
    parser.add_argument("--to", dest="stop", type=int, default=None,
                        help="last iteration summarised (default: the run's last)")
    args = parser.parse_args()
    for run_dir in args.run_dirs:
        run = RunDir(run_dir)
        start = args.start if args.start is not None else run.settings()["config"]["guided"]["warmup_iterations"]
        reports = run.metrics()
        phase = [r for r in reports if start <= r.iteration and (args.stop is None or r.iteration <= args.stop)]
        if not phase or not phase[0].policy_success:
            raise SystemExit(f"{run_dir}: no guided iterations from {start} to {args.stop or 'the end'}")
        before = [r for r in reports if r.iteration == start - 1]
        solved = np.mean([sum(r.policy_success) + sum(r.test_policy_success) for r in phase])
        total = len(phase[0].policy_success) + len(phase[0].test_policy_success)
        all_trained = sum(all(r.policy_success) for r in phase)
        all_held_out = sum(all(r.test_policy_success) for r in phase)
        samples = np.mean([np.mean(r.success) for r in phase])
        print(f"{run_dir}: iterations {start}-{phase[-1].iteration}: policy solved {solved:.2f} of {total} "
              f"on average, all trained at {all_trained} of {len(phase)}, all held-out at {all_held_out}; "
              f"samples' success {samples:.2f}; "
              f"action variance {_variances(before[0]) if before else '?'} -> {_variances(phase[-1])}")
        per_condition = np.mean([r.success for r in phase], axis=0)
        lam = np.asarray(phase[-1].lam)
        kl = np.array([r.policy_kl for r in phase])
        print(f"    samples' success per condition {_join(per_condition, '.2f')}; λ at iteration "
              f"{phase[-1].iteration} {_join(lam, '.2g')} (largest/smallest {lam.max() / lam.min():.1f}); "
              f"policy KL min {kl.min():.2f}, median {np.median(kl):.2f}, max {kl.max():.2f}")
        phases = reports[0].timings
        print("    seconds per iteration, whole run: "
              + ", ".join(f"{k} {np.mean([r.timings[k] for r in reports]):.2f}" for k in phases))
        if any(r.controller_reset for r in reports):
            resets = {c: [f"{r.iteration}{'' if r.policy_success[i] else ' (best)'}" for r in reports
                          if r.controller_reset[i]] for i, c in enumerate(reports[0].conditions)}
            print("    controllers reset to the policy (best: to the best policy) after iterations: "
                  + "; ".join(f"condition {c}: {', '.join(its) or 'none'}" for c, its in resets.items()))


def _join(values, spec: str) -> str:
    return ", ".join(format(v, spec) for v in values)


def _variances(report) -> str:
    return _join(report.action_variance, ".0f")


if __name__ == "__main__":
    main()
