"""The kernels' dispatch paths under test, shared by the twin tests of gps_core.

``blas_min`` = 0 sends every operation through BLAS/LAPACK, a huge value every operation through the C
loops of src/dense.h, and None keeps the default split.
"""
PATHS = {"blas": 0, "c": 10**15, "default": None}


def on_path(make, *sizes, path: str):
    """``make(*sizes)`` (a Workspace or FitWorkspace class) with the ``blas_min`` of ``path``."""
    blas_min = PATHS[path]
    return make(*sizes) if blas_min is None else make(*sizes, blas_min=blas_min)
