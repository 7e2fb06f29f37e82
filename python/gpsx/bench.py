"""``gpsx bench``: microbenchmarks of the DP kernels, compiled core against its numpy twin.

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
from .synthetic import BENCH_SIZES, random_problem

#: Backward pass of the straightforward Cython + BLAS sequence (one call per op), ms, measured on this kind
#: of machine (notes/perf-anchors.md §9). Targets: at or below these.
ANCHOR_BACKWARD_MS = {"pr2": 1.65, "swimmer": 1.40, "walker": 3.3, "peg3d": 3.3, "octopus": 15.7}
OPS = ("backward", "forward", "kl", "optimize")


def _timer(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _warm_timer(fn: Callable[[], object], calls: int = 3) -> float:
    """Best of ``calls`` back-to-back calls: the steady state of a call repeated as in the η loop, not the
    cache-cold first call right after the numpy twin has swept the caches."""
    return min(_timer(fn) for _ in range(calls))


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
        fast[op](), slow[op]()                     # warm-up (imports, first-touch)
        t_fast, t_slow, ratios = [], [], []
        spent = 0.0
        for i in range(rounds):
            if i % 2 == 0:
                f, s = _warm_timer(fast[op]), _timer(slow[op])
            else:
                s, f = _timer(slow[op]), _warm_timer(fast[op])
            t_fast.append(f)
            t_slow.append(s)
            ratios.append(s / f)
            spent += s
            if spent > budget_s and i >= 2:
                break
        result["ops"][op] = {
            "compiled_ms": 1e3 * statistics.median(t_fast),
            "compiled_min_ms": 1e3 * min(t_fast),
            "numpy_ms": 1e3 * statistics.median(t_slow),
            "ratio": statistics.median(ratios),
            "rounds": len(ratios),
        }
    if name in ANCHOR_BACKWARD_MS:
        result["anchor_backward_ms"] = ANCHOR_BACKWARD_MS[name]
    return result


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
    parser.add_argument("--cases", default=",".join(BENCH_SIZES),
                        help=f"comma-separated subset of {', '.join(BENCH_SIZES)}")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per op (default 15)")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="seconds of numpy time per op and case before stopping early (default 3)")
    parser.add_argument("--json", action="store_true", help="one JSON object per case instead of a table")
    args = parser.parse_args(argv)
    unknown = [c for c in args.cases.split(",") if c not in BENCH_SIZES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {list(BENCH_SIZES)}")
    from threadpoolctl import threadpool_limits

    results = []
    with threadpool_limits(1):
        for name in args.cases.split(","):
            r = bench_case(name, *BENCH_SIZES[name], rounds=args.rounds, budget_s=args.budget)
            results.append(r)
            if args.json:
                print(json.dumps(r), flush=True)
    if not args.json:
        print("gpsx bench: compiled core vs numpy twin, median ms (median paired ratio); "
              "anchor = Cython+BLAS sequence of notes/perf-anchors.md (compiled/anchor)")
        _print_table(results, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
