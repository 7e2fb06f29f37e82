"""The ``gpsx`` command line (also ``python -m gpsx``).

``gpsx tasks``                          the shipped tasks and their dimensions
``gpsx train TASK [options]``           guided policy search; writes a run folder (see :mod:`gpsx.runs`)
``gpsx train TASK --no-policy``         the linear-Gaussian controllers only (trajectory optimisation)
``gpsx train --resume RUN_DIR``         continue an interrupted run from its latest checkpoint
``gpsx eval RUN_DIR``                   the policy on the trained and the held-out conditions (or, for a
                                        ``--no-policy`` run, the final controllers on their conditions)
``gpsx plot RUN_DIR``                   learning curves as a PNG (needs ``gpsx[plot]``)
``gpsx bench [args]``                   DP microbenchmarks (arguments go to ``gpsx.bench``)
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from .errors import GPSXError

__all__ = ["main", "build_parser"]

_handler: logging.Handler | None = None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``gpsx`` (``bench`` is dispatched before parsing; listed here for --help)."""
    common = argparse.ArgumentParser(add_help=False)
    verbosity = common.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log every iteration")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes, errors only")
    parser = argparse.ArgumentParser(prog="gpsx", description="Guided Policy Search under unknown dynamics.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("tasks", parents=[common], help="list the tasks and their dimensions")
    p.set_defaults(func=_tasks)

    p = sub.add_parser("train", parents=[common], help="learn a policy on a task; writes a run folder",
                       description="Guided policy search on TASK: linear-Gaussian controllers per training "
                                   "condition guide a neural-network policy. Writes a run folder "
                                   "(config.json, metrics.jsonl, checkpoints/).")
    p.add_argument("task", nargs="?", help="task name (see `gpsx tasks`); omit with --resume")
    p.add_argument("--iterations", type=int, help="total iterations (default: the config's, 10)")
    p.add_argument("--samples", type=int, help="samples per condition per iteration (default 5)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--out", type=Path, help="run folder (default runs/TASK-YYYYmmdd-HHMMSS)")
    p.add_argument("--horizon", type=int, help="shorten the task's horizon to T steps (quick experiments)")
    settings = p.add_mutually_exclusive_group()
    settings.add_argument("--config", type=Path, help="JSON file of GPSConfig settings (flags override it)")
    settings.add_argument("--recipe", action="store_true",
                          help="the settings the README's results for TASK were run with, iterations included "
                               "(gpsx/recipes/TASK.json; flags override them)")
    p.add_argument("--jobs", type=int, help="worker processes for sampling conditions in parallel")
    p.add_argument("--no-policy", action="store_true",
                   help="train the linear-Gaussian controllers only, no neural-network policy")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", parents=[common],
                       help="success of a run's policy on its training and held-out conditions "
                            "(of its controllers for a --no-policy run)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--samples", type=int, default=10, help="noisy rollouts per condition (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the exploration noise (default 0)")
    p.add_argument("--best", action="store_true",
                   help="evaluate the best policy of the run (most successes on the trained conditions, then "
                        "lowest cost) instead of the final one")
    p.set_defaults(func=_eval)

    p = sub.add_parser("plot", parents=[common],
                       help="learning curves of a run, and its rollouts per condition, as PNGs")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, help="learning-curves PNG path (default RUN_DIR/learning_curves.png)")
    p.add_argument("--rollouts", type=int, default=4, metavar="N",
                   help="noisy rollouts per condition drawn next to the noise-free one in RUN_DIR/trajectories.png "
                        "(default 4; 0 skips the rollouts picture)")
    p.set_defaults(func=_plot)

    sub.add_parser("bench", help="DP microbenchmarks (`gpsx bench --help` for its options)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    try:
        return args.func(args)
    except (GPSXError, FileExistsError, ImportError) as exc:
        print(f"gpsx {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gpsx: interrupted", file=sys.stderr)
        return 130


def _configure_logging(args: argparse.Namespace) -> None:
    global _handler
    log = logging.getLogger("gpsx")
    if _handler is not None:
        log.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.ERROR if args.quiet else logging.INFO if args.verbose else logging.WARNING)


# --- tasks ---------------------------------------------------------------------------------------------------
def _tasks(args: argparse.Namespace) -> int:
    from . import tasks

    rows = [("task", "dX", "dU", "T", "dt (s)", "train", "test")]
    for name in tasks.names():
        t = tasks.make(name)
        rows.append((name, t.dX, t.dU, t.T, f"{t.dt:g}", len(t.train_conditions), len(t.test_conditions)))
    print(_table(rows))
    return 0


# --- train ---------------------------------------------------------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .runs import RunDir

    if args.resume is not None:
        run, algo = _resumed(args, RunDir(args.resume))
    else:
        run, algo = _started(args)
    total = algo.config.iterations
    with logging_redirect_tqdm(loggers=[logging.getLogger("gpsx")]), \
            tqdm(total=total, initial=algo.iteration, desc=algo.task.name, unit="iter", disable=args.quiet,
                 file=sys.stderr, dynamic_ncols=True) as bar:
        try:
            for report in algo.run(total):
                run.record(algo, report)
                postfix = {"cost": f"{np.mean(report.mean_cost):.4g}", "kl": f"{np.mean(report.kl):.3g}",
                           "eta": f"{np.exp(np.mean(np.log(report.eta))):.3g}"}
                if report.policy_cost:
                    postfix["policy"] = f"{np.mean(report.policy_cost):.4g}"
                bar.set_postfix(postfix, refresh=False)
                bar.update()
        except KeyboardInterrupt:
            print(f"gpsx train: interrupted after {algo.iteration} iterations; continue with "
                  f"`gpsx train --resume {run.path}`", file=sys.stderr)
            return 130
    if not args.quiet:
        print(f"{algo.task.name}: {algo.iteration} iterations, {algo.samples_used} samples; run folder {run.path}")
    return 0


def _started(args: argparse.Namespace):
    from . import tasks
    from .config import GPSConfig
    from .gps import GPS
    from .runs import RunDir

    if args.task is None:
        raise GPSXError("name a task (see `gpsx tasks`) or pass --resume RUN_DIR")
    try:
        task = tasks.make(args.task)
    except ValueError as exc:
        raise GPSXError(str(exc)) from exc
    settings = {}
    if args.recipe:
        from . import recipes
        try:
            settings = recipes.load(task.name)
        except ValueError as exc:
            raise GPSXError(str(exc)) from exc
    if args.config is not None:
        try:
            settings = json.loads(args.config.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise GPSXError(f"cannot read the config file {args.config}: {exc}") from exc
    flags = {"iterations": args.iterations, "samples_per_condition": args.samples, "jobs": args.jobs,
             "policy": False if args.no_policy else None}
    try:
        if args.horizon is not None:
            task = task.with_horizon(args.horizon)
        config = GPSConfig.from_dict({**settings, **{k: v for k, v in flags.items() if v is not None}})
    except (TypeError, ValueError) as exc:
        raise GPSXError(str(exc)) from exc
    seed = 0 if args.seed is None else args.seed
    out = args.out or Path("runs") / f"{task.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run = RunDir.create(out, {"task": task.name, "horizon": task.T, "seed": seed, "policy": config.policy,
                              "config": config.to_dict()})
    algo = GPS(task, config, seed=seed)
    run.checkpoint(algo)
    return run, algo


def _resumed(args: argparse.Namespace, run):
    fixed = {"TASK": args.task, "--samples": args.samples, "--seed": args.seed, "--out": args.out,
             "--horizon": args.horizon, "--config": args.config, "--recipe": args.recipe or None,
             "--no-policy": args.no_policy or None}
    given = [name for name, value in fixed.items() if value is not None]
    if given:
        raise GPSXError(f"{', '.join(given)} cannot be changed when resuming (only --iterations and --jobs)")
    algo = run.resume()
    changes = {k: v for k, v in {"iterations": args.iterations, "jobs": args.jobs}.items() if v is not None}
    if changes:
        try:
            algo.config = algo.config.replace(**changes)
        except (TypeError, ValueError) as exc:
            raise GPSXError(str(exc)) from exc
    logging.getLogger("gpsx").info("resuming %s after %d iterations", run.path, algo.iteration)
    return run, algo


# --- eval ----------------------------------------------------------------------------------------------------
def _eval(args: argparse.Namespace) -> int:
    from .runs import RunDir

    run = RunDir(args.run_dir)
    algo = run.load()
    if algo.policy is None:
        if args.best:
            raise GPSXError(f"{run.path} has no policy (--no-policy run): --best needs one")
        results, evaluated = _eval_controllers(algo, args), {"evaluated": "controllers"}
    elif args.best:
        best = algo.best_policy
        if best is None:
            raise GPSXError(f"{run.path}: no iteration has finished yet, so there is no best policy")
        print(f"the best policy: after iteration {best.iteration} (successes on {best.successes}/"
              f"{len(algo.conditions)} trained conditions, total cost {best.cost:.4g}; chosen on those only)")
        results = _eval_policy(algo, best.policy, args)
        evaluated = {"evaluated": "best policy", "policy_iteration": best.iteration}
    else:
        results = _eval_policy(algo, algo.policy, args)
        evaluated = {"evaluated": "policy", "policy_iteration": algo.iteration - 1}
    (run.path / "eval.json").write_text(json.dumps(
        {"iteration": algo.iteration, "samples_used": algo.samples_used, "samples": args.samples,
         "seed": args.seed, **evaluated, "results": [vars(r) for r in results]}, indent=2) + "\n")
    return 0


def _eval_controllers(algo, args: argparse.Namespace) -> list:
    """Each trained condition's final controller on its own condition (trajectory-only runs)."""
    from .evaluation import evaluate_controller

    task = algo.task
    results = [evaluate_controller(task, algo.controllers[c], c, args.samples, args.seed) for c in algo.conditions]
    print(f"{task.name} after {algo.iteration} iterations ({algo.samples_used} samples), the controllers on "
          f"their training conditions:")
    print(_results_table(results, args.samples))
    print(f"success without noise: {sum(r.success for r in results)}/{len(results)} conditions")
    print(f"held-out test conditions {list(task.test_conditions)}: not evaluated; this run has no policy "
          f"(--no-policy), and the controllers belong to their training conditions")
    return results


def _eval_policy(algo, policy, args: argparse.Namespace) -> list:
    """A neural-network policy of the run on the trained and on the held-out test conditions."""
    from .evaluation import evaluate_policy

    task = algo.task
    print(f"{task.name} after {algo.iteration} iterations ({algo.samples_used} samples), the policy:")
    results = []
    for label, conds in (("trained", algo.conditions), ("held-out test", task.test_conditions)):
        part = [evaluate_policy(task, policy, c, args.samples, args.seed) for c in conds]
        if part:
            print(f"{label} conditions:")
            print(_results_table(part, args.samples))
            print(f"success without noise on the {label} conditions: {sum(r.success for r in part)}/{len(part)}")
        results += part
    return results


def _results_table(results: list, samples: int) -> str:
    label = results[0].label
    rows = [("condition", "cost", "success", label, f"success ({samples} noisy)", f"mean {label}")]
    for r in results:
        rows.append((r.condition, f"{r.cost:.4g}", "yes" if r.success else "no", f"{r.measure:.4g}",
                     f"{r.noisy_success:.0%}" + (f" ({r.noisy_diverged} diverged)" if r.noisy_diverged else ""),
                     f"{r.noisy_measure:.4g}"))
    return _table(rows)


# --- plot ----------------------------------------------------------------------------------------------------
def _plot(args: argparse.Namespace) -> int:
    from .plotting import learning_curves
    from .runs import RunDir

    run = RunDir(args.run_dir)
    settings = run.settings()
    reports = run.metrics()
    if not reports:
        raise GPSXError(f"{run.path} has no iterations yet (metrics.jsonl is empty)")
    title = f"{settings['task']} (T={settings['horizon']}), {settings['config']['samples_per_condition']} " \
            f"samples per condition per iteration, seed {settings['seed']}"
    print(learning_curves(reports, args.out or run.path / "learning_curves.png", title))
    if args.rollouts > 0:
        print(_plot_rollouts(run, args.rollouts, title))
    return 0


def _plot_rollouts(run, noisy: int, title: str) -> Path:
    """The final controllers on their training conditions (a --no-policy run), or the policy on the trained
    and held-out conditions: one noise-free rollout and ``noisy`` with noise each, in the task's picture."""
    from .evaluation import clean_and_noisy
    from .guided import ObservedPolicy
    from .plotting import trajectories

    algo = run.load()
    task = algo.task
    if algo.policy is None:
        actors = [(f"condition {c}", c, algo.controllers[c]) for c in algo.conditions]
        what = "final controllers"
    else:
        actors = [(f"{kind} {c}", c, ObservedPolicy(algo.policy, task, c))
                  for kind, conds in (("trained", algo.conditions), ("test", task.test_conditions)) for c in conds]
        what = "policy"
    panels = []
    for label, c, actor in actors:
        clean, r = clean_and_noisy(task, actor, c, noisy)
        X = np.concatenate([clean.X, r.X[r.valid]])          # a diverged noisy rollout is left out
        panels.append((label, task.trace(X, c), task.success(X, c)))
    return trajectories(panels, run.path / "trajectories.png", f"{title}\n{what} after {algo.iteration} iterations")


# --- bench ---------------------------------------------------------------------------------------------------
def _bench(argv: list[str]) -> int:
    try:
        from . import bench
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.bench":
            raise
        print("gpsx bench: not available in this installation (gpsx.bench is missing)", file=sys.stderr)
        return 1
    return bench.main(argv)


def _table(rows: list[tuple]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":     # python -m gpsx.cli works like python -m gpsx
    raise SystemExit(main())
