"""The paper's tasks on MuJoCo: ``make(name)``, ``names()``, and the Gymnasium adapter ``as_gymnasium``."""
from __future__ import annotations

import importlib
import importlib.util

from .base import Condition, Task, TaskCost

__all__ = ["make", "names", "as_gymnasium", "Task", "TaskCost", "Condition"]

# name -> (module, class, modules it needs)
_TASKS = {
    "peg2d": ("gpsx.tasks.peg2d", "Peg2D", ()),
    "peg3d": ("gpsx.tasks.peg3d", "Peg3D", ()),
    "octopus": ("gpsx.tasks.octopus", "Octopus", ("gpsx.tasks.octopus_model",)),
    "swimmer": ("gpsx.tasks.swimmer", "Swimmer", ()),
    "walker": ("gpsx.tasks.walker", "Walker", ()),
}


def names() -> list[str]:
    """Names accepted by :func:`make` (a task whose modules are missing from this install is left out)."""
    return [name for name, (mod, _, needs) in _TASKS.items()
            if all(importlib.util.find_spec(m) is not None for m in (mod, *needs))]


def make(name: str) -> Task:
    """A new instance of the task ``name`` (its own MuJoCo model)."""
    if name not in names():
        raise ValueError(f"unknown task {name!r}; known: {', '.join(names())}")
    mod, cls, _ = _TASKS[name]
    return getattr(importlib.import_module(mod), cls)()


def as_gymnasium(task: Task | str, condition: int = 0):
    """A ``gymnasium.Env`` over one condition of a task (needs the optional ``gymnasium`` package)."""
    from ..gym_adapter import as_gymnasium as _as_gym

    return _as_gym(make(task) if isinstance(task, str) else task, condition)
