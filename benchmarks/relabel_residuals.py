"""Which buffered rollouts dominate a run's policy fit? Residuals of the relabelled training set, per rollout.

For the last checkpoint of RUN_DIR, every buffered rollout of every trained condition is relabelled with the
condition's current controller (m = K_t x + k_t: ``gpsx.guided.relabel``, as ``Guide.train`` does) and
compared with the current policy: the mean residual q = ½ (m − μ^π)ᵀ C⁻¹ (m − μ^π) in nats per step, the
largest |m|, the share of steps whose m leaves the actuators' range, and whether the rollout succeeded.
docs/results.md (issue 6, sessions 5 and 6) quotes these for peg2d, the walker and the octopus. The octopus
runs quoted there trained on its first four targets; their checkpoints load with gpsx up to commit 289f613.

    PYTHONPATH=build/dev:python python benchmarks/relabel_residuals.py RUN_DIR
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gpsx.guided import relabel
from gpsx.runs import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    algo = RunDir(parser.parse_args().run_dir).load()
    guide, task = algo.guide, algo.task
    lo, hi = task.ctrl_range
    print("condition  iteration  rollout  success  residual (nats/step)  max |action|  steps out of range")
    for c in guide.conditions:
        controller = algo.controllers[c]
        entries_out = []
        for age, X in enumerate(reversed(guide.buffer[c])):
            target = relabel(controller, X)
            obs = task.observe(X, c)
            mean = guide.policy.mean(obs.reshape(-1, task.dO)).reshape(target.shape)
            r = target - mean
            q = 0.5 * np.einsum("ntu,tuv,ntv->nt", r, controller.precision, r).mean(axis=1)
            out = (target < lo) | (target > hi)
            entries_out.append(out.mean())
            for i, (qi, ok) in enumerate(zip(q, task.success(X, c))):
                print(f"{c:9d}  {algo.iteration - 1 - age:9d}  {i:7d}  {'yes' if ok else 'no':7s}  {qi:20.1f}  "
                      f"{np.abs(target[i]).max():12.0f}  {out[i].any(axis=-1).mean():18.0%}")
        print(f"condition {c}: {np.mean(entries_out):.0%} of the relabelled action entries are out of range")


if __name__ == "__main__":
    main()
