"""Sampler benchmark: 5 rollouts of each task's full horizon under its initial controller.

For every task: wall time of ``task.rollout(initial_controller, n=5)`` (best of ``--repeats``), and the time
MuJoCo alone needs for the same physics: the recorded actions replayed open-loop through ``mujoco.rollout``
(pure C, no Python per step; the replay's final states are checked to match the sampled ones bit for bit).
"outside MuJoCo" = 1 − physics / total: the Python loop, the vectorised controller, copies, checks, and the
per-call cost of MuJoCo's Python bindings. To separate the last from our own loop, "stepping only" times the
sampler's simulator stepping the same controls with nothing else in the loop (``mujoco.batch`` per control
step, or one ``mj_step`` per sample on the loop backend); "our loop" = 1 − stepping only / total.

    PYTHONPATH=python python benchmarks/bench_rollout.py [--repeats 5] [--backend auto|batch|loop]
"""
from __future__ import annotations

import argparse
import time

import mujoco
import numpy as np
from mujoco import rollout as mj_rollout

import gpsx.tasks


def replay_setup(task, condition: int, X: np.ndarray, U: np.ndarray):
    """Initial full-physics states and the per-physics-step controls that reproduce the samples in C."""
    model = task.model_for(condition)
    data = mujoco.MjData(model)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    n, T, _ = X.shape
    state0 = np.empty((n, mujoco.mj_stateSize(model, spec)))
    for i in range(n):
        mujoco.mj_resetData(model, data)
        data.qpos[:] = X[i, 0, : task.nq]
        data.qvel[:] = X[i, 0, task.nq:]
        mujoco.mj_getState(model, data, state0[i], spec)
    control = np.repeat(U[:, : T - 1], task.substeps, axis=1)  # x_T is not simulated by the sampler
    return model, data, state0, control


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--backend", default="auto", choices=["auto", "batch", "loop"])
    args = ap.parse_args()
    print(f"mujoco {mujoco.__version__}, 5 rollouts per task, best of {args.repeats} interleaved repeats, "
          f"backend {args.backend}")
    header = (f"{'task':8s} {'T':>4s} {'substeps':>8s} {'total ms':>9s} {'MuJoCo ms':>9s} "
              f"{'outside MuJoCo':>14s} {'stepping only ms':>16s} {'our loop':>8s} {'replay identical':>16s}")
    print(header)
    print("-" * len(header))
    for name in gpsx.tasks.names():
        task = gpsx.tasks.make(name)
        ctrl = task.initial_controller(0)
        X, U = task.rollout(ctrl, 0, n=5, seed=0, backend=args.backend)  # warm-up (builds the simulator)
        model, data, state0, control = replay_setup(task, 0, X, U)
        sim = task.simulator(0, 5, args.backend)
        total = phys = stepping = np.inf
        for _ in range(args.repeats):  # interleaved, so that load from other processes hits all alike
            t0 = time.perf_counter()
            X, U = task.rollout(ctrl, 0, n=5, seed=0, backend=args.backend)
            total = min(total, time.perf_counter() - t0)
            t0 = time.perf_counter()
            state, _ = mj_rollout.rollout(model, data, state0, control)
            phys = min(phys, time.perf_counter() - t0)
            t0 = time.perf_counter()
            sim.reset(X[:, 0])
            for t in range(task.T - 1):
                sim.ctrl[:] = U[:, t]
                sim.step()
            stepping = min(stepping, time.perf_counter() - t0)
        # FULLPHYSICS rows are [time, qpos, qvel, ...]; the last row is the state after the last control step
        same = bool(np.array_equal(state[:, -1, 1: 1 + task.dX], X[:, -1]))
        share = max(0.0, 1.0 - phys / total)
        ours = max(0.0, 1.0 - stepping / total)
        print(f"{name:8s} {task.T:4d} {task.substeps:8d} {total * 1e3:9.1f} {phys * 1e3:9.1f} {share:13.0%} "
              f"{stepping * 1e3:16.1f} {ours:7.0%} {str(same):>16s}")


if __name__ == "__main__":
    main()
