"""The policy network's softplus (``gpsx.policy``), the twin of ``gpsx.reference.softplus``.

One vectorised pass over the pre-activations computes both the activation and its derivative, with the
layer's bias added on the way (src/activations.h: polynomial e^x and log(1 + e), numpy's float64 exp/log
are scalar libm calls on CPUs without AVX-512).
"""
from gps_core._common cimport OK, need

cdef extern from "activations.h" nogil:
    void act_softplus(long rows, long width, const double *z, const double *bias, double *out, double *slope)


def softplus(const double[:, ::1] z, const double[::1] bias, double[:, ::1] out, double[:, ::1] slope):
    """out = softplus(z + bias), slope = σ(z + bias), bias broadcast over rows. Returns the status (always 0:
    an elementwise map cannot fail; NaN in gives NaN out)."""
    cdef long rows = z.shape[0], width = z.shape[1]
    need("bias", 0, bias.shape[0], width)
    for name, arr in (("out", out), ("slope", slope)):
        need(name, 0, arr.shape[0], rows)
        need(name, 1, arr.shape[1], width)
    if rows == 0 or width == 0:
        return OK
    with nogil:
        act_softplus(rows, width, &z[0, 0], &bias[0], &out[0, 0], &slope[0, 0])
    return OK
