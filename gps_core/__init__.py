"""gpsx's compiled kernels (private; use the ``gpsx`` API). Twins of ``gpsx.reference``, same signatures."""
from gps_core._workspace import DEFAULT_BLAS_MIN, Workspace
from gps_core._marginals import conditional_kl, expected_cost, forward
from gps_core._lqr import INNER_MAX_ITERATIONS, backward, backward_gps, relative_coordinates
from gps_core._conditional import FitWorkspace, conditional_fit
from gps_core._activations import softplus

OK, NOT_PD, NOT_CONVERGED, NON_FINITE = 0, 1, 2, 3

__all__ = ["Workspace", "DEFAULT_BLAS_MIN", "forward", "conditional_kl", "expected_cost", "backward",
           "backward_gps", "relative_coordinates", "INNER_MAX_ITERATIONS", "FitWorkspace", "conditional_fit",
           "softplus", "OK", "NOT_PD", "NOT_CONVERGED", "NON_FINITE"]
