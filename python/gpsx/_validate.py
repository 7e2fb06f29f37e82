"""Boundary checks shared by the containers and the public functions.

The compiled kernels trust their inputs; everything they receive passes through here first: float64,
C-contiguous, the expected shape, finite, and (for covariances) symmetric and positive (semi)definite.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import DTypeError, NonFiniteError, NotPositiveDefiniteError, NotSymmetricError, ShapeError

SYMMETRY_RTOL = 1e-8


def as_float_array(value, name: str) -> np.ndarray:
    """Return ``value`` as a C-contiguous float64 array (lossless conversions only)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise DTypeError(f"dtype {arr.dtype} is not a real number type", array=name)
    return np.ascontiguousarray(arr, dtype=np.float64)


def check_shape(arr: np.ndarray, shape: Sequence[int | None], name: str) -> None:
    """Raise ``ShapeError`` unless ``arr.shape`` matches ``shape`` (``None`` = any size)."""
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise ShapeError(f"expected shape {want}, got {arr.shape}", array=name)


def check_finite(arr: np.ndarray, name: str, time_axis: bool = True) -> None:
    """Raise ``NonFiniteError`` naming the first time step (axis 0) that holds NaN or inf."""
    if np.isfinite(arr).all():
        return
    if time_axis and arr.ndim >= 2:
        bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
        raise NonFiniteError("contains NaN or inf", array=name, t=int(np.argmax(bad)))
    raise NonFiniteError("contains NaN or inf", array=name)


def array(value, name: str, shape: Sequence[int | None], time_axis: bool = True) -> np.ndarray:
    """Convert, check the shape and check finiteness in one call."""
    arr = as_float_array(value, name)
    check_shape(arr, shape, name)
    check_finite(arr, name, time_axis)
    return arr


def symmetrize(mats: np.ndarray, name: str, time_axis: bool = True) -> np.ndarray:
    """Check a stack of square matrices is symmetric up to round-off and return the exact symmetric part."""
    stack = mats if time_axis else mats[None]
    if stack.size:
        asym = np.abs(stack - np.swapaxes(stack, -1, -2)).max(axis=(-1, -2))
        scale = np.maximum(np.abs(stack).max(axis=(-1, -2)), 1e-300)
        bad = asym > SYMMETRY_RTOL * scale + 1e-300
        if bad.any():
            t = int(np.argmax(bad))
            raise NotSymmetricError(
                f"not symmetric (max |A - A^T| = {asym[t]:.3g})", array=name, t=t if time_axis else None
            )
    return np.ascontiguousarray(0.5 * (mats + np.swapaxes(mats, -1, -2)))


def check_positive_definite(mats: np.ndarray, name: str, time_axis: bool = True, semi: bool = False) -> None:
    """Raise ``NotPositiveDefiniteError`` naming the first time step whose matrix is not PD (or PSD).

    "PD" means numerically invertible too: the Cholesky factor must exist and its diagonal must not span
    more than ~15 orders of magnitude in squared ratio (a condition-number estimate of 1e15).
    """
    stack = mats if time_axis else mats[None]
    if stack.size == 0:
        return
    scale = np.abs(stack).max(axis=(-1, -2), keepdims=True)
    scaled = stack / np.where(scale > 0, scale, 1.0)        # eigen-analysis without overflow
    try:      # the cheap sufficient test: a Cholesky factor (well conditioned, unless semi) exists
        diag = np.diagonal(np.linalg.cholesky(scaled), axis1=-2, axis2=-1)
        if semi or not (diag.min(axis=-1) ** 2 <= 1e-15 * diag.max(axis=-1) ** 2).any():
            return
    except np.linalg.LinAlgError:
        pass
    eig = np.linalg.eigvalsh(scaled)
    top = np.maximum(np.abs(eig).max(axis=-1), 1e-300)
    if semi:
        bad = eig[:, 0] < -1e-10 * top
    else:
        bad = eig[:, 0] <= 1e-15 * top
    if bad.any():
        t = int(np.argmax(bad))
        kind = "positive semidefinite" if semi else "positive definite"
        smallest = eig[t, 0] * scale.reshape(-1)[t]
        raise NotPositiveDefiniteError(
            f"not {kind} (smallest eigenvalue {smallest:.3g}, largest {top[t] * scale.reshape(-1)[t]:.3g})",
            array=name, t=t if time_axis else None)


def covariance(value, name: str, shape: Sequence[int | None], time_axis: bool = True, semi: bool = False):
    """A symmetric, positive (semi)definite stack of covariances, converted and checked."""
    arr = symmetrize(array(value, name, shape, time_axis), name, time_axis)
    check_positive_definite(arr, name, time_axis, semi)
    return arr
