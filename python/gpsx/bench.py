"""``gpsx bench``: microbenchmarks of the DP kernels, compiled core against its numpy twin.

``--policy`` benchmarks the policy's training instead: one evaluation of the L-BFGS objective and its gradient
(what each of the ~60 evaluations per GPS iteration costs) and the softplus kernel inside it, on a batch the size
of one iteration's training set for a task.

For each problem size it times the backward pass (λ = 0), the forward pass, the trajectory KL and the
full η search (``optimize_trajectory``) with both backends, interleaved round by round in one process, and
reports medians and the median of the per-round ratios (paired ratios resist machine-load noise). In each
round the compiled op is timed as the best of 3 back-to-back calls (warm caches, as in the η loop) and the
numpy op once.
Single-threaded BLAS, as gpsx runs by default.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Callable

import numpy as np

from . import _backend, reference
from .lqr import _relative_to_prev, optimize_trajectory
from .policy import GaussianMLPPolicy
from .policy_training import _evaluate, _prepare
from .synthetic import BENCH_SIZES, random_problem

#: Backward pass of the straightforward Cython + BLAS sequence (one call per op), ms, measured on this kind
#: of machine (notes/perf-anchors.md §9). Targets: at or below these.
ANCHOR_BACKWARD_MS = {"pr2": 1.65, "swimmer": 1.40, "walker": 3.3, "peg3d": 3.3, "octopus": 15.7}
OPS = ("backward", "forward", "kl", "optimize")
#: One GPS iteration's policy training set, (pairs, dO, dU): the task's training conditions (4; the octopus 8)
#: × 5 samples × 3 buffered iterations (the default) × T.
POLICY_SIZES = {"peg2d": (48_000, 8, 2), "peg3d": (48_000, 18, 6), "octopus": (12_000, 54, 18),
                "swimmer": (24_000, 10, 2), "walker": (30_000, 22, 6)}
POLICY_OPS = ("objective", "softplus")


def _timer(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _warm_timer(fn: Callable[[], object], calls: int = 3) -> float:
    """Best of ``calls`` back-to-back calls: the steady state of a call repeated as in the η loop, not the
    cache-cold first call right after the numpy twin has swept the caches."""
    return min(_timer(fn) for _ in range(calls))


def _paired(fast: Callable[[], object], slow: Callable[[], object], rounds: int, budget_s: float | None = None,
            fast_timer: Callable[[Callable[[], object]], float] = _timer) -> dict:
    """Interleaved timings of two closures (the order alternates round by round): medians, the fastest fast
    call and the median paired ratio slow/fast. Stops early once the slow side has used ``budget_s`` (after at
    least 3 rounds)."""
    fast(), slow()                                 # warm-up (imports, first-touch)
    t_fast, t_slow = [], []
    for i in range(rounds):
        if i % 2 == 0:
            t_fast.append(fast_timer(fast))
            t_slow.append(_timer(slow))
        else:
            t_slow.append(_timer(slow))
            t_fast.append(fast_timer(fast))
        if budget_s is not None and sum(t_slow) > budget_s and i >= 2:
            break
    return {"compiled_ms": 1e3 * statistics.median(t_fast), "compiled_min_ms": 1e3 * min(t_fast),
            "numpy_ms": 1e3 * statistics.median(t_slow),
            "ratio": statistics.median(s / f for s, f in zip(t_slow, t_fast)), "rounds": len(t_fast)}


def _case_ops(kern, problem, backend: str):
    """Closures running each benchmarked operation with ``kern`` on ``problem``."""
    d, c, p = problem.dyn, problem.cost, problem.prev
    T, dX, dU = d.T, d.dX, d.dU
    n = dX + dU
    ws = kern.Workspace(T, dX, dU)
    F, f, L, l, P = _relative_to_prev(d, c, p, kern, ws)     # exactly what optimize_trajectory hands the kernel
    pv = np.zeros((T, n))
    K, k, C = np.empty((T, dU, dX)), np.empty((T, dU)), np.empty((T, dU, dU))
    kern.backward(ws, F, f, L, l, P, pv, 1.0, K, k, C)
    K += p.K
    k += p.k
    _scratch = (np.empty((T, dU, dX)), np.empty((T, dU)), np.empty((T, dU, dU)))
    mean, cov, kl = np.empty((T, n)), np.empty((T, n, n)), np.empty(T)
    kern.forward(ws, d.F, d.f, d.cov, d.x0_mean, d.x0_cov, K, k, C, mean, cov)

    def optimize():
        with _backend.use(backend):
            optimize_trajectory(d, c, p, 0.2 * T)

    return {
        "backward": lambda: kern.backward(ws, F, f, L, l, P, pv, 1.0, *_scratch),
        "forward": lambda: kern.forward(ws, d.F, d.f, d.cov, d.x0_mean, d.x0_cov, K, k, C, mean, cov),
        "kl": lambda: kern.conditional_kl(ws, mean, cov, K, k, C, p.K, p.k, p.cov, kl),
        "optimize": optimize,
    }


def bench_case(name: str, T: int, dX: int, dU: int, rounds: int, budget_s: float) -> dict:
    """Interleaved timings of every op for one size; numpy rounds are capped by ``budget_s`` per op."""
    import gps_core

    problem = random_problem(T, dX, dU, seed=0)
    fast = _case_ops(gps_core, problem, "compiled")
    slow = _case_ops(reference, problem, "numpy")
    result = {"case": name, "T": T, "dX": dX, "dU": dU, "ops": {}}
    for op in OPS:
        result["ops"][op] = _paired(fast[op], slow[op], rounds, budget_s=budget_s, fast_timer=_warm_timer)
    if name in ANCHOR_BACKWARD_MS:
        result["anchor_backward_ms"] = ANCHOR_BACKWARD_MS[name]
    return result


def bench_policy(name: str, pairs: int, dO: int, dU: int, rounds: int) -> dict:
    """The policy's training objective with its gradient (default network) and the softplus of its first layer,
    compiled softplus against the numpy twin, on random data of one training set's size."""
    rng = np.random.default_rng(0)
    policy = GaussianMLPPolicy(dO, dU, seed=0)
    A = rng.standard_normal((pairs, dU, dU))
    batch = _prepare(policy, rng.standard_normal((pairs, 1, dO)), rng.standard_normal((pairs, 1, dU)),
                     (A @ np.swapaxes(A, 1, 2) + np.eye(dU))[:, None], np.ones((pairs, 1)))
    theta = policy.get_params()
    buffers = policy.layer_buffers(pairs)          # reused across evaluations, as train_policy does
    z = batch.obs @ policy.weights[0]
    bias = policy.biases[0]
    act, slope = np.empty_like(z), np.empty_like(z)

    def objective(backend: str):
        def run():
            with _backend.use(backend):
                _evaluate(policy, batch, batch.obs, theta, 0.0, buffers)
        return run

    import gps_core

    ops = {"objective": _paired(objective("compiled"), objective("numpy"), rounds),
           "softplus": _paired(lambda: gps_core.softplus(z, bias, act, slope),
                               lambda: reference.softplus(z, bias, act, slope), rounds)}
    return {"case": name, "pairs": pairs, "dO": dO, "dU": dU, "hidden": list(policy.hidden_sizes), "ops": ops}


def _print_policy_table(results: list[dict], out) -> None:
    print(f"{'case':10s} {'pairs':>7s} {'dO':>3s} {'dU':>3s}  "
          + "  ".join(f"{op + ': compiled/numpy ms (x)':>34s}" for op in POLICY_OPS), file=out)
    for r in results:
        row = [f"{r['ops'][op]['compiled_ms']:9.2f} / {r['ops'][op]['numpy_ms']:8.2f} ({r['ops'][op]['ratio']:5.2f}x)"
               for op in POLICY_OPS]
        print(f"{r['case']:10s} {r['pairs']:7d} {r['dO']:3d} {r['dU']:3d}  " + "  ".join(c.rjust(34) for c in row),
              file=out)


def _print_table(results: list[dict], out) -> None:
    """One row per case: compiled ms / numpy ms (paired ratio) for each op, and backward vs its anchor."""
    cells = {op: f"{op}: compiled/numpy ms (x)" for op in OPS}
    print(f"{'case':12s} {'T':>4s} {'dX':>4s} {'dU':>3s}  " + "  ".join(f"{cells[op]:>31s}" for op in OPS)
          + f"  {'anchor ms (bwd/anchor)':>22s}", file=out)
    for r in results:
        row = []
        for op in OPS:
            o = r["ops"][op]
            row.append(f"{o['compiled_ms']:9.3f} / {o['numpy_ms']:8.1f} ({o['ratio']:5.1f}x)".rjust(31))
        anchor = r.get("anchor_backward_ms")
        tail = f"{anchor:6.2f} ({r['ops']['backward']['compiled_ms'] / anchor:4.2f})" if anchor else ""
        print(f"{r['case']:12s} {r['T']:4d} {r['dX']:4d} {r['dU']:3d}  " + "  ".join(row) + f"  {tail:>22s}",
              file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpsx bench", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=None,
                        help=f"comma-separated subset of {', '.join(BENCH_SIZES)} (with --policy: of "
                             f"{', '.join(POLICY_SIZES)}); default all")
    parser.add_argument("--policy", action="store_true",
                        help="benchmark the policy's training objective instead of the DP kernels")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per op (default 15)")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="seconds of numpy time per op and case before stopping early (default 3)")
    parser.add_argument("--json", action="store_true", help="one JSON object per case instead of a table")
    args = parser.parse_args(argv)
    sizes = POLICY_SIZES if args.policy else BENCH_SIZES
    cases = list(sizes) if args.cases is None else args.cases.split(",")
    unknown = [c for c in cases if c not in sizes]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {list(sizes)}")
    from threadpoolctl import threadpool_limits

    results = []
    with threadpool_limits(1):
        for name in cases:
            if args.policy:
                r = bench_policy(name, *sizes[name], rounds=args.rounds)
            else:
                r = bench_case(name, *sizes[name], rounds=args.rounds, budget_s=args.budget)
            results.append(r)
            if args.json:
                print(json.dumps(r), flush=True)
    if args.policy and not args.json:
        print("gpsx bench --policy: one evaluation of the training objective and gradient, and the first layer's "
              "softplus, compiled softplus vs numpy twin, median ms (median paired ratio)")
        _print_policy_table(results, sys.stdout)
    elif not args.json:
        print("gpsx bench: compiled core vs numpy twin, median ms (median paired ratio); "
              "anchor = Cython+BLAS sequence of notes/perf-anchors.md (compiled/anchor)")
        _print_table(results, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
