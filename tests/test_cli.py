"""The ``gpsx`` command line end to end on a tiny setting (peg2d, 25 steps, 3 samples, 2 conditions).

Most tests use the trajectory-only mode (``--no-policy``); the guided default has its own tests here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import gpsx.tasks
from gpsx import checkpoint, recipes
from gpsx.cli import main
from gpsx.config import GPSConfig
from gpsx.gps import GPS
from gpsx.guided import ObservedPolicy
from gpsx.runs import RunDir
from reports import best_reported_iteration


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.json"
    path.write_text(json.dumps({"conditions": [0, 2], "samples_per_condition": 3}))
    return path


def train(out, tiny_config, *extra):
    return main(["train", "peg2d", "--horizon", "25", "--config", str(tiny_config), "--out", str(out),
                 "--no-policy", "--quiet", *extra])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_config):
    out = tmp_path_factory.mktemp("runs") / "straight"
    assert train(out, tiny_config, "--iterations", "3", "--seed", "5") == 0
    return out


def test_tasks_lists_every_task_with_its_dimensions(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out.splitlines()
    for name in gpsx.tasks.names():
        t = gpsx.tasks.make(name)
        row = next(line.split() for line in out if line.startswith(name + " "))
        assert row[:4] == [name, str(t.dX), str(t.dU), str(t.T)]


def test_train_writes_a_complete_run_folder(finished_run):
    settings = json.loads((finished_run / "config.json").read_text())
    assert settings["task"] == "peg2d" and settings["horizon"] == 25 and settings["seed"] == 5
    assert settings["config"]["samples_per_condition"] == 3 and settings["config"]["iterations"] == 3
    lines = (finished_run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [0, 1, 2]
    assert [json.loads(line)["samples_used"] for line in lines] == [6, 12, 18]
    run = RunDir(finished_run)
    assert [p.name for p in run.checkpoints()] == ["iter_0002.npz", "iter_0003.npz"]
    algo = run.load()
    assert algo.iteration == 3 and algo.conditions == (0, 2) and algo.task.T == 25


def test_a_new_run_checkpoints_its_initial_controllers(tiny_config, tmp_path, capsys):
    out = tmp_path / "fresh"
    assert train(out, tiny_config, "--iterations", "0") == 0
    run = RunDir(out)
    assert [p.name for p in run.checkpoints()] == ["iter_0000.npz"]
    algo = run.load()
    assert algo.iteration == 0
    for c in algo.conditions:
        np.testing.assert_array_equal(algo.controllers[c].K, algo.task.initial_controller(c).K)
    assert main(["eval", str(out), "--samples", "2"]) == 0          # the initial controllers can be evaluated
    assert "after 0 iterations" in capsys.readouterr().out


def test_resume_continues_to_the_same_state(finished_run, tiny_config, tmp_path):
    out = tmp_path / "interrupted"
    assert train(out, tiny_config, "--iterations", "2", "--seed", "5") == 0
    assert main(["train", "--resume", str(out), "--iterations", "3", "--quiet"]) == 0
    meta_a, a = checkpoint.read(RunDir(finished_run).checkpoints()[-1])
    meta_b, b = checkpoint.read(RunDir(out).checkpoints()[-1])
    assert meta_a == meta_b and a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    strip = lambda r: {k: v for k, v in r.to_dict().items() if k != "timings"}  # noqa: E731
    assert [strip(r) for r in RunDir(out).metrics()] == [strip(r) for r in RunDir(finished_run).metrics()]


def test_resume_refuses_changed_settings(finished_run, capsys):
    assert main(["train", "--resume", str(finished_run), "--samples", "9"]) == 1
    assert "--samples cannot be changed" in capsys.readouterr().err


def test_train_refuses_an_existing_run_folder(finished_run, tiny_config, capsys):
    assert train(finished_run, tiny_config) == 1
    assert "already holds a run" in capsys.readouterr().err


def test_misspelled_config_key_is_an_error(tmp_path, capsys):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"samples_per_conditon": 3}))
    assert main(["train", "peg2d", "--config", str(cfg), "--out", str(tmp_path / "r"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "samples_per_conditon" in err and "samples_per_condition" in err
    assert not (tmp_path / "r").exists()


def test_every_task_has_a_recipe_and_each_is_a_valid_config():
    assert recipes.names() == sorted(gpsx.tasks.names())
    for name in recipes.names():
        config = GPSConfig.from_dict(recipes.load(name))
        assert config.iterations > 10 and config.guided.policy_std is not None  # what the README runs changed
    with pytest.raises(ValueError, match="no recipe for task 'nope'; recipes: octopus, peg2d"):
        recipes.load("nope")


def test_train_with_the_recipe_starts_from_it_and_flags_override(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "walker", "--recipe", "--horizon", "10", "--iterations", "1", "--samples", "2",
                 "--no-policy", "--out", str(out), "--quiet"]) == 0
    recorded = json.loads((out / "config.json").read_text())["config"]
    recipe = recipes.load("walker")
    assert recorded["iterations"] == 1 and recipe["iterations"] == 30  # the flag won
    assert {k: recorded["guided"][k] for k in recipe["guided"]} == recipe["guided"]


def test_recipe_with_config_or_resume_is_refused(tiny_config, finished_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "walker", "--recipe", "--config", str(tiny_config), "--out", str(tmp_path / "r")])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert main(["train", "--resume", str(finished_run), "--recipe", "--quiet"]) == 1
    assert "--recipe cannot be changed when resuming" in capsys.readouterr().err


@pytest.fixture(scope="module")
def guided_run(tmp_path_factory):
    """A guided (default-mode) run: peg2d, 15 steps, 2 iterations, a small network."""
    folder = tmp_path_factory.mktemp("guided")
    cfg = folder / "guided.json"
    cfg.write_text(json.dumps({"conditions": [0, 2], "samples_per_condition": 3,
                               "guided": {"hidden_sizes": [10], "train_iterations": 10}}))
    out = folder / "run"
    assert main(["train", "peg2d", "--horizon", "15", "--config", str(cfg), "--iterations", "2", "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_train_learns_a_policy_by_default(guided_run, finished_run):
    assert json.loads((guided_run / "config.json").read_text())["policy"] is True
    assert json.loads((finished_run / "config.json").read_text())["policy"] is False
    reports, held_out = RunDir(guided_run).metrics(), len(gpsx.tasks.make("peg2d").test_conditions)
    assert len(reports) == 2 and all(len(r.policy_cost) == 2 and len(r.test_policy_cost) == held_out for r in reports)
    assert RunDir(guided_run).load().policy is not None and RunDir(finished_run).load().policy is None
    assert RunDir(finished_run).metrics()[0].policy_cost == ()


def test_resume_refuses_to_drop_the_policy(guided_run, capsys):
    assert main(["train", "--resume", str(guided_run), "--no-policy"]) == 1
    assert "--no-policy cannot be changed" in capsys.readouterr().err


def test_eval_of_a_guided_run_evaluates_the_policy_on_held_out_conditions(guided_run, capsys):
    assert main(["eval", str(guided_run), "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "the policy" in out and "held-out test conditions" in out
    saved = json.loads((guided_run / "eval.json").read_text())
    assert (saved["evaluated"], saved["policy_iteration"]) == ("policy", 1)   # the final one, of 2 iterations
    task = gpsx.tasks.make("peg2d").with_horizon(15)
    assert [r["condition"] for r in saved["results"]] == [0, 2, *task.test_conditions]
    algo = RunDir(guided_run).load()
    X, U = task.rollout(ObservedPolicy(algo.policy, task, 5), 5, n=1, noise=False)
    assert saved["results"][3]["cost"] == pytest.approx(task.cost(X, U, 5).sum())


def test_eval_best_evaluates_the_best_policy_of_the_run(guided_run, finished_run, capsys):
    assert main(["eval", str(guided_run), "--samples", "1", "--best"]) == 0
    assert "the best policy: after iteration" in capsys.readouterr().out
    saved = json.loads((guided_run / "eval.json").read_text())
    reports = RunDir(guided_run).metrics()
    best = best_reported_iteration(reports)
    assert (saved["evaluated"], saved["policy_iteration"]) == ("best policy", best)
    assert [r["cost"] for r in saved["results"][:2]] == pytest.approx(list(reports[best].policy_cost))
    assert main(["eval", str(finished_run), "--best"]) == 1
    assert "--best needs one" in capsys.readouterr().err


def test_eval_of_a_no_policy_run_reports_training_conditions_only(finished_run, capsys):
    assert main(["eval", str(finished_run), "--samples", "3"]) == 0
    out = capsys.readouterr().out
    assert "final distance to the slot bottom" in out and "this run has no policy" in out
    saved = json.loads((finished_run / "eval.json").read_text())
    assert [r["condition"] for r in saved["results"]] == [0, 2]
    task = gpsx.tasks.make("peg2d").with_horizon(25)
    algo = GPS.load(RunDir(finished_run).checkpoints()[-1])
    X, U = task.rollout(algo.controllers[2], 2, n=1, noise=False)
    assert saved["results"][1]["cost"] == pytest.approx(task.cost(X, U, 2).sum())


def test_plot_writes_a_png(finished_run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.png"
    assert main(["plot", str(finished_run), "--out", str(out)]) == 0
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert _png_aspect(png) < 3  # no policy: the cost and success panels only


def test_plot_without_matplotlib_says_what_to_install(finished_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # makes `import matplotlib` raise ImportError
    assert main(["plot", str(finished_run)]) == 1
    assert "gpsx[plot]" in capsys.readouterr().err


def test_bench_forwards_its_arguments(monkeypatch):
    bench = pytest.importorskip("gpsx.bench")
    seen = []
    monkeypatch.setattr(bench, "main", lambda argv: seen.append(argv) or 0)
    assert main(["bench", "--cases", "swimmer", "--json"]) == 0
    assert seen == [["--cases", "swimmer", "--json"]]


def test_python_dash_m_gpsx_runs_end_to_end(tmp_path, tiny_config):
    out = tmp_path / "sub"
    env = dict(os.environ)
    cmd = [sys.executable, "-P", "-m", "gpsx", "train", "peg2d", "--horizon", "10", "--iterations", "1",
           "--config", str(tiny_config), "--out", str(out), "--no-policy"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "peg2d: 1 iterations" in done.stdout
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_plot_of_a_guided_run_has_the_policy_panel(guided_run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "guided.png"
    assert main(["plot", str(guided_run), "--out", str(out)]) == 0
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert _png_aspect(png) > 4  # four panels side by side: cost, success, policy cost, policy success


def _png_aspect(png: bytes) -> float:
    """Width / height from the PNG's IHDR chunk."""
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    return width / height
