"""The policy's softplus kernel (``softplus``: activation and derivative with the bias added) against its numpy twin
and against an independent formula, on random and extreme inputs."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import expit

from gpsx import reference


def run(kern, z, b):
    out, slope = np.full_like(z, np.nan), np.full_like(z, np.nan)
    assert kern.softplus(z, b, out, slope) == 0
    return out, slope


def assert_close_to_twin(compiled, z, b):
    got, want = run(compiled, z, b), run(reference, z, b)
    y = z + b
    # the twin is exact to ~1e-16 absolute (and to an ulp of y where softplus(y) ≈ y)
    tol = 2e-15 * np.maximum(1.0, np.abs(y))
    finite = np.isfinite(y)
    assert np.all(np.abs(got[0] - want[0])[finite] <= tol[finite])
    assert np.all(np.abs(got[1] - want[1])[finite] <= 4.5e-16)
    np.testing.assert_array_equal(got[0][~finite], want[0][~finite])
    np.testing.assert_array_equal(got[1][~finite], want[1][~finite])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 50), width=st.integers(1, 45), scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**31))
def test_softplus_equals_twin(compiled, rows, width, scale, seed):
    rng = np.random.default_rng(seed)
    assert_close_to_twin(compiled, rng.standard_normal((rows, width)) * scale, rng.standard_normal(width) * scale)


def test_softplus_is_accurate_in_relative_terms(compiled):
    """Against log(1 + e^y) = logaddexp(0, y) and σ(y) = expit(y), to a few ulp *relative*, down to tiny values
    (where the twin is only accurate in absolute terms)."""
    y = np.concatenate([np.linspace(-700, 700, 20001), np.random.default_rng(0).standard_normal(5000) * 4])
    out, slope = run(compiled, y[:, None], np.zeros(1))
    np.testing.assert_allclose(out[:, 0], np.logaddexp(0.0, y), rtol=4e-16 * 8, atol=0)
    np.testing.assert_allclose(slope[:, 0], expit(y), rtol=4e-16 * 8, atol=0)


def test_softplus_extremes(compiled):
    y = np.array([[-np.inf, -1e308, -746.0, -709.0, -708.0, -0.0, 0.0, 5e-324, 36.7, 710.0, 1e308, np.inf, np.nan]])
    out, slope = run(compiled, y, np.zeros(y.shape[1]))
    assert np.array_equal(out[0, :3], [0.0, 0.0, 0.0]) and np.array_equal(slope[0, :3], [0.0, 0.0, 0.0])
    assert 0 <= out[0, 3] < 1e-307 and 0 <= out[0, 4] < 1e-306         # e^y, at or below the normal range
    np.testing.assert_allclose(out[0, 5:8], np.log(2.0), rtol=4e-16)
    np.testing.assert_allclose(slope[0, 5:8], 0.5, rtol=4e-16)
    np.testing.assert_allclose([out[0, 8], slope[0, 8]], [np.logaddexp(0.0, 36.7), expit(36.7)], rtol=3e-16)
    assert np.array_equal(out[0, 9:12], [710.0, 1e308, np.inf]) and np.array_equal(slope[0, 9:12], [1.0, 1.0, 1.0])
    assert np.isnan(out[0, 12]) and np.isnan(slope[0, 12])
    assert_close_to_twin(compiled, y, np.zeros(y.shape[1]))


@pytest.mark.parametrize("bias,out_shape", [((4,), (2, 5)), ((5,), (3, 5)), ((5,), (2, 4))])
def test_softplus_refuses_mismatched_arrays(compiled, bias, out_shape):
    z = np.zeros((2, 5))
    with pytest.raises(ValueError, match="axis"):
        compiled.softplus(z, np.zeros(bias), np.zeros(out_shape), np.zeros((2, 5)))
