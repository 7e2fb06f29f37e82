"""Can the Gaussian MLP imitate the walker's gait? Behaviour cloning, with and without the foot features.

Rolls the gait's state machine (``walker.GaitMachine``) out from the 4 training conditions with torque noise,
fits a fresh policy to its noise-free torques with ``train_policy`` (the GPS objective with unit weights and
a fixed precision), and rolls the fitted policy out noise-free from all 7 conditions. The policy observes
either the state alone or ``task.observe`` (the state plus, per leg, how far the torso is ahead of the ankle
and how high the foot is: ``Walker._observed_features``).
docs/results.md, issue 6 session 6, has the table this prints.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=build/dev:python python benchmarks/walker_cloning.py [--state-only]
        [--hidden 40,40] [--iterations 500] [--rollouts 10] [--noise 3.0]
"""
from __future__ import annotations

import argparse

import numpy as np

import gpsx.tasks
from gpsx.policy import GaussianMLPPolicy
from gpsx.policy_training import train_policy
from gpsx.tasks.walker import Gait, GaitMachine


class NoisyGait:
    """The gait plus white torque noise of std ``noise``; records the gait's own (noise-free) torques."""

    def __init__(self, dt: float, noise: float):
        self.machine, self.noise, self.torques = GaitMachine(Gait(), dt), noise, []

    def act(self, x: np.ndarray, t: int, noise: np.ndarray) -> np.ndarray:
        u = self.machine.act(x, t, noise)
        self.torques.append(u)
        return u + self.noise * noise


class Cloned:
    """The fitted policy's mean on what it observes, as a sampler policy."""

    def __init__(self, policy: GaussianMLPPolicy, observe):
        self.policy, self.observe = policy, observe

    def act(self, x: np.ndarray, t: int, noise: np.ndarray) -> np.ndarray:
        return self.policy.mean(self.observe(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-only", action="store_true", help="the policy sees the state alone")
    parser.add_argument("--hidden", default="40,40", help="hidden layer widths (default 40,40)")
    parser.add_argument("--iterations", type=int, default=500, help="L-BFGS iterations (default 500)")
    parser.add_argument("--rollouts", type=int, default=10, help="noisy gait rollouts per training condition")
    parser.add_argument("--noise", type=float, default=3.0, help="torque noise std, N·m (default 3)")
    args = parser.parse_args()

    task = gpsx.tasks.make("walker")
    observe = (lambda X: X) if args.state_only else (lambda X: task.observe(X, 0))  # the features ignore c
    obs, targets = [], []
    for c in task.train_conditions:
        gait = NoisyGait(task.dt, args.noise)
        X, _ = task.rollout(gait, c, n=args.rollouts, seed=c)
        obs.append(observe(X))
        targets.append(np.stack(gait.torques, axis=1))
    obs, targets = np.concatenate(obs), np.concatenate(targets)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    policy = GaussianMLPPolicy(obs.shape[-1], task.dU, hidden, "softplus", 1.0, seed=0)
    precision = np.broadcast_to(np.eye(task.dU) / 100.0, (*targets.shape[:2], task.dU, task.dU))
    result = train_policy(policy, obs, targets, precision, np.ones(targets.shape[:2]),
                          max_iterations=args.iterations, fixed_std=1.0)
    mean = policy.mean(obs.reshape(-1, obs.shape[-1])).reshape(targets.shape)
    print(f"observes {obs.shape[-1]} numbers, hidden {hidden}, {result.iterations} L-BFGS iterations in "
          f"{result.wall_time:.0f} s: rms action error {np.sqrt(((mean - targets) ** 2).mean()):.1f} "
          f"(targets' std {targets.std():.1f})")
    for c in range(len(task.conditions)):
        X, _ = task.rollout(Cloned(policy, observe), c, n=1, noise=False)
        kind = "trained" if c in task.train_conditions else "held-out"
        print(f"{kind:8s} {c}: forward {task.forward_distance(X)[0]:5.2f} m, lowest torso {X[0, :, 1].min():.2f} m, "
              f"success {bool(task.success(X, c)[0])}")


if __name__ == "__main__":
    main()
