"""Time one trajectory-only GPS iteration per task, phase by phase, against the MuJoCo stepping inside it.

    python benchmarks/bench_iteration.py [--tasks peg2d swimmer ...] [--warmup 3] [--iterations 3]

DESIGN §6 asks that an iteration's own work (everything but MuJoCo stepping) take no longer than the stepping
itself (on swimmer and peg2d). Each task runs ``--warmup`` iterations (the GMM prior fills and warm-starts),
then ``--iterations`` timed ones with the task's defaults (4 training conditions × 5 samples, no policy,
``initial_noise_scale`` 50 on the pegs as in docs/results.md). Stepping = the time inside
``Simulator.step`` (``mujoco.batch`` advancing the samples by one control step). The fastest timed iteration
is shown (the machine is shared), with its phases from ``IterationReport.timings``. Single-threaded BLAS.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
import gpsx.tasks  # noqa: E402
from gpsx import sampling  # noqa: E402
from gpsx.config import GPSConfig  # noqa: E402
from gpsx.gps import GPS, PHASES  # noqa: E402

NOISE_SCALE = {"peg2d": 50.0, "peg3d": 50.0}   # the exploration setting of the documented peg runs


class SteppingClock:
    """Accumulates the wall time spent in ``Simulator.step`` while installed."""

    def __init__(self):
        self.seconds = 0.0
        self._step = sampling.Simulator.step

    def __enter__(self):
        clock, step = self, self._step

        def timed(sim):
            start = time.perf_counter()
            step(sim)
            clock.seconds += time.perf_counter() - start

        sampling.Simulator.step = timed
        return self

    def __exit__(self, *exc):
        sampling.Simulator.step = self._step


def time_task(name: str, warmup: int, iterations: int) -> dict:
    config = GPSConfig.from_dict({"policy": False, "initial_noise_scale": NOISE_SCALE.get(name, 1.0)})
    algo = GPS(gpsx.tasks.make(name), config, seed=0)
    for _ in range(warmup):
        algo.step()
    best = None
    for _ in range(iterations):
        with SteppingClock() as clock:
            start = time.perf_counter()
            report = algo.step()
            total = time.perf_counter() - start
        if best is None or total < best["total"]:
            best = {"total": total, "stepping": clock.seconds, **report.timings}
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="*", default=gpsx.tasks.names(), choices=gpsx.tasks.names())
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); seconds per iteration")
    print(f"{'task':8s} {'total':>6s} " + " ".join(f"{p:>9s}" for p in PHASES)
          + f" {'stepping':>9s} {'own work':>9s} {'own/stepping':>12s}")
    for name in args.tasks:
        r = time_task(name, args.warmup, args.iterations)
        own = r["total"] - r["stepping"]
        print(f"{name:8s} {r['total']:6.3f} " + " ".join(f"{r[p]:9.3f}" for p in PHASES)
              + f" {r['stepping']:9.3f} {own:9.3f} {own / r['stepping']:11.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
