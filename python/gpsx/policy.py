"""The neural-network policy π_θ(u | o) = N(μ^π(o), Σ^π) of guided policy search (seed §4, DESIGN §4).

μ^π is a multilayer perceptron in numpy (default: two hidden layers of 40 softplus units) acting on
*normalised* observations, whose output is de-normalised into actions:

    o_n = (o − obs_mean) / obs_std,   h_0 = o_n,   h_l = g(h_{l−1} W_l + b_l),   y = h_L W_out + b_out,
    μ^π(o) = act_mean + act_std ⊙ y.

Σ^π = diag(exp(2·log_std)) is state independent. The normalisation statistics are stored with the policy
(they are set by :func:`gpsx.policy_training.train_policy`, not learned). The policy sees observations o of
dimension dO (``dX``), which may be less than the full state; it is agnostic about what they are.

All parameters live in one flat vector (weights and bias of each layer in order, then log_std) so that
``get_params``/``set_params`` and the optimiser need no copies; the layer matrices are views into it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from . import _backend, _validate as v
from .errors import CheckpointError, GPSXError, ShapeError

__all__ = ["GaussianMLPPolicy", "ACTIVATIONS"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _softplus(z: np.ndarray, b: np.ndarray, a: np.ndarray, s: np.ndarray) -> None:
    """a = softplus(y) = log(1 + e^y) and s = its derivative σ(y) at y = z + b, by the kernel in force: ``gps_core``
    computes both in one vectorised pass (numpy's float64 exp and log are scalar on CPUs without AVX-512);
    the numpy twin is ``gpsx.reference.softplus``."""
    _backend.kernels().softplus(z, b, a, s)


def _tanh(z: np.ndarray, b: np.ndarray, a: np.ndarray, s: np.ndarray) -> None:
    np.add(z, b, out=a)
    np.tanh(a, out=a)
    np.multiply(a, a, out=s)
    np.subtract(1.0, s, out=s)


def _relu(z: np.ndarray, b: np.ndarray, a: np.ndarray, s: np.ndarray) -> None:
    np.add(z, b, out=a)
    np.greater(a, 0.0, out=s)
    np.maximum(a, 0.0, out=a)


#: name -> (z, b, a, s): a = g(z + b) and s = g'(z + b) for pre-activations z and the layer's bias b, written into
#: a and s; s is kept by the forward pass for backprop and the Jacobian.
ACTIVATIONS = {"softplus": _softplus, "tanh": _tanh, "relu": _relu}


class GaussianMLPPolicy:
    """Gaussian MLP policy with a state-independent diagonal covariance.

    ``GaussianMLPPolicy(dX, dU)`` draws the initial weights from ``seed`` (W ~ N(0, 1/fan_in), biases 0,
    log_std = log(init_std)); normalisation starts as the identity until the first training call.
    """

    def __init__(self, dX: int, dU: int, hidden_sizes: Sequence[int] = (40, 40), activation: str = "softplus",
                 init_std: float = 1.0, seed: int = 0):
        if int(dX) < 1 or int(dU) < 1 or any(int(h) < 1 for h in hidden_sizes):  # () = a linear policy
            raise ShapeError(f"needs dX, dU and hidden sizes >= 1, got dX={dX}, dU={dU}, hidden={hidden_sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        if not (np.isfinite(init_std) and init_std > 0.0):
            raise ValueError(f"init_std must be positive and finite, got {init_std}")
        self.dX, self.dU = int(dX), int(dU)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.activation = activation
        self._g = ACTIVATIONS[activation]
        sizes = (self.dX, *self.hidden_sizes, self.dU)
        self._shapes = list(zip(sizes[:-1], sizes[1:]))
        self.n_params = sum(a * b + b for a, b in self._shapes) + self.dU
        self._theta = np.zeros(self.n_params)
        self.weights: list[np.ndarray] = []  # views into _theta, (fan_in, fan_out)
        self.biases: list[np.ndarray] = []
        off = 0
        for a, b in self._shapes:
            self.weights.append(self._theta[off: off + a * b].reshape(a, b))
            off += a * b
            self.biases.append(self._theta[off: off + b])
            off += b
        self.log_std = self._theta[off:]
        self._weight_mask = np.zeros(self.n_params, dtype=bool)
        off = 0
        for a, b in self._shapes:
            self._weight_mask[off: off + a * b] = True
            off += a * b + b
        self.obs_mean, self.obs_std = np.zeros(self.dX), np.ones(self.dX)
        self.act_mean, self.act_std = np.zeros(self.dU), np.ones(self.dU)
        #: True once the normalisation has been set from data (a trained policy, or one loaded from a checkpoint).
        self.fitted = False
        self.initialize(seed, init_std)

    # ----------------------------------------------------------------------------------------- parameters
    def initialize(self, seed: int, init_std: float | None = None) -> None:
        """Redraw the weights from ``seed`` (W ~ N(0, 1/fan_in), biases 0); keep log_std unless given."""
        rng = np.random.default_rng(seed)
        for W, b in zip(self.weights, self.biases):
            W[...] = rng.standard_normal(W.shape) / np.sqrt(W.shape[0])
            b[...] = 0.0
        if init_std is not None:
            self.log_std[...] = np.log(init_std)
        self.fitted = False

    def get_params(self) -> np.ndarray:
        """All parameters as one flat vector (a copy): [W_0, b_0, ..., W_L, b_L, log_std]."""
        return self._theta.copy()

    def set_params(self, theta) -> None:
        """Set all parameters from a flat vector laid out as :meth:`get_params`."""
        self._theta[...] = v.array(theta, "theta", (self.n_params,), time_axis=False)

    def weight_mask(self) -> np.ndarray:
        """(n_params,) bool: True at the entries of the weight matrices (what weight decay acts on)."""
        return self._weight_mask.copy()

    # ----------------------------------------------------------------------------------------- normalisation
    def set_normalization(self, obs_mean: np.ndarray, obs_std: np.ndarray, act_mean: np.ndarray,
                          act_std: np.ndarray) -> None:
        """Replace the normalisation statistics; the weights are kept as they are (so μ^π changes with them).

        Not rescaling the first and last layers to keep μ^π is deliberate (:func:`gpsx.policy_training.train_policy`,
        warm starts): that rescaling multiplies the first layer by new/old input scale, which grows without bound on
        tasks whose first iterations barely move.
        """
        for name, std in (("obs_std", obs_std), ("act_std", act_std)):
            if not np.all(np.asarray(std) > 0):
                raise GPSXError("normalisation scales must be positive", array=name)
        self.obs_mean, self.obs_std = np.array(obs_mean, float), np.array(obs_std, float)
        self.act_mean, self.act_std = np.array(act_mean, float), np.array(act_std, float)
        self.fitted = True

    # ----------------------------------------------------------------------------------------- evaluation
    def layer_buffers(self, n: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per hidden layer, (pre-activation, activation, derivative) arrays for ``n`` inputs, each (n, width):
        what :meth:`_forward` writes into. The training loop allocates them once and reuses them in every
        objective evaluation (at 48 000 inputs, fresh 15 MB arrays per layer and evaluation made each one ~1.5×
        slower: glibc maps and unmaps blocks that large)."""
        return [tuple(np.empty((n, w)) for _ in range(3)) for w in self.hidden_sizes]

    def _forward(self, obs_n: np.ndarray, theta: np.ndarray | None = None, buffers=None):
        """Network output y (normalised action units) and the per-layer (activation, derivative) pairs.

        ``theta`` evaluates other parameters without touching the policy (used by the optimiser); ``buffers``
        (from :meth:`layer_buffers` for ``len(obs_n)`` inputs) are written into instead of allocating.
        """
        Ws, bs = (self.weights, self.biases) if theta is None else self.unpack(theta)[:2]
        if buffers is None:
            buffers = self.layer_buffers(len(obs_n))
        h, cache = obs_n, []
        for W, b, (z, a, s) in zip(Ws[:-1], bs[:-1], buffers):
            np.matmul(h, W, out=z)
            self._g(z, b, a, s)
            h = a
            cache.append((a, s))
        y = h @ Ws[-1]
        y += bs[-1]
        return y, cache

    def unpack(self, theta: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """Views (weights, biases, log_std) into a flat parameter vector laid out as :meth:`get_params`."""
        Ws, bs, off = [], [], 0
        for a, b in self._shapes:
            Ws.append(theta[off: off + a * b].reshape(a, b))
            off += a * b
            bs.append(theta[off: off + b])
            off += b
        return Ws, bs, theta[off:]

    def _obs(self, obs, name: str = "obs") -> np.ndarray:
        return v.array(obs, name, (None, self.dX), time_axis=False)

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        """(o − obs_mean) / obs_std for an already validated (N, dO) array."""
        return (obs - self.obs_mean) / self.obs_std

    def mean(self, obs) -> np.ndarray:
        """μ^π(o) for observations (N, dO) -> (N, dU)."""
        return self._mean(self._obs(obs))

    def _mean(self, obs: np.ndarray) -> np.ndarray:
        y, _ = self._forward(self.normalize_obs(obs))
        y *= self.act_std
        y += self.act_mean
        return y

    def std(self) -> np.ndarray:
        """(dU,) standard deviations of Σ^π."""
        return np.exp(self.log_std)

    def covariance(self) -> np.ndarray:
        """Σ^π (dU, dU), diagonal."""
        return np.diag(np.exp(2.0 * self.log_std))

    def act(self, x, t: int, noise) -> np.ndarray:
        """Sampler protocol: u = μ^π(x) + chol(Σ^π) ε for observations x (n, dO) and noise ε (n, dU); t unused."""
        x = self._obs(x, "x")
        noise = v.array(noise, "noise", (x.shape[0], self.dU), time_axis=False)
        u = self._mean(x)
        u += noise * self.std()
        return u

    def log_likelihood(self, obs, u) -> np.ndarray:
        """log N(u_i; μ^π(o_i), Σ^π) for observations (N, dO) and actions (N, dU) -> (N,)."""
        obs = self._obs(obs)
        u = v.array(u, "u", (obs.shape[0], self.dU), time_axis=False)
        z = (u - self._mean(obs)) / self.std()
        return -0.5 * np.einsum("nu,nu->n", z, z) - self.log_std.sum() - 0.5 * self.dU * _LOG_2PI

    def jacobian(self, obs, block: int = 1024) -> np.ndarray:
        """∂μ^π/∂o at each observation (N, dO) -> (N, dU, dO), by the chain rule through the layers.

        Works on ``block`` observations at a time to bound the (block, dO, width) intermediates.
        """
        obs = self._obs(obs)
        out = np.empty((obs.shape[0], self.dU, self.dX))
        first = self.weights[0] / self.obs_std[:, None]  # ∂(first pre-activation)/∂o, the same for all samples
        for lo in range(0, obs.shape[0], block):
            _, cache = self._forward(self.normalize_obs(obs[lo: lo + block]))
            J = first[None]  # ∂(next pre-activation)/∂o, (n, dO, width)
            for W, (_, dh) in zip(self.weights[1:], cache):
                J = J * dh[:, None, :]
                J = (J.reshape(-1, J.shape[-1]) @ W).reshape(J.shape[0], self.dX, -1)  # one GEMM per layer
            out[lo: lo + block] = np.swapaxes(J * self.act_std, 1, 2)
        return out

    # ----------------------------------------------------------------------------------------- checkpoints
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild the policy, as plain arrays (``np.savez`` without pickle)."""
        return {
            "dims": np.array([self.dX, self.dU], dtype=np.int64),
            "hidden_sizes": np.array(self.hidden_sizes, dtype=np.int64),
            "activation": np.array(self.activation),
            "theta": self.get_params(),
            "obs_mean": self.obs_mean.copy(), "obs_std": self.obs_std.copy(),
            "act_mean": self.act_mean.copy(), "act_std": self.act_std.copy(),
            "fitted": np.array(self.fitted),
        }

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> "GaussianMLPPolicy":
        """Rebuild a policy written by :meth:`to_arrays` (raises ``CheckpointError`` on missing keys)."""
        missing = {"dims", "hidden_sizes", "activation", "theta", "obs_mean", "obs_std", "act_mean", "act_std",
                   "fitted"} - set(d)
        if missing:
            raise CheckpointError(f"policy arrays miss {sorted(missing)}")
        dX, dU = (int(s) for s in np.asarray(d["dims"]))
        policy = cls(dX, dU, tuple(int(h) for h in np.asarray(d["hidden_sizes"])), str(d["activation"]))
        policy.set_params(d["theta"])
        stats = [v.array(d[k], k, (n,), time_axis=False)
                 for k, n in (("obs_mean", dX), ("obs_std", dX), ("act_mean", dU), ("act_std", dU))]
        policy.set_normalization(*stats)
        policy.fitted = bool(d["fitted"])
        return policy
