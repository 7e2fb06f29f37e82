"""Full-covariance Gaussian mixtures for the GMM priors: parameters, posterior weights, and warm-started EM.

A prior refits its mixture every iteration, starting from the previous fit. scikit-learn's
``GaussianMixture`` does the cold start (k-means initialisation, then EM). The warm-started refit runs here:
the same EM updates as scikit-learn's, with the same ``reg_covar``, weight normalisation and tolerance test,
but batched over the clusters instead of looped in Python. ``GaussianMixture.fit`` also reruns k-means
before applying the warm-start values, and it runs one more E-step after the last iteration.
``benchmarks/bench_dynamics.py`` times both in one run: the refit is 2.9x faster at peg2d's size (20 clusters,
1000 points of dimension 14) and 1.1-2.3x at the larger sizes, the posterior weights of a batch 1.1-1.9x.
``tests/test_mixture.py`` holds both equal to scikit-learn.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.mixture import GaussianMixture

from .errors import DynamicsFitError

__all__ = ["Mixture", "em"]

_LOG_2PI = np.log(2.0 * np.pi)
_EPS10 = 10.0 * np.finfo(np.float64).eps   # scikit-learn's floor on a cluster's responsibility mass


@dataclass(frozen=True)
class Mixture:
    """Weights (K,), means (K, D), covariances (K, D, D), and precision factors (K, D, D) with
    precision_k = precisions_cholesky[k] @ precisions_cholesky[k].T (any such factor: a lower or an
    upper triangle, as scikit-learn stores it)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray

    @classmethod
    def from_covariances(cls, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> "Mixture":
        """The mixture with these parameters; its precision factors come from the covariances' Cholesky
        factors. Raises ``DynamicsFitError`` naming the cluster whose covariance is not positive definite."""
        try:
            chol = np.linalg.cholesky(covariances)
        except np.linalg.LinAlgError:
            for k, covariance in enumerate(covariances):
                try:
                    np.linalg.cholesky(covariance)
                except np.linalg.LinAlgError:
                    raise DynamicsFitError(f"mixture cluster {k} of {len(weights)} has a covariance that is not "
                                           f"positive definite (collapsed samples)", array="prior") from None
            raise
        return cls(weights, means, covariances, np.linalg.inv(chol).transpose(0, 2, 1))

    @classmethod
    def from_sklearn(cls, gmm: GaussianMixture) -> "Mixture":
        """The parameters of a fitted full-covariance ``GaussianMixture``."""
        return cls(gmm.weights_, gmm.means_, gmm.covariances_, gmm.precisions_cholesky_)

    @property
    def precisions(self) -> np.ndarray:
        """The clusters' precision matrices (K, D, D)."""
        return self.precisions_cholesky @ self.precisions_cholesky.transpose(0, 2, 1)

    def rescaled(self, shift: np.ndarray, ratio: np.ndarray) -> "Mixture":
        """The same density after the change of coordinates z_new = (z - shift) * ratio, per dimension."""
        return Mixture(self.weights, (self.means - shift) * ratio, self.covariances * np.outer(ratio, ratio),
                       self.precisions_cholesky / ratio[:, None])

    def _weighted_log_densities(self, z: np.ndarray) -> np.ndarray:
        """log(w_k N(z_n; mean_k, covariance_k)) of the rows of z (N, D), as (N, K)."""
        K, D = self.means.shape
        factors = self.precisions_cholesky
        whitened = (z @ factors.transpose(1, 0, 2).reshape(D, K * D)).reshape(len(z), K, D)
        whitened -= np.einsum("kd,kde->ke", self.means, factors)
        log_det = np.log(np.diagonal(factors, axis1=1, axis2=2)).sum(axis=1)
        return (np.log(self.weights) + log_det - 0.5 * D * _LOG_2PI) - 0.5 * np.einsum("nkd,nkd->nk", whitened,
                                                                                        whitened)

    def _shifted_log_densities(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_weighted_log_densities` minus their row maximum (N, K), and that maximum (N, 1): the
        stable form for normalising over the clusters."""
        weighted = self._weighted_log_densities(z)
        top = weighted.max(axis=1, keepdims=True)
        weighted -= top
        return weighted, top

    def log_responsibilities(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """The mean log-likelihood of the rows of z (N, D) and their log posterior cluster weights (N, K)."""
        shifted, top = self._shifted_log_densities(z)
        norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        shifted -= norm
        return float((top + norm).mean()), shifted

    def posterior(self, z: np.ndarray) -> np.ndarray:
        """The posterior cluster weights (N, K) of the rows of z (N, D)."""
        resp = np.exp(self._shifted_log_densities(z)[0])
        resp /= resp.sum(axis=1, keepdims=True)
        return resp


def _maximise(z: np.ndarray, log_resp: np.ndarray, reg_covar: float) -> Mixture:
    """The M-step: the mixture that maximises the expected log-likelihood under these responsibilities."""
    resp = np.exp(log_resp)
    mass = resp.sum(axis=0) + _EPS10
    means = (resp.T @ z) / mass[:, None]
    diff = z[None] - means[:, None]                                                  # (K, N, D)
    covariances = np.matmul((resp.T[:, :, None] * diff).transpose(0, 2, 1), diff) / mass[:, None, None]
    dims = np.arange(z.shape[1])
    covariances[:, dims, dims] += reg_covar
    weights = mass / len(z)
    return Mixture.from_covariances(weights / weights.sum(), means, covariances)


def em(z: np.ndarray, start: Mixture, iterations: int, reg_covar: float, tol: float = 1e-3) -> Mixture:
    """At most ``iterations`` EM iterations on the rows of z (N, D) from ``start``; stops early when the
    mean log-likelihood changes by less than ``tol`` (scikit-learn's test, with its default tolerance)."""
    mixture, lower = start, -np.inf
    for _ in range(iterations):
        previous = lower
        lower, log_resp = mixture.log_responsibilities(z)
        mixture = _maximise(z, log_resp, reg_covar)
        if abs(lower - previous) < tol:
            break
    return mixture
