"""Benchmark the local-model fits against targets and against a straightforward per-time-step loop.

    python benchmarks/bench_dynamics.py [--repeats R] [--sizes pr2 ...] [--json out.json]

Single-threaded (BLAS threads pinned to 1 unless set). Data: random stable linear systems rolled out under
a random linear-Gaussian controller, fixed seeds. Columns:
- cold / warm: seconds for ``prior.update`` + ``fit_dynamics`` with N = 5. cold = an empty prior (GPS's
  first iteration); warm = a prior already holding 15 earlier samples (the steady state: 20 stored,
  warm-started EM). Target < 0.5 s.
- prior fit: ``fit_dynamics(X, U, prior)`` alone (N = 5, warm prior) against ``baseline_arrays`` with
  the same prior: per step, that step's posterior weights, mixture moments, MAP covariance, conditioning.
- refit / weights: the prior's warm-started EM refit (3 iterations on its 1000-point subsample) with
  ``gpsx.mixture.em`` against scikit-learn's ``GaussianMixture.fit`` from the same start (what the
  prior ran before), and the per-step posterior weights of a batch (N = 5) with ``Mixture.posterior`` against
  ``GaussianMixture.predict_proba``.
- prior-free: ``fit_dynamics(X, U)`` at N = 2 (dX + dU) against ``baseline_arrays`` without a prior;
  "core" = arrays out (gpsx's internal ``_fit_conditional`` incl. its checks), "full" = a validated
  ``LinearGaussianDynamics`` out on both sides. Target >= 10x.
Ratios are loop time / gpsx time, medians of interleaved repeats in one run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")   # single-threaded, set before numpy loads BLAS

import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from gpsx.containers import LinearGaussianDynamics  # noqa: E402
from gpsx.dynamics import DynamicsPrior, _fit_conditional, fit_dynamics  # noqa: E402
from gpsx.gmm_prior import dynamics_tuples  # noqa: E402
from gpsx.mixture import Mixture, em  # noqa: E402

SIZES = {  # name: (T, dX, dU)
    "pr2": (100, 26, 7),
    "swimmer": (400, 10, 2),
    "walker": (500, 18, 6),
    "peg3d": (800, 12, 6),
    "octopus": (200, 50, 24),
    "peg2d": (800, 6, 2),   # not a DESIGN §6 size: the task whose own work DESIGN §6 bounds
}
PRIOR_TARGET_S = 0.5
SPEEDUP_TARGET = 10.0


def random_system(T: int, dX: int, dU: int, seed: int):
    """A slowly time-varying stable system x' = A_t x + B_t u + c_t + noise and a random controller
    u = K x + k_t (+ noise) whose closed loop stays stable (K is halved until it is, or is within 0.01 of
    open loop)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((dX, dX)))
    A0 = Q @ np.diag(rng.uniform(0.7, 0.95, dX)) @ Q.T
    drift = 0.05 * rng.standard_normal((dX, dX)) / np.sqrt(dX)
    phase = np.sin(np.linspace(0, np.pi, T - 1))[:, None, None]
    A = A0 + phase * drift
    B = np.broadcast_to(0.3 * rng.standard_normal((dX, dU)), (T - 1, dX, dU))
    c = 0.01 * rng.standard_normal((T - 1, dX))
    K = 0.1 * rng.standard_normal((dU, dX)) / np.sqrt(dX)
    radius = lambda M: np.abs(np.linalg.eigvals(M)).max()  # noqa: E731
    while radius(A + B @ K) > max(0.97, radius(A) + 0.01):
        K = 0.5 * K
    k = rng.standard_normal((T, dU))
    return A, B, c, K, k


def rollout(system, N: int, seed: int, noise: float = 0.05, action_noise: float = 1.0):
    """N trajectories X (N,T,dX), U (N,T,dU) under u = K x + k_t + exploration noise."""
    A, B, c, K, k = system
    rng = np.random.default_rng(seed)
    T, dX, dU = A.shape[0] + 1, A.shape[1], B.shape[2]
    X, U = np.empty((N, T, dX)), np.empty((N, T, dU))
    X[:, 0] = 0.1 * rng.standard_normal((N, dX))
    for t in range(T):
        U[:, t] = X[:, t] @ K.T + k[t] + action_noise * rng.standard_normal((N, dU))
        if t + 1 < T:
            X[:, t + 1] = X[:, t] @ A[t].T + U[:, t] @ B[t].T + c[t] + noise * rng.standard_normal((N, dX))
    return X, U


def baseline_arrays(X, U, prior: DynamicsPrior | None = None, ridge: float = 1e-6):
    """The straightforward fit, one time step at a time (the old code's shape); returns the five arrays of
    ``LinearGaussianDynamics``. With a prior, each step queries the mixture for its own tuples."""
    N, T, dX = X.shape
    n_in = dX + U.shape[2]
    F, f, cov = np.empty((T - 1, dX, n_in)), np.empty((T - 1, dX)), np.empty((T - 1, dX, dX))
    for t in range(T - 1):
        Z = np.hstack([X[:, t], U[:, t], X[:, t + 1]])
        mu = Z.mean(axis=0)
        D = Z - mu
        sigma = D.T @ D / N
        if prior is not None:
            mu0, sigma0 = mixture_moments(prior, Z)
            m = prior.strength
            sigma = (m * sigma0 + N * sigma + (N * m / (N + m)) * np.outer(mu - mu0, mu - mu0)) / (N + m)
        sigma[:n_in, :n_in] += ridge * np.eye(n_in)
        G = np.linalg.solve(sigma[:n_in, :n_in], sigma[:n_in, n_in:]).T
        F[t] = G
        f[t] = mu[n_in:] - G @ mu[:n_in]
        S = sigma[n_in:, n_in:] - G @ sigma[:n_in, :n_in] @ G.T
        cov[t] = 0.5 * (S + S.T)
    x0_cov = np.cov(X[:, 0], rowvar=False, bias=True)
    x0_cov[np.diag_indices(dX)] = np.maximum(np.diag(x0_cov), 1e-6)
    return F, f, cov, X[:, 0].mean(axis=0), x0_cov


def mixture_moments(prior: DynamicsPrior, Z: np.ndarray):
    """Mean and covariance of the prior's mixture under the average posterior weights of the rows of Z."""
    mix, center, scale = prior._mixture, prior._center, prior._scale
    w = as_sklearn(mix).predict_proba((Z - center) / scale).mean(axis=0)
    means = center + mix.means * scale
    covs = mix.covariances * np.outer(scale, scale)
    mu0 = w @ means
    diff = means - mu0
    return mu0, np.einsum("k,kij->ij", w, covs) + np.einsum("k,ki,kj->ij", w, diff, diff)


def ours_arrays(X, U, ridge: float = 1e-6):
    """gpsx's vectorised core on the prior-free job (validation and identifiability checks included)."""
    names = [f"x[{i}]" for i in range(X.shape[2])] + [f"u[{i}]" for i in range(U.shape[2])]
    return _fit_conditional(dynamics_tuples(X, U), names, "X/U", None, ridge)


def interleaved(jobs: dict, repeats: int) -> dict:
    """Median seconds of each job, the jobs run in turn ``repeats`` times."""
    times = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(val)) for name, val in times.items()}


def time_update_and_fit(system, warm: bool, repeats: int, seed: int) -> dict:
    """Median seconds of prior.update + fit_dynamics with N = 5 (cold: empty prior; warm: 15 stored)."""
    times = []
    for r in range(repeats):
        prior = DynamicsPrior(random_state=seed + r)
        if warm:
            for i in range(3):
                prior.update(*rollout(system, 5, seed=1000 * r + i))
        X, U = rollout(system, 5, seed=1000 * r + 99)
        start = time.perf_counter()
        prior.update(X, U)
        fit_dynamics(X, U, prior=prior)
        times.append(time.perf_counter() - start)
    return {"median_s": float(np.median(times)), "min_s": float(np.min(times)), "max_s": float(np.max(times)),
            "clusters": prior.num_clusters, "stored": prior.num_samples}


def time_prior_fit(system, repeats: int, seed: int) -> dict:
    """fit_dynamics with a warm prior (N = 5) against the per-step loop with the same prior."""
    prior = DynamicsPrior(random_state=seed)
    for i in range(4):
        prior.update(*rollout(system, 5, seed=seed + i))
    X, U = rollout(system, 5, seed=seed + 3)
    med = interleaved({"ours": lambda: fit_dynamics(X, U, prior=prior),
                       "loop": lambda: LinearGaussianDynamics(*baseline_arrays(X, U, prior))}, repeats)
    diff = np.abs(fit_dynamics(X, U, prior=prior).F - baseline_arrays(X, U, prior)[0]).max()
    return {"ours_s": med["ours"], "loop_s": med["loop"], "speedup": med["loop"] / med["ours"],
            "max_abs_diff_F": float(diff)}


def as_sklearn(mix: Mixture) -> GaussianMixture:
    """A fitted scikit-learn ``GaussianMixture`` with the parameters of ``mix``."""
    gmm = GaussianMixture(len(mix.weights), covariance_type="full")
    gmm.weights_, gmm.means_, gmm.covariances_ = mix.weights, mix.means, mix.covariances
    gmm.precisions_cholesky_, gmm.n_features_in_ = mix.precisions_cholesky, mix.means.shape[1]
    return gmm


def time_refit(system, repeats: int, seed: int) -> dict:
    """The warm EM refit and the posterior weights: gpsx.mixture against scikit-learn, same inputs."""
    prior = DynamicsPrior(random_state=seed)
    for i in range(4):
        prior.update(*rollout(system, 5, seed=seed + i))
    pool = np.concatenate(prior._buffer)
    z = (pool[np.random.default_rng(seed).choice(len(pool), prior.max_em_points, replace=False)]
         - prior._center) / prior._scale
    batch = dynamics_tuples(*rollout(system, 5, seed=seed + 4))
    batch = (batch.reshape(-1, batch.shape[-1]) - prior._center) / prior._scale
    start, reg = prior._mixture, 1e-6

    def sklearn_refit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            GaussianMixture(len(start.weights), covariance_type="full", reg_covar=reg, max_iter=prior.em_iterations,
                            weights_init=start.weights, means_init=start.means, precisions_init=start.precisions,
                            random_state=0).fit(z)

    gmm = as_sklearn(start)
    med = interleaved({"refit_ours": lambda: em(z, start, prior.em_iterations, reg), "refit_sklearn": sklearn_refit,
                       "weights_ours": lambda: start.posterior(batch),
                       "weights_sklearn": lambda: gmm.predict_proba(batch)}, repeats)
    return {**{f"{key}_s": val for key, val in med.items()},
            "refit_speedup": med["refit_sklearn"] / med["refit_ours"],
            "weights_speedup": med["weights_sklearn"] / med["weights_ours"]}


def time_prior_free(system, N: int, repeats: int, seed: int) -> dict:
    """The prior-free fit against the loop: arrays out ("core") and validated containers out ("full")."""
    X, U = rollout(system, N, seed=seed)
    med = interleaved({"core_ours": lambda: ours_arrays(X, U), "core_loop": lambda: baseline_arrays(X, U),
                       "full_ours": lambda: fit_dynamics(X, U),
                       "full_loop": lambda: LinearGaussianDynamics(*baseline_arrays(X, U))}, repeats)
    diff = np.abs(fit_dynamics(X, U).F - baseline_arrays(X, U)[0]).max()
    return {"N": N, **{f"{key}_s": val for key, val in med.items()},
            "core_speedup": med["core_loop"] / med["core_ours"],
            "full_speedup": med["full_loop"] / med["full_ours"], "max_abs_diff_F": float(diff)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats per measurement (median reported)")
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); times in ms unless noted")
    print(f"{'size':8s} {'(T,dX,dU)':13s}| {'cold s':>6s} {'warm s':>6s} {'K':>2s} | {'prior fit ours/loop':>19s} "
          f"{'ratio':>5s} | {'refit ours/sk':>13s} {'ratio':>5s} {'weights ours/sk':>15s} {'ratio':>5s} | {'N':>3s} {'free core ours/loop':>19s} {'ratio':>5s} {'free full ours/loop':>19s} "
          f"{'ratio':>5s}")
    results = {}
    for i, name in enumerate(args.sizes):
        T, dX, dU = SIZES[name]
        system = random_system(T, dX, dU, seed=i)
        r = results[name] = {
            "size": [T, dX, dU],
            "cold": time_update_and_fit(system, warm=False, repeats=args.repeats, seed=10 * i),
            "warm": time_update_and_fit(system, warm=True, repeats=args.repeats, seed=10 * i),
            "prior_fit": time_prior_fit(system, repeats=args.repeats, seed=10 * i),
            "refit": time_refit(system, repeats=args.repeats, seed=10 * i),
            "prior_free": time_prior_free(system, N=2 * (dX + dU), repeats=args.repeats, seed=i),
        }
        pf, fr, rf = r["prior_fit"], r["prior_free"], r["refit"]
        print(f"{name:8s} {str((T, dX, dU)):13s}| {r['cold']['median_s']:6.3f} {r['warm']['median_s']:6.3f} "
              f"{r['warm']['clusters']:2d} | {1e3 * pf['ours_s']:8.1f} /{1e3 * pf['loop_s']:8.1f} "
              f"{pf['speedup']:5.1f} | {1e3 * rf['refit_ours_s']:5.1f} /{1e3 * rf['refit_sklearn_s']:6.1f} "
              f"{rf['refit_speedup']:5.1f} {1e3 * rf['weights_ours_s']:6.1f} /{1e3 * rf['weights_sklearn_s']:7.1f} "
              f"{rf['weights_speedup']:5.1f} | "
              f"{fr['N']:3d} {1e3 * fr['core_ours_s']:8.1f} /{1e3 * fr['core_loop_s']:8.1f} {fr['core_speedup']:5.1f} "
              f"{1e3 * fr['full_ours_s']:8.1f} /{1e3 * fr['full_loop_s']:8.1f} {fr['full_speedup']:5.1f}")
    worst = max(max(r["cold"]["median_s"], r["warm"]["median_s"]) for r in results.values())
    diff = max(max(r[key]["max_abs_diff_F"] for key in ("prior_fit", "prior_free")) for r in results.values())
    print(f"max |F_gpsx - F_loop| over all rows: {diff:.1e}")
    print(f"prior update + fit (N=5), worst median: {worst:.3f} s; target < {PRIOR_TARGET_S} s: "
          f"{'met' if worst < PRIOR_TARGET_S else 'MISSED'}")
    for key, label in (("core_speedup", "prior-free core"), ("full_speedup", "prior-free full")):
        low = min(r["prior_free"][key] for r in results.values())
        print(f"{label} vs per-step loop, smallest ratio: {low:.1f}x; target >= {SPEEDUP_TARGET:.0f}x: "
              f"{'met' if low >= SPEEDUP_TARGET else 'MISSED'}")
    low = min(r["prior_fit"]["speedup"] for r in results.values())
    print(f"prior fit (N=5) vs per-step loop, smallest ratio: {low:.1f}x")
    for key, label in (("refit_speedup", "warm EM refit"), ("weights_speedup", "posterior weights")):
        ratios = ", ".join(f"{r['refit'][key]:.1f}" for r in results.values())
        print(f"{label}, gpsx.mixture vs scikit-learn: {ratios}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
