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

# Heavy parts (scikit-learn, MuJoCo, matplotlib) load on first use, so `import gpsx` stays fast.
_LAZY = {
    "DynamicsPrior": "dynamics",
    "PolicyPrior": "dynamics",
    "fit_dynamics": "dynamics",
    "fit_policy_linearization": "dynamics",
    "GaussianMLPPolicy": "policy",
    "train_policy": "policy_training",
    "PolicyTrainResult": "policy_training",
    "tasks": None,
    "GPS": "gps",
    "IterationReport": "gps",
    "GPSConfig": "config",
    "PriorConfig": "config",
    "GuidedConfig": "config",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'gpsx' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f".{_LAZY[name] or name}", __name__)
    value = module if _LAZY[name] is None else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


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
