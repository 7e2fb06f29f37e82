"""Gaussian-mixture priors for the local linear-Gaussian fits (Levine & Abbeel 2014, section 3.1).

A prior pools joint vectors from the most recent trajectories — (x_t, u_t, x_{t+1}) for the dynamics,
(x_t, mean of pi(x_t)) for the policy — and fits a Gaussian mixture to them (scikit-learn's
``GaussianMixture`` from a cold start, ``gpsx.mixture.em`` from a warm one). For a new
batch of samples it returns, per time step, the mixture's mean and covariance under the average posterior
cluster weights of that step's vectors: the normal-inverse-Wishart prior of ``gpsx.dynamics``.

Cost control (the old code ran up to 100 cold EM iterations, 18-72 s per update on 800-step tasks):
- warm start from the previous fit (expressed in the new standardisation) whenever the cluster count is
  unchanged, with the batched EM of ``gpsx.mixture``; a cold start uses k-means;
- at most ``em_iterations`` EM iterations per update;
- EM runs on at most ``max_em_points`` vectors drawn at random (seeded) from the pool; consecutive time
  steps are strongly correlated, so a subsample loses little on smooth tasks (the cluster count is still
  set from the whole pool). Brief contacts are the exception: with 1000 of peg2d's 16 000 tuples its
  controllers solved fewer slots, so its recipe uses 8000 (docs/results.md, issue 6, session 12);
- the data are standardised per dimension before EM, so k-means, ``reg_covar`` and the moment arithmetic
  are scale-free.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from . import _validate as v
from .errors import CheckpointError, DynamicsFitError, NonFiniteError, ShapeError
from .mixture import Mixture, em

__all__ = ["DynamicsPrior", "PolicyPrior", "dynamics_tuples", "policy_pairs"]

# Added to the diagonal of every cluster covariance, in standardised units (scikit-learn's reg_covar).
_REG_COVAR = 1e-6


def _samples(value, name: str, shape) -> np.ndarray:
    """A float64 (N, T, d) sample array; a NaN/inf is reported with its sample index and time step."""
    arr = v.as_float_array(value, name)
    v.check_shape(arr, shape, name)
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ShapeError(f"needs at least one sample and one time step, got shape {arr.shape}", array=name)
    bad = ~np.isfinite(arr)
    if bad.any():
        n, t = np.argwhere(bad)[0][:2]
        raise NonFiniteError(f"sample {n} contains NaN or inf", array=name, t=int(t))
    return arr


def dynamics_tuples(X, U) -> np.ndarray:
    """Validate X (N,T,dX), U (N,T,dU); return the tuples [x_t, u_t, x_{t+1}] time-major, (T-1, N, 2dX+dU)."""
    X = _samples(X, "X", (None, None, None))
    N, T, _ = X.shape
    U = _samples(U, "U", (N, T, None))
    if T < 2:
        raise ShapeError(f"dynamics need T >= 2 time steps, got T={T}", array="X")
    X, U = X.transpose(1, 0, 2), U.transpose(1, 0, 2)
    return _time_major(X[:-1], U[:-1], X[1:])


def policy_pairs(X, policy_mean) -> np.ndarray:
    """Validate X (N,T,dX), policy_mean (N,T,dU); return the pairs [x_t, mu(x_t)] time-major, (T, N, dX+dU)."""
    X = _samples(X, "X", (None, None, None))
    N, T, _ = X.shape
    mean = _samples(policy_mean, "policy_mean", (N, T, None))
    return _time_major(X.transpose(1, 0, 2), mean.transpose(1, 0, 2))


def _is_transposed(factors: np.ndarray) -> bool:
    """Whether (K, D, D) ``factors`` is the transpose of a C-ordered array (as ``Mixture.from_covariances`` makes
    it), rather than C-ordered itself (as scikit-learn makes it)."""
    return not factors.flags.c_contiguous and factors.transpose(0, 2, 1).flags.c_contiguous


def _transposed_layout(factors: np.ndarray) -> np.ndarray:
    """The same values laid out as the transpose of a C-ordered array.

    A checkpoint stores arrays C-ordered; restoring the precision factors' original layout keeps a resumed
    run bit-identical: the mixture's einsum and matmul sum in a layout-dependent order, and the 1e-13
    differences otherwise grow into a different run (docs/results.md, issue 6, session 8)."""
    return np.ascontiguousarray(factors.transpose(0, 2, 1)).transpose(0, 2, 1)


def _time_major(*parts: np.ndarray) -> np.ndarray:
    """The (T, N, d_i) parts side by side in one C-contiguous (T, N, sum d_i) array (the fit kernel reads it
    in place; ``np.concatenate`` would keep the parts' transposed memory order)."""
    return np.concatenate(parts, axis=2, out=np.empty((*parts[0].shape[:2], sum(p.shape[2] for p in parts))))


class _MixturePrior:
    """Shared machinery: a sample buffer, a warm-started GMM, and per-step prior moments."""

    def __init__(
        self,
        max_clusters: int = 20,
        min_samples_per_cluster: int = 40,
        max_samples: int = 20,
        strength: float = 1.0,
        *,
        em_iterations: int = 3,
        max_em_points: int = 1000,
        random_state: int | np.random.Generator | None = None,
    ):
        for name, val, low in [("max_clusters", max_clusters, 2),
                               ("min_samples_per_cluster", min_samples_per_cluster, 1),
                               ("max_samples", max_samples, 1), ("em_iterations", em_iterations, 1),
                               ("max_em_points", max_em_points, max_clusters)]:
            if int(val) != val or val < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {val!r}")
        if not (np.isfinite(strength) and strength > 0):
            raise ValueError(f"strength must be a finite number > 0, got {strength!r}")
        self.max_clusters = int(max_clusters)
        self.min_samples_per_cluster = int(min_samples_per_cluster)
        self.max_samples = int(max_samples)
        self.strength = float(strength)
        self.em_iterations = int(em_iterations)
        self.max_em_points = int(max_em_points)
        self._rng = np.random.default_rng(random_state)
        self._buffer: list[np.ndarray] = []   # one (T', d) array per stored trajectory, oldest first
        self._mixture: Mixture | None = None
        self._center = self._scale = None     # standardisation of the last fit

    @property
    def num_samples(self) -> int:
        """How many trajectories the prior currently holds (at most ``max_samples``)."""
        return len(self._buffer)

    @property
    def num_clusters(self) -> int:
        """Clusters of the current mixture (0 before the first update)."""
        return 0 if self._mixture is None else len(self._mixture.weights)

    # --- state, for checkpoints (plain arrays, no pickles) ---------------------------------------------
    _MIXTURE_FIELDS = ("weights", "means", "covariances", "precisions_cholesky")

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The prior's state as arrays: remembered trajectories, mixture parameters, standardisation
        (an empty dict before the first update)."""
        if not self._buffer:
            return {}
        out = {"buffer": np.stack(self._buffer), "center": self._center, "scale": self._scale}
        out.update({name: getattr(self._mixture, name) for name in self._MIXTURE_FIELDS})
        out["precisions_transposed"] = np.array(_is_transposed(self._mixture.precisions_cholesky))
        return out

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_arrays` saved, into a prior built with the same settings.

        Raises ``CheckpointError`` if a member is missing or the arrays do not fit together."""
        if not arrays:
            return
        try:
            buffer, center, scale = arrays["buffer"], arrays["center"], arrays["scale"]
            mixture = Mixture(*(arrays[name] for name in self._MIXTURE_FIELDS))
        except KeyError as exc:
            raise CheckpointError(f"prior state lacks {exc.args[0]!r}") from exc
        K, d = len(mixture.weights), buffer.shape[-1]
        shapes = {"means": (K, d), "covariances": (K, d, d), "precisions_cholesky": (K, d, d)}
        if len(buffer) > self.max_samples or any(getattr(mixture, n).shape != s for n, s in shapes.items()):
            raise CheckpointError(f"prior state is inconsistent: {len(buffer)} trajectories "
                                  f"(max {self.max_samples}), {K} weights, means {mixture.means.shape}, "
                                  f"covariances {mixture.covariances.shape}")
        if bool(arrays.get("precisions_transposed", False)):
            mixture = Mixture(mixture.weights, mixture.means, mixture.covariances,
                              _transposed_layout(mixture.precisions_cholesky))
        self._buffer, self._mixture, self._center, self._scale = list(buffer), mixture, center, scale

    def reseed(self, seed) -> None:
        """Give EM (k-means initialisation, subsampling) a new generator, e.g. one derived from a run's seed."""
        self._rng = np.random.default_rng(seed)

    @property
    def dim(self) -> int | None:
        """Dimension of the joint vectors, fixed by the first update."""
        return self._buffer[0].shape[1] if self._buffer else None

    def _add(self, joint: np.ndarray) -> None:
        """Store the trajectories of ``joint`` (T', N, d), keep exactly the latest ``max_samples``, refit."""
        if self.dim is not None and joint.shape[2] != self.dim:
            raise ShapeError(f"joint dimension {joint.shape[2]} differs from the prior's {self.dim}")
        buffer = (self._buffer + list(joint.transpose(1, 0, 2)))[-self.max_samples:]
        pool = np.concatenate(buffer, axis=0)
        if pool.shape[0] < 2:
            raise DynamicsFitError(f"the prior needs at least 2 vectors, has {pool.shape[0]}")
        clusters = max(2, min(self.max_clusters, pool.shape[0] // self.min_samples_per_cluster))
        self._fit(pool, min(clusters, pool.shape[0]))
        self._buffer = buffer

    def _fit(self, pool: np.ndarray, clusters: int) -> None:
        """Standardise, subsample and run capped EM, warm-started when the cluster count is unchanged."""
        center = pool.mean(axis=0)
        std = pool.std(axis=0)
        scale = np.where(std > 1e-12 * (1.0 + np.abs(center)), std, 1.0)
        if pool.shape[0] > self.max_em_points:
            pool = pool[self._rng.choice(pool.shape[0], self.max_em_points, replace=False)]
        z = (pool - center) / scale
        if self.num_clusters == clusters:
            mixture = em(z, self._warm_start(center, scale), self.em_iterations, _REG_COVAR)
        else:
            gmm = GaussianMixture(clusters, covariance_type="full", reg_covar=_REG_COVAR,
                                  max_iter=self.em_iterations, random_state=int(self._rng.integers(2**31 - 1)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)   # iterations are capped on purpose
                gmm.fit(z)
            mixture = Mixture.from_sklearn(gmm)
        self._mixture, self._center, self._scale = mixture, center, scale

    def _warm_start(self, center: np.ndarray, scale: np.ndarray) -> Mixture:
        """The previous mixture in the standardised coordinates of ``center`` and ``scale``."""
        return self._mixture.rescaled((center - self._center) / self._scale, self._scale / scale)

    def moments(self, joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-step prior mean (T', d) and covariance (T', d, d) for a time-major batch ``joint`` (T', N, d).

        The weights of step t are the posterior cluster probabilities of its N vectors, averaged; the
        moments are those of the mixture under those weights (within- plus between-cluster spread).
        """
        mu, within, spread = self._moment_terms(joint)
        within += np.swapaxes(spread, 1, 2) @ spread
        return mu, within

    def _moment_terms(self, joint: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``moments`` in parts: mean (T', d), within-cluster covariance (T', d, d) and between-cluster
        rows (T', K, d) whose Gram matrix is the between-cluster covariance (kept apart so the fit can
        fold them into its own scatter product)."""
        if self._mixture is None:
            raise DynamicsFitError("the prior has not been updated yet; call prior.update(...) first")
        T, N, d = joint.shape
        if d != self.dim:
            raise ShapeError(f"joint dimension {d} differs from the prior's {self.dim}")
        z = (joint.reshape(T * N, d) - self._center) / self._scale
        weights = self._mixture.posterior(z).reshape(T, N, -1).mean(axis=1)           # (T, K)
        means, covs = self._mixture.means, self._mixture.covariances                   # standardised units
        mu = weights @ means                                                            # (T, d)
        covs = covs * np.outer(self._scale, self._scale)                                # data units
        within = (weights @ covs.reshape(len(means), d * d)).reshape(T, d, d)
        spread = np.sqrt(weights)[:, :, None] * (means[None] - mu[:, None]) * self._scale
        return self._center + mu * self._scale, within, spread


class DynamicsPrior(_MixturePrior):
    """GMM prior over (x_t, u_t, x_{t+1}) tuples of the most recent ``max_samples`` trajectories.

    Clusters: max(2, min(max_clusters, tuples / min_samples_per_cluster)). ``strength`` is the prior's
    weight in samples: the normal-inverse-Wishart pseudo-counts n0 = m = strength at every time step.
    ``em_iterations`` caps EM per update and ``max_em_points`` the vectors EM sees (the defaults, 3 and
    1000, keep update + fit under 0.5 s at the design's task sizes: benchmarks/bench_dynamics.py);
    ``random_state`` seeds k-means, the subsample and EM (reproducible runs).
    """

    def update(self, X, U) -> None:
        """Add trajectories X (N,T,dX), U (N,T,dU) and refit the mixture."""
        self._add(dynamics_tuples(X, U))


class PolicyPrior(_MixturePrior):
    """GMM prior over (x_t, mean of pi(x_t)) pairs, for the policy linearisation; same options as
    ``DynamicsPrior``."""

    def update(self, X, policy_mean) -> None:
        """Add states X (N,T,dX) and the policy's mean actions there, policy_mean (N,T,dU); refit."""
        self._add(policy_pairs(X, policy_mean))
