"""A Gymnasium view of one condition of a gpsx task (optional: needs ``pip install gpsx[gym]``).

Observation = the state [qpos, qvel] (float64, unbounded Box); action = actuator controls (Box = ctrlrange),
clipped before use; reward = −cost(x_t, u_t) of the task's cost for that condition, evaluated at the state the
action is applied in (as ``task.cost(X, U)`` indexes it). Fixed horizon: ``truncated`` is True after T steps
and ``terminated`` is always False. ``reset`` puts the simulation in the condition's initial state (it is
deterministic, so the seed only seeds ``np_random`` for callers). If MuJoCo reports a divergence the episode
is truncated early with ``info["diverged"] = True``.
"""
from __future__ import annotations

import mujoco
import numpy as np

from .sampling import DIVERGENCE_WARNINGS

__all__ = ["as_gymnasium"]


def as_gymnasium(task, condition: int = 0):
    """A ``gymnasium.Env`` over ``task``'s condition ``condition`` (imports gymnasium lazily)."""
    import gymnasium
    from gymnasium import spaces

    class GPSXTaskEnv(gymnasium.Env):
        metadata = {"render_modes": []}

        def __init__(self):
            self.task = task
            self.condition = task.condition(condition)
            self.model = task.model_for(self.condition)
            self.data = mujoco.MjData(self.model)
            self._cost = task.cost_for(self.condition)
            lo, hi = task.ctrl_range
            self.action_space = spaces.Box(lo, hi, dtype=np.float64)
            self.observation_space = spaces.Box(-np.inf, np.inf, shape=(task.dX,), dtype=np.float64)
            self._t = 0

        def _obs(self) -> np.ndarray:
            return np.concatenate([self.data.qpos, self.data.qvel])

        def _warnings(self) -> int:
            return sum(self.data.warning[w].number for w in DIVERGENCE_WARNINGS)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            m, d, x0 = self.model, self.data, self.condition.x0
            mujoco.mj_resetData(m, d)
            d.qpos[:] = x0[: m.nq]
            d.qvel[:] = x0[m.nq:]
            self._t = 0
            return self._obs(), {"t": 0}

        def step(self, action):
            u = np.clip(np.asarray(action, dtype=np.float64), self.action_space.low, self.action_space.high)
            x = self._obs()
            reward = -float(self._cost(x[None, None], u[None, None])[0, 0])
            before = self._warnings()
            self.data.ctrl[:] = u
            mujoco.mj_step(self.model, self.data, self.task.substeps)
            self._t += 1
            diverged = self._warnings() > before
            truncated = self._t >= self.task.T or diverged
            return self._obs(), reward, False, truncated, {"t": self._t, "diverged": diverged}

    return GPSXTaskEnv()
