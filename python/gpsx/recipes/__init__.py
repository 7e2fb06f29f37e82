"""The settings behind the README's guided-policy-search results, one JSON file per task.

``gpsx train TASK --recipe`` starts from them (command-line flags still override); :func:`load` returns one as
the dict :meth:`gpsx.config.GPSConfig.from_dict` takes. Each file holds what the README's table rows for its
task were run with, iterations included (docs/results.md gives every run).
"""
from __future__ import annotations

import json
from importlib import resources

__all__ = ["load", "names"]


def names() -> list[str]:
    """The tasks that have a recipe."""
    return sorted(f.name[:-len(".json")] for f in resources.files(__name__).iterdir() if f.name.endswith(".json"))


def load(task: str) -> dict:
    """The recipe of ``task`` as GPSConfig settings (``ValueError`` naming the recipes there are if none)."""
    if task not in names():
        raise ValueError(f"no recipe for task {task!r}; recipes: {', '.join(names())}")
    return json.loads(resources.files(__name__).joinpath(f"{task}.json").read_text())
