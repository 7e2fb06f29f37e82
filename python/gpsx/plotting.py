"""Learning curves of a run (needs the optional extra ``gpsx[plot]``, i.e. matplotlib)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from .gps import IterationReport

__all__ = ["learning_curves"]


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
    run with the policy, a third panel: the cost of the policy's noise-free rollouts per trained (solid) and
    held-out test (dashed) condition."""
    if not reports:
        raise ValueError("no iterations to plot")
    plt = _pyplot()
    conditions = reports[0].conditions
    guided = bool(reports[0].policy_cost)
    x = [r.samples_used / len(conditions) for r in reports]
    fig, axes = plt.subplots(1, 3 if guided else 2, figsize=(15 if guided else 10, 4), constrained_layout=True)
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
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _policy_panel(ax, reports: Sequence[IterationReport], x: list[float]) -> None:
    """Policy cost per trained (solid) and held-out test (dashed) condition."""
    for i, c in enumerate(reports[0].conditions):
        ax.plot(x, [r.policy_cost[i] for r in reports], marker="o", ms=3, label=f"condition {c}")
    for i, c in enumerate(reports[0].test_conditions):
        ax.plot(x, [r.test_policy_cost[i] for r in reports], ls="--", marker="x", ms=3, label=f"test {c}")
    ax.set(xlabel="samples per condition", ylabel="total cost, noise-free rollout", title="policy")
    _log_if_wide(ax, [v for r in reports for v in (*r.policy_cost, *r.test_policy_cost)])
    ax.legend(fontsize="small")


def _log_if_wide(ax, values: list[float]) -> None:
    """Log scale when the (finite) values are positive and span a decade or more."""
    values = [v for v in values if math.isfinite(v)]
    if values and min(values) > 0 and max(values) > 10 * min(values):
        ax.set_yscale("log")
