"""Workspace: every scratch buffer the kernels need, carved out of one allocation made up front."""
import numpy as np

from gps_core._linalg cimport syev_lwork

# Below this many multiply-adds an operation runs in plain C (src/dense.h), at or above it in BLAS.
DEFAULT_BLAS_MIN = 300000


cdef class Workspace:
    """Scratch space for problems of horizon up to ``T`` with state size ``dX`` and action size ``dU``.

    ``blas_min`` (multiply-adds) chooses between the C loops and BLAS/LAPACK for each operation; tests set
    it to 0 or to a huge value to exercise each path alone.
    """

    def __init__(self, int T, int dX, int dU, long blas_min=DEFAULT_BLAS_MIN):
        if T < 1 or dX < 1 or dU < 1:
            raise ValueError(f"Workspace needs T, dX, dU >= 1, got {T}, {dX}, {dU}")
        self.T, self.dX, self.dU, self.n = T, dX, dU, dX + dU
        self.blas_min = blas_min
        self.lwork = syev_lwork(dU)
        cdef long n = self.n, x = dX, u = dU
        sizes = [
            ("V", x * x), ("v", x), ("tmpx", x), ("Qzz", n * n), ("qz", n), ("G", x * n), ("Ht", n * x),
            ("Luu", u * u), ("Y", u * x), ("y", u), ("Linv", u * u),
            ("W", u * u), ("Lt", u * u), ("Lc", u * u), ("R", u * x), ("r", u), ("D", u * x),
            ("DS", u * x), ("d", u), ("M", u * u), ("B", u * u), ("T1", u * u), ("evals", u),
            ("Cnew", u * u), ("Ccur", u * u), ("Kcur", u * x), ("kcur", u), ("work", self.lwork),
            ("mean", T * n), ("cov", T * n * n), ("La", u * u), ("Lb", u * u), ("H", u * u), ("e", u),
        ]
        offsets = {}
        cdef long total = 0
        for name, size in sizes:
            offsets[name] = total
            total += size
        self._buf = np.zeros(total)
        cdef double[::1] buf = self._buf
        cdef double *base = &buf[0]
        self.V = base + <long>offsets["V"]; self.v = base + <long>offsets["v"]; self.tmpx = base + <long>offsets["tmpx"]
        self.Qzz = base + <long>offsets["Qzz"]; self.qz = base + <long>offsets["qz"]; self.G = base + <long>offsets["G"]; self.Ht = base + <long>offsets["Ht"]
        self.Luu = base + <long>offsets["Luu"]; self.Y = base + <long>offsets["Y"]; self.y = base + <long>offsets["y"]
        self.Linv = base + <long>offsets["Linv"]; self.W = base + <long>offsets["W"]; self.Lt = base + <long>offsets["Lt"]
        self.Lc = base + <long>offsets["Lc"]; self.R = base + <long>offsets["R"]; self.r = base + <long>offsets["r"]
        self.D = base + <long>offsets["D"]; self.DS = base + <long>offsets["DS"]; self.d = base + <long>offsets["d"]
        self.M = base + <long>offsets["M"]; self.B = base + <long>offsets["B"]; self.T1 = base + <long>offsets["T1"]
        self.evals = base + <long>offsets["evals"]; self.Cnew = base + <long>offsets["Cnew"]
        self.Ccur = base + <long>offsets["Ccur"]; self.Kcur = base + <long>offsets["Kcur"]
        self.kcur = base + <long>offsets["kcur"]; self.work = base + <long>offsets["work"]
        self.mean = base + <long>offsets["mean"]; self.cov = base + <long>offsets["cov"]
        self.La = base + <long>offsets["La"]; self.Lb = base + <long>offsets["Lb"]; self.H = base + <long>offsets["H"]
        self.e = base + <long>offsets["e"]

    def __reduce__(self):
        return (Workspace, (self.T, self.dX, self.dU, self.blas_min))

    def __repr__(self):
        return f"Workspace(T={self.T}, dX={self.dX}, dU={self.dU}, blas_min={self.blas_min})"

    cdef int check(self, int T, int dX, int dU) except -1:
        """Refuse a problem this workspace was not sized for (the kernels index without bounds checks)."""
        if dX != self.dX or dU != self.dU or T > self.T or T < 1:
            raise ValueError(
                f"{self!r} does not fit a problem with T={T}, dX={dX}, dU={dU}")
        return 0
