from gps_core._workspace cimport Workspace

cdef int forward_impl(Workspace ws, int T, const double *F, const double *f, const double *N,
                      const double *x0, const double *S0, const double *K, const double *k,
                      const double *C, double *mean, double *cov) noexcept nogil
