"""gpsx.mixture against scikit-learn's GaussianMixture: the warm-started EM and the posterior weights."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from gpsx.errors import DynamicsFitError
from gpsx.mixture import Mixture, em


def _clustered(rng, K, N, D):
    centres = 3.0 * rng.standard_normal((K, D))
    shapes = rng.standard_normal((K, D, D)) * 0.5
    labels = rng.integers(K, size=N)
    return centres[labels] + np.einsum("nde,ne->nd", shapes[labels], rng.standard_normal((N, D)))


def _sklearn_fit(z, K, iterations, init=None, seed=0):
    kwargs = {} if init is None else {"weights_init": init.weights, "means_init": init.means,
                                      "precisions_init": init.precisions}
    gmm = GaussianMixture(K, covariance_type="full", reg_covar=1e-6, max_iter=iterations, random_state=seed,
                          **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gmm.fit(z)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), K=st.integers(2, 6), D=st.integers(1, 6), iterations=st.integers(1, 6))
def test_warm_started_em_matches_scikit_learn(seed, K, D, iterations):
    rng = np.random.default_rng(seed)
    z = _clustered(rng, K, 60 * K, D)
    start = Mixture.from_sklearn(_sklearn_fit(z[::2], K, 2, seed=seed))      # a start fitted to other data
    reference = _sklearn_fit(z, K, iterations, init=start)
    ours = em(z, start, iterations, reg_covar=1e-6)
    np.testing.assert_allclose(ours.weights, reference.weights_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.means, reference.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.covariances, reference.covariances_, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(ours.precisions, reference.precisions_, rtol=1e-7, atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), K=st.integers(1, 8), D=st.integers(1, 8))
def test_posterior_and_likelihood_match_scikit_learn(seed, K, D):
    rng = np.random.default_rng(seed)
    z = _clustered(rng, max(K, 2), 40 * K, D)
    gmm = _sklearn_fit(z, K, 3, seed=seed)
    mean_log_likelihood, log_resp = Mixture.from_sklearn(gmm).log_responsibilities(z)
    np.testing.assert_allclose(np.exp(log_resp), gmm.predict_proba(z), atol=1e-10)
    np.testing.assert_allclose(mean_log_likelihood, gmm.score(z), rtol=1e-12, atol=1e-10)


def test_rescaled_mixture_is_the_same_density_in_new_coordinates():
    rng = np.random.default_rng(1)
    z = _clustered(rng, 3, 200, 4)
    mix = Mixture.from_sklearn(_sklearn_fit(z, 3, 5))
    shift, ratio = rng.standard_normal(4), np.exp(rng.standard_normal(4))
    moved = mix.rescaled(shift, ratio)
    ll_old, resp_old = mix.log_responsibilities(z)
    ll_new, resp_new = moved.log_responsibilities((z - shift) * ratio)
    np.testing.assert_allclose(resp_new, resp_old, atol=1e-12)
    np.testing.assert_allclose(ll_new - ll_old, -np.log(ratio).sum(), atol=1e-10)   # density of z_new


def test_collapsed_cluster_is_a_dynamics_fit_error_naming_it():
    covariances = np.stack([np.eye(2), np.zeros((2, 2))])
    with pytest.raises(DynamicsFitError, match="cluster 1 of 2"):
        Mixture.from_covariances(np.full(2, 0.5), np.zeros((2, 2)), covariances)
