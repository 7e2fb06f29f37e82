"""Run folders: what ``gpsx train`` writes and ``--resume``, ``eval`` and ``plot`` read.

Layout of a run folder::

    config.json                  task, horizon, seed and the GPSConfig (written once, atomically)
    metrics.jsonl                one IterationReport per line
    checkpoints/iter_NNNN.npz    the state after NNNN iterations (gpsx.checkpoint format)

After every iteration the metrics line is appended, then the new checkpoint is written atomically, and only
then is the checkpoint before the previous one deleted: the newest two are kept, so an interrupted run loses
at most one iteration, and a damaged newest checkpoint still leaves the one before it. Resuming truncates
``metrics.jsonl`` to the iterations the checkpoint holds.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from .checkpoint import atomic_open
from .errors import CheckpointError
from .gps import GPS, IterationReport

__all__ = ["RunDir"]

logger = logging.getLogger(__name__)

KEEP_CHECKPOINTS = 2
_CKPT = re.compile(r"iter_(\d+)\.npz$")


def _atomic_text(path: Path, text: str) -> None:
    with atomic_open(path, "x") as f:
        f.write(text)


class RunDir:
    """One run's folder (see the module docstring)."""

    CONFIG, METRICS, CHECKPOINTS = "config.json", "metrics.jsonl", "checkpoints"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | os.PathLike, settings: dict[str, Any]) -> "RunDir":
        """A new run folder with ``settings`` as its config.json; refuses a folder that already holds a run."""
        run = cls(path)
        if (run.path / cls.CONFIG).exists():
            raise FileExistsError(f"{run.path} already holds a run; resume it with --resume or choose --out")
        (run.path / cls.CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        _atomic_text(run.path / cls.CONFIG, json.dumps(settings, indent=2) + "\n")
        return run

    def settings(self) -> dict[str, Any]:
        """The content of config.json."""
        try:
            return json.loads((self.path / self.CONFIG).read_text())
        except FileNotFoundError as exc:
            raise CheckpointError(f"{self.path} is not a gpsx run folder (no {self.CONFIG})") from exc
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{self.path / self.CONFIG} is not valid JSON: {exc}") from exc

    # --- checkpoints ---------------------------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        folder = self.path / self.CHECKPOINTS
        found = [(int(m.group(1)), p) for p in folder.glob("iter_*.npz") if (m := _CKPT.search(p.name))]
        return [p for _, p in sorted(found)]

    def record(self, algo: GPS, report: IterationReport) -> Path:
        """Append the report to metrics.jsonl, checkpoint ``algo``, then prune old checkpoints."""
        with open(self.path / self.METRICS, "a") as f:
            f.write(json.dumps(report.to_dict()) + "\n")
        return self.checkpoint(algo)

    def checkpoint(self, algo: GPS) -> Path:
        """Save ``algo`` as ``iter_<completed iterations>.npz`` (``iter_0000``: the initial controllers, so a
        run can be evaluated or resumed before its first iteration ends) and prune old checkpoints."""
        path = self.path / self.CHECKPOINTS / f"iter_{algo.iteration:04d}.npz"
        algo.save(path)
        for old in self.checkpoints()[:-KEEP_CHECKPOINTS]:
            old.unlink()
        return path

    def load(self, task=None) -> GPS:
        """The run's latest readable checkpoint, falling back to the previous one (with a warning) if the
        newest is damaged."""
        if not self.path.is_dir():
            raise CheckpointError(f"no run folder at {self.path}")
        candidates = self.checkpoints()
        if not candidates:
            raise CheckpointError(f"{self.path} has no checkpoints (in {self.CHECKPOINTS}/)")
        errors = []
        for path in reversed(candidates):
            try:
                algo = GPS.load(path, task=task)
            except CheckpointError as exc:
                logger.warning("skipping a checkpoint that cannot be loaded (damaged, or from an incompatible task or "
                               "version): %s", exc)
                errors.append(str(exc))
                continue
            return algo
        raise CheckpointError(f"no readable checkpoint in {self.path}: " + "; ".join(errors))

    def resume(self, task=None) -> GPS:
        """:meth:`load`, with metrics.jsonl truncated to the iterations the checkpoint holds."""
        algo = self.load(task)
        self._truncate_metrics(algo.iteration)
        return algo

    # --- metrics -------------------------------------------------------------------------------------------
    def metrics(self) -> list[IterationReport]:
        """The reports in metrics.jsonl (empty if there are none yet)."""
        path = self.path / self.METRICS
        if not path.exists():
            return []
        reports = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    reports.append(IterationReport.from_dict(json.loads(line)))
                except (json.JSONDecodeError, TypeError) as exc:
                    raise CheckpointError(f"{path}, line {number}: not an iteration report ({exc})") from exc
        return reports

    def _truncate_metrics(self, iterations: int) -> None:
        reports = self.metrics()
        kept = [r for r in reports if r.iteration < iterations]
        if len(kept) != len(reports):
            _atomic_text(self.path / self.METRICS, "".join(json.dumps(r.to_dict()) + "\n" for r in kept))
