# Status codes shared with gpsx.reference, and the dimension checks run before a kernel drops the GIL:
# the kernels index without bounds checks, so a direct call with mismatched arrays is refused here.
cdef enum:
    OK = 0
    NOT_PD = 1
    NOT_CONVERGED = 2
    NON_FINITE = 3


cdef inline int need(str name, int axis, Py_ssize_t got, Py_ssize_t want) except -1:
    if got != want:
        raise ValueError(f"{name}: axis {axis} has size {got}, expected {want}")
    return 0
