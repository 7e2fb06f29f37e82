"""gpsx: Guided Policy Search under unknown dynamics (Levine & Abbeel, NIPS 2014) with a compiled DP core."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

from .containers import LinearGaussianController, LinearGaussianDynamics, Marginals, QuadraticCost
from .errors import (
    CheckpointError,
    DTypeError,
    DynamicsFitError,
    GPSXError,
    NonFiniteError,
    NotPositiveDefiniteError,
    NotSymmetricError,
    RolloutDivergedError,
    ShapeError,
)

try:
    __version__ = _version("gpsx")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"
from .errors import ConvergenceWarning
from .lqr import (
    TrajOptResult,
    backward,
    expected_cost,
    forward,
    gps_objective,
    optimize_trajectory,
    policy_kl,
    trajectory_kl,
)
