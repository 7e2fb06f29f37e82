"""Checkpoint files: plain arrays plus a JSON document in one ``.npz``, written atomically.

A checkpoint is an uncompressed NumPy ``.npz`` archive: named float/int arrays and one member ``__meta__``
holding UTF-8 JSON (format version, settings, counters). No pickles: ``np.load(..., allow_pickle=False)``
reads it. :func:`write` writes to a temporary file in the same folder, fsyncs and ``os.replace``-s it over
the target, so a reader sees either the old file or the complete new one. :func:`read` turns every way a
file can be missing, truncated or corrupted (the zip CRC of each member is checked) into
:class:`~gpsx.errors.CheckpointError`.

The GMM dynamics prior is stored by its state (:func:`prior_arrays`, :func:`restore_prior`): the remembered
trajectories, the mixture's weights, means, covariances and precisions, and the standardisation. These three
functions are the only code outside :mod:`gpsx.gmm_prior` that touches the prior's private attributes; they
belong there as a public state API once it has one.
"""
from __future__ import annotations

import json
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.mixture import GaussianMixture

from .errors import CheckpointError
from .gmm_prior import DynamicsPrior

__all__ = ["FORMAT", "write", "read", "temporary_sibling", "prior_arrays", "restore_prior", "reseed_prior"]

FORMAT = "gpsx-checkpoint/1"
_META = "__meta__"


def write(path: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write ``meta`` (JSON-ready) and ``arrays`` to ``path``; returns the path."""
    path = Path(path)
    if _META in arrays:
        raise ValueError(f"array name {_META!r} is reserved")
    blob = np.frombuffer(json.dumps({"format": FORMAT, **meta}).encode(), dtype=np.uint8)
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "xb") as f:
            np.savez(f, **{_META: blob}, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden name next to ``path`` (same file system, so ``os.replace`` is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) of a checkpoint; :class:`CheckpointError` if it is missing, truncated or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}   # reads every member: checks each CRC
        meta = json.loads(arrays.pop(_META).tobytes().decode())
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint (format {meta.get('format')!r})"
                              if isinstance(meta, dict) else f"{path}: malformed metadata")
    return meta, arrays


# --- the dynamics prior ------------------------------------------------------------------------------------
_GMM_FIELDS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


def prior_arrays(prior: DynamicsPrior) -> dict[str, np.ndarray]:
    """The state of a prior as arrays (empty dict before its first update)."""
    if prior.num_samples == 0:
        return {}
    out = {"buffer": np.stack(prior._buffer), "center": prior._center, "scale": prior._scale}
    out.update({name.rstrip("_"): getattr(prior._gmm, name) for name in _GMM_FIELDS})
    return out


def restore_prior(prior: DynamicsPrior, arrays: dict[str, np.ndarray]) -> DynamicsPrior:
    """Put the state saved by :func:`prior_arrays` into a freshly built ``prior`` (same settings); returns it."""
    if not arrays:
        return prior
    try:
        buffer = arrays["buffer"]
        weights = arrays["weights"]
        gmm = GaussianMixture(len(weights), covariance_type="full")
        for name in _GMM_FIELDS:
            setattr(gmm, name, arrays[name.rstrip("_")])
        gmm.n_features_in_ = buffer.shape[-1]
        prior._buffer = list(buffer)
        prior._gmm, prior._center, prior._scale = gmm, arrays["center"], arrays["scale"]
    except KeyError as exc:
        raise CheckpointError(f"dynamics prior state lacks {exc.args[0]!r}") from exc
    if len(buffer) > prior.max_samples or gmm.means_.shape != (len(weights), buffer.shape[-1]):
        raise CheckpointError(f"dynamics prior state is inconsistent: {len(buffer)} trajectories "
                              f"(max {prior.max_samples}), means {gmm.means_.shape}, {len(weights)} weights")
    return prior


def reseed_prior(prior: DynamicsPrior, seed: np.random.SeedSequence) -> None:
    """Give the prior's EM (k-means init, subsampling) a generator derived from the run's seed."""
    prior._rng = np.random.default_rng(seed)
