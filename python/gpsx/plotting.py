"""Learning curves of a run (needs the optional extra ``gpsx[plot]``, i.e. matplotlib)."""
from __future__ import annotations

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
    """Mean sample cost and success rate per condition against samples per condition, written as a PNG."""
    if not reports:
        raise ValueError("no iterations to plot")
    plt = _pyplot()
    conditions = reports[0].conditions
    x = [r.samples_used / len(conditions) for r in reports]
    fig, (ax_cost, ax_success) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for i, c in enumerate(conditions):
        ax_cost.plot(x, [r.mean_cost[i] for r in reports], marker="o", ms=3, label=f"condition {c}")
        ax_success.plot(x, [r.success[i] for r in reports], marker="o", ms=3, label=f"condition {c}")
    ax_cost.set(xlabel="samples per condition", ylabel="mean total cost of the samples", title="cost")
    ax_success.set(xlabel="samples per condition", ylabel="fraction of samples that succeed", title="success",
                   ylim=(-0.05, 1.05))
    costs = [v for r in reports for v in r.mean_cost]
    if min(costs) > 0 and max(costs) > 10 * min(costs):   # log scale when the cost spans a decade or more
        ax_cost.set_yscale("log")
    ax_cost.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
