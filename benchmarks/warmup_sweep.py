"""A guided recipe's warm-up as trajectory-only runs: how many conditions the controllers solve, over many seeds.

During ``guided.warmup_iterations`` the controllers are updated exactly as in trajectory-only mode
(tests/test_gps_policy.py holds them bit-identical), and without the policy a peg2d iteration takes about half
a second, so a setting's effect on the controllers is measured over 16 seeds in minutes rather than hours.

Per seed (``--seeds`` of them from ``--first-seed`` on): the task's recipe with ``policy`` off, the ``--set``
overrides, ``--iterations`` iterations. Printed per seed: each condition's mean share of successful samples
over the five iterations before the recipe's switch to the policy term, and over the last five; then the
totals: conditions with a share ≥ 0.8, the mean share, and the seeds with every condition ≥ 0.8.
docs/results.md (issue 6, sessions 9 and 12) quotes these.

    PYTHONPATH=build/dev:python python benchmarks/warmup_sweep.py peg2d --seeds 16 --set initial_noise_scale=50   # the session-8 noise
"""
from __future__ import annotations

import argparse
import functools
import json
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np

SOLVED = 0.8   # a condition counts as solved when this share of its samples succeeds, on average over a window


def run_seed(task_name: str, settings: dict, iterations: int, alpha: float | None, seed: int) -> np.ndarray:
    """The samples' success per iteration and condition, (iterations, conditions)."""
    import gpsx.tasks
    from gpsx.config import GPSConfig
    from gpsx.gps import GPS

    if alpha is not None:   # the peg tasks build their ℓ12 term with PointTarget's default α: rebind it
        import gpsx.costs
        import gpsx.tasks.peg as peg

        peg.PointTarget = functools.partial(gpsx.costs.PointTarget, alpha=alpha)
    algo = GPS(gpsx.tasks.make(task_name), GPSConfig.from_dict(settings), seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([report.success for report in algo.run(iterations)])


def shares(row: np.ndarray) -> str:
    """One condition's share per column, one decimal each."""
    return " ".join(f"{v:.1f}" for v in row)


def totals(share: np.ndarray) -> str:
    """share: (seeds, conditions) mean success over a window."""
    solved = share >= SOLVED - 1e-9   # shares are multiples of 1/25, computed with rounding
    return (f"{solved.sum()}/{solved.size} solved, mean share {share.mean():.3f}, "
            f"{solved.all(axis=1).sum()}/{len(share)} seeds with all")


def main() -> None:
    from gpsx import recipes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("--seeds", type=int, default=16, help="this many seeds, from --first-seed on")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=JSON",
                        help="a top-level GPSConfig setting over the recipe, e.g. max_step_mult=10")
    parser.add_argument("--alpha", type=float, help="the peg cost's ℓ12 α instead of gpsx.costs.DEFAULT_ALPHA")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    settings = {**recipes.load(args.task), "policy": False, "iterations": args.iterations}
    for item in args.overrides:
        key, _, value = item.partition("=")
        settings[key] = json.loads(value)
    switch = settings.get("guided", {}).get("warmup_iterations", args.iterations)
    if not 5 <= switch <= args.iterations:
        parser.error(f"the recipe switches at iteration {switch}: need 5 <= it <= --iterations")
    job = functools.partial(run_seed, args.task, settings, args.iterations, args.alpha)
    with ProcessPoolExecutor(args.jobs) as pool:
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        success = np.array(list(pool.map(job, seeds)))   # (seeds, iterations, conditions)
    before, last = success[:, switch - 5:switch].mean(axis=1), success[:, -5:].mean(axis=1)
    print(f"{args.task}, recipe with policy off and {args.overrides or 'no overrides'}"
          f"{'' if args.alpha is None else f', alpha {args.alpha:g}'}: samples' success per condition, "
          f"iterations {switch - 5}-{switch - 1} | {args.iterations - 5}-{args.iterations - 1}")
    for i, seed in enumerate(seeds):
        print(f"  seed {seed:2d}: {shares(before[i])} | {shares(last[i])}")
    print(f"iterations {switch - 5}-{switch - 1}: {totals(before)}")
    print(f"iterations {args.iterations - 5}-{args.iterations - 1}: {totals(last)}")


if __name__ == "__main__":
    main()
