"""`gpsx bench` runs both backends on a case and reports consistent numbers (no timing assertions)."""
import json

import pytest

import gpsx
from gpsx import bench
from gpsx.config import GPSConfig


def test_bench_json_one_object_per_case(capsys, compiled):
    assert bench.main(["--cases", "sweep_dX8,sweep_dX16", "--rounds", "3", "--budget", "0.2", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line, (case, dX) in zip(lines, [("sweep_dX8", 8), ("sweep_dX16", 16)]):
        result = json.loads(line)
        assert result["case"] == case and result["dX"] == dX and result["dU"] == dX // 4
        assert set(result["ops"]) == set(bench.OPS)
        for op in result["ops"].values():
            assert op["compiled_ms"] > 0 and op["numpy_ms"] > 0 and op["rounds"] >= 3
            assert op["ratio"] > 0


def test_bench_table_and_anchor(capsys, compiled):
    assert bench.main(["--cases", "swimmer", "--rounds", "3", "--budget", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "swimmer" in out and "1.40" in out          # the anchor of notes/perf-anchors.md is shown beside it


def test_bench_rejects_unknown_case():
    with pytest.raises(SystemExit):
        bench.main(["--cases", "nope"])


def test_bench_policy_json(capsys, compiled):
    assert bench.main(["--policy", "--cases", "octopus", "--rounds", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["case"], result["pairs"], result["dO"], result["dU"]) == ("octopus", *bench.POLICY_SIZES["octopus"])
    assert set(result["ops"]) == set(bench.POLICY_OPS)
    for op in result["ops"].values():
        assert op["compiled_ms"] > 0 and op["numpy_ms"] > 0 and op["ratio"] > 0 and op["rounds"] == 2


@pytest.mark.parametrize("name", list(bench.POLICY_SIZES))
def test_bench_policy_sizes_are_the_tasks_training_sets(name):
    task = gpsx.tasks.make(name)
    defaults = GPSConfig()
    pairs = len(task.train_conditions) * defaults.samples_per_condition * defaults.guided.buffer_iterations * task.T
    assert bench.POLICY_SIZES[name] == (pairs, task.dO, task.dU)


def test_bench_policy_rejects_dp_case():
    with pytest.raises(SystemExit):
        bench.main(["--policy", "--cases", "sweep_dX8"])
