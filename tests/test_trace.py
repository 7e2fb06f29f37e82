"""Task.trace (each task's 2-D picture of rollouts) and the rollouts picture of ``gpsx plot``."""
from __future__ import annotations

import numpy as np
import pytest

import gpsx.tasks
from gpsx.cli import main
from gpsx.tasks.base import Trace

T_SHORT = 30


@pytest.mark.parametrize("name", gpsx.tasks.names())
def test_trace_has_one_planar_path_per_rollout(name):
    task = gpsx.tasks.make(name).with_horizon(T_SHORT)
    c = task.train_conditions[-1]
    X, _ = task.rollout(task.initial_controller(c), c, n=3, seed=1)
    trace = task.trace(X, c)
    assert isinstance(trace, Trace)
    assert trace.points.shape == (3, T_SHORT, 2) and np.isfinite(trace.points).all()
    assert trace.xlabel and trace.ylabel
    if trace.goal is not None:
        assert trace.goal.shape == (2,)


def test_octopus_trace_ends_where_success_is_judged():
    task = gpsx.tasks.make("octopus").with_horizon(T_SHORT)
    X, _ = task.rollout(task.initial_controller(1), 1, n=4, seed=2)
    trace = task.trace(X, 1)
    np.testing.assert_array_equal(trace.goal, task.condition(1).target)
    reached = np.linalg.norm(trace.points[:, -1] - trace.goal, axis=1)
    np.testing.assert_allclose(reached, np.linalg.norm(task.tip_positions(X[:, -1:])[:, 0] - trace.goal, axis=1))


def test_plot_draws_the_rollouts_of_a_run(tmp_path):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    assert main(["train", "octopus", "--iterations", "1", "--samples", "2", "--horizon", "15", "--no-policy",
                 "--out", str(run), "--quiet"]) == 0
    assert main(["plot", str(run), "--rollouts", "2"]) == 0
    for name in ("learning_curves.png", "trajectories.png"):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (run / "trajectories.png").unlink()
    assert main(["plot", str(run), "--rollouts", "0"]) == 0
    assert not (run / "trajectories.png").exists()


def test_peg2d_trace_is_the_tip_in_the_arm_plane():
    # the scripted insertion succeeds; the traced tip must end within the success radius of the traced goal
    task = gpsx.tasks.make("peg2d")
    X, _ = task.rollout(task.scripted_policy(1), 1, n=1, noise=False)
    trace = task.trace(X, 1)
    assert task.success(X, 1)[0]
    np.testing.assert_array_equal(trace.goal, task.condition(1).target[[0, 2]])
    assert np.linalg.norm(trace.points[0, -1] - trace.goal) < 0.01
    assert (trace.xlabel, trace.ylabel) == ("x [m]", "z [m]")
