"""Pictures of a run (need the optional extra ``gpsx[plot]``, i.e. matplotlib): learning curves, and the paths
of its rollouts per condition in each task's own 2-D view (:meth:`gpsx.tasks.base.Task.trace`)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .gps import IterationReport
from .tasks.base import Trace

__all__ = ["learning_curves", "trajectories"]


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'gpsx[plot]'") from exc
    matplotlib.use("Agg")   # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def learning_curves(reports: Sequence[IterationReport], path: str | os.PathLike, title: str = "") -> Path:
    """Mean sample cost and success rate per condition against samples per condition, written as a PNG; for a
    run with the policy, two more panels: the cost of the policy's noise-free rollouts per trained (solid) and
    held-out test (dashed) condition, and the fraction of trained and of held-out conditions they succeed on."""
    if not reports:
        raise ValueError("no iterations to plot")
    plt = _pyplot()
    conditions = reports[0].conditions
    guided = bool(reports[0].policy_cost)
    x = [r.samples_used / len(conditions) for r in reports]
    fig, axes = plt.subplots(1, 4 if guided else 2, figsize=(20 if guided else 10, 4), constrained_layout=True)
    ax_cost, ax_success = axes[:2]
    for i, c in enumerate(conditions):
        ax_cost.plot(x, [r.mean_cost[i] for r in reports], marker="o", ms=3, label=f"condition {c}")
        ax_success.plot(x, [r.success[i] for r in reports], marker="o", ms=3, label=f"condition {c}")
    ax_cost.set(xlabel="samples per condition", ylabel="mean total cost of the samples", title="cost")
    ax_success.set(xlabel="samples per condition", ylabel="fraction of samples that succeed", title="success",
                   ylim=(-0.05, 1.05))
    costs = [v for r in reports for v in r.mean_cost]
    _log_if_wide(ax_cost, costs)
    ax_cost.legend(fontsize="small")
    if guided:
        _policy_panel(axes[2], reports, x)
        _policy_success_panel(axes[3], reports, x)
    return _save(plt, fig, path, title, dpi=110)


def _policy_panel(ax, reports: Sequence[IterationReport], x: list[float]) -> None:
    """Policy cost per trained (solid) and held-out test (dashed) condition."""
    for i, c in enumerate(reports[0].conditions):
        ax.plot(x, [r.policy_cost[i] for r in reports], marker="o", ms=3, label=f"condition {c}")
    for i, c in enumerate(reports[0].test_conditions):
        ax.plot(x, [r.test_policy_cost[i] for r in reports], ls="--", marker="x", ms=3, label=f"test {c}")
    ax.set(xlabel="samples per condition", ylabel="total cost, noise-free rollout", title="policy")
    _log_if_wide(ax, [v for r in reports for v in (*r.policy_cost, *r.test_policy_cost)])
    ax.legend(fontsize="small")


def _policy_success_panel(ax, reports: Sequence[IterationReport], x: list[float]) -> None:
    """Fraction of trained and of held-out test conditions on which the policy's noise-free rollout succeeds."""
    ax.plot(x, [np.mean(r.policy_success) for r in reports], marker="o", ms=3, label="trained conditions")
    if reports[0].test_conditions:
        ax.plot(x, [np.mean(r.test_policy_success) for r in reports], ls="--", marker="x", ms=3,
                label="held-out test conditions")
    ax.set(xlabel="samples per condition", ylabel="fraction of conditions", title="policy success",
           ylim=(-0.05, 1.05))
    ax.legend(fontsize="small")


def _log_if_wide(ax, values: list[float]) -> None:
    """Log scale when the (finite) values are positive and span a decade or more."""
    values = [v for v in values if math.isfinite(v)]
    if values and min(values) > 0 and max(values) > 10 * min(values):
        ax.set_yscale("log")


def trajectories(panels: Sequence[tuple[str, Trace, np.ndarray]], path: str | os.PathLike, title: str = "") -> Path:
    """One panel per condition: (label, trace of its rollouts, success (n,)). The first rollout (noise-free) is
    drawn bold, the others (with exploration noise) thin; the start is a dot, the goal a star; green paths
    succeeded, red ones did not. Written as a PNG."""
    if not panels:
        raise ValueError("no rollouts to plot")
    plt = _pyplot()
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False, constrained_layout=True)
    for ax, (label, trace, success) in zip(axes.flat, panels):
        for i, path_i in enumerate(trace.points):
            ax.plot(path_i[:, 0], path_i[:, 1], color="tab:green" if success[i] else "tab:red",
                    lw=1.8 if i == 0 else 0.6, alpha=1.0 if i == 0 else 0.5)
        ax.plot(trace.points[0, 0, 0], trace.points[0, 0, 1], "ko", ms=4)
        if trace.goal is not None:
            ax.plot(trace.goal[0], trace.goal[1], "*", color="gold", mec="k", ms=12)
        outcome = "success" if success[0] else "fail"
        if len(success) > 1:
            outcome += f", noisy {np.mean(success[1:]):.0%}"
        ax.set(xlabel=trace.xlabel, ylabel=trace.ylabel, title=f"{label}: {outcome}")
        if trace.equal_axes:
            ax.set_aspect("equal", adjustable="datalim")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    return _save(plt, fig, path, title, dpi=100)


def _save(plt, fig, path: str | os.PathLike, title: str, dpi: int) -> Path:
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
