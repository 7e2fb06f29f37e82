"""Exceptions raised by gpsx.

Every error is a ``ValueError`` (``GPSXError``) so that callers who already catch bad input keep working;
linear-algebra failures are also ``numpy.linalg.LinAlgError``. Messages name the array, the time step and
what is wrong.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "GPSXError",
    "ShapeError",
    "DTypeError",
    "NonFiniteError",
    "NotSymmetricError",
    "NotPositiveDefiniteError",
    "DynamicsFitError",
    "CheckpointError",
    "RolloutDivergedError",
    "ConvergenceWarning",
]


class GPSXError(ValueError):
    """Base class of every gpsx error. ``array`` and ``t`` say where the problem is, when known."""

    def __init__(self, message: str, *, array: str | None = None, t: int | None = None):
        where = ""
        if array is not None:
            where = array if t is None else f"{array}[t={t}]"
            where += ": "
        super().__init__(where + message)
        self.array = array
        self.t = t


class ShapeError(GPSXError):
    """An array has the wrong number of dimensions or a size that disagrees with the others."""


class DTypeError(GPSXError):
    """An array's dtype cannot be converted to float64 without loss (complex, bool, object...)."""


class NonFiniteError(GPSXError):
    """An array contains NaN or infinity."""


class NotSymmetricError(GPSXError):
    """A matrix that must be symmetric is not (beyond round-off)."""


class NotPositiveDefiniteError(GPSXError, np.linalg.LinAlgError):
    """A covariance or the Q_uu block of the backward pass is not positive definite."""


class DynamicsFitError(GPSXError):
    """The local dynamics (or policy) fit cannot be made from the given samples."""


class CheckpointError(GPSXError):
    """A run folder or checkpoint is missing, truncated or inconsistent."""


class RolloutDivergedError(GPSXError):
    """The simulator diverged (MuJoCo warnings or non-finite states) during a rollout."""


class ConvergenceWarning(UserWarning):
    """An iterative solve (forward/backward sweeps, η search) stopped at its cap before its tolerance."""
