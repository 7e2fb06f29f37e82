"""Checkpoint files: plain arrays plus a JSON document in one ``.npz``, written atomically.

A checkpoint is an uncompressed NumPy ``.npz`` archive: named float/int arrays and one member ``__meta__``
holding UTF-8 JSON (format version, settings, counters). No pickles: ``np.load(..., allow_pickle=False)``
reads it. :func:`write` writes to a temporary file in the same folder, fsyncs and ``os.replace``-s it over
the target, so a reader sees either the old file or the complete new one. :func:`read` turns every way a
file can be missing, truncated or corrupted (the zip CRC of each member is checked) into
:class:`~gpsx.errors.CheckpointError`.

The GMM priors are stored through their own state API (``state_arrays`` / ``load_state``).
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError

__all__ = ["FORMAT", "write", "read", "atomic_open", "temporary_sibling"]

FORMAT = "gpsx-checkpoint/1"
_META = "__meta__"


def write(path: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write ``meta`` (JSON-ready) and ``arrays`` to ``path``; returns the path."""
    path = Path(path)
    if _META in arrays:
        raise ValueError(f"array name {_META!r} is reserved")
    blob = np.frombuffer(json.dumps({"format": FORMAT, **meta}).encode(), dtype=np.uint8)
    with atomic_open(path, "xb") as f:
        np.savez(f, **{_META: blob}, **arrays)
    return path


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "x"):
    """A file to write ``path`` through: a temporary sibling, fsynced and ``os.replace``-d over ``path`` when
    the block ends, removed if it raises; readers see the old file or the complete new one."""
    tmp = temporary_sibling(path)
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
