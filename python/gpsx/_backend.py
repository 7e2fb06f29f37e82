"""Which kernels run: the compiled ``gps_core`` or the numpy twin ``gpsx.reference``.

``GPSX_BACKEND`` = ``compiled`` | ``numpy`` | ``auto`` (default: compiled when importable). ``use()``
switches temporarily, e.g. to benchmark the twin against the core in one process.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from types import ModuleType

_NAMES = ("compiled", "numpy", "auto")
_active: str | None = None


def _load(name: str) -> ModuleType:
    if name == "numpy":
        return importlib.import_module("gpsx.reference")
    try:
        return importlib.import_module("gps_core")
    except ImportError as exc:
        if name == "compiled":
            raise ImportError(f"GPSX_BACKEND=compiled but the compiled core is unavailable: {exc}") from exc
        warnings.warn(f"gpsx: compiled core unavailable ({exc}); using the numpy reference (slow)", stacklevel=3)
        return importlib.import_module("gpsx.reference")


def name() -> str:
    """The requested backend name."""
    chosen = _active or os.environ.get("GPSX_BACKEND", "auto").lower()
    if chosen not in _NAMES:
        raise ValueError(f"GPSX_BACKEND must be one of {_NAMES}, got {chosen!r}")
    return chosen


def kernels() -> ModuleType:
    """The kernel module in force: ``gps_core`` or ``gpsx.reference`` (same functions, same signatures)."""
    return _load(name())


@contextlib.contextmanager
def use(backend: str):
    """Run a block with ``backend`` ('compiled', 'numpy' or 'auto') in force."""
    global _active
    if backend not in _NAMES:
        raise ValueError(f"backend must be one of {_NAMES}, got {backend!r}")
    previous, _active = _active, backend
    try:
        yield
    finally:
        _active = previous
