"""The common machinery of every task: model, conditions, sampling, costs per condition, PD initialisation.

A task module only states what is particular to it: its MJCF, conditions, cost terms, success rule and initial
controller gains (:class:`Task` subclasses override :meth:`Task._cost_terms`, :meth:`Task.success` and
:meth:`Task.initial_controller`, and optionally :meth:`Task._configure_model` when a condition changes the
world, e.g. where the slot is).

**Cost and conditions.** The cost depends on the condition (the peg's slot, the octopus's target), so it is
evaluated per condition: ``task.cost(X, U, condition=0)`` and ``task.cost.derivatives(X, U, condition=0)``;
``condition`` defaults to training condition 0, so DESIGN's ``task.cost(X, U)`` works. ``task.cost_for(c)``
returns the :class:`~gpsx.costs.Cost` bound to one condition (callable on (X, U), with ``.derivatives``).

**Conditions** are numbered: ``task.conditions`` lists the training conditions first, then the held-out test
conditions; ``task.train_conditions`` and ``task.test_conditions`` are tuples of those indices. Every method that
takes a ``condition`` accepts an index or a :class:`Condition`.

**Observations.** The neural-network policy sees ``task.observe(X, condition)`` (dimension ``task.dO``): the
state, then features computed from it (:meth:`Task._observed_features`; none by default), then what the
condition adds (:meth:`Task._observed_extra`; by default its goal point when it has one). The octopus's
conditions share the initial state and differ only in the target, so a policy on the state alone could not
know where to go; it sees the target, and its tip relative to the target (docs/results.md, issue 6, session 6).
The pegs' policies see their tip relative to the slot bottom (session 11), and only peg3d's the slot bottom
itself (`PegTask.observes_slot`, session 15);
the walker's where each foot is (its gait switches on foot contact, which a small network does not extract
from joint angles; session 6). Controllers act on the state.
"""
from __future__ import annotations

import abc
import copy
from dataclasses import dataclass, field
from importlib import resources
from typing import Sequence, Union

import mujoco
import numpy as np

from ..containers import LinearGaussianController
from ..costs import Cost, CostDerivatives, CostTerm
from ..errors import ShapeError
from ..sampling import Rollouts, Simulator, ctrl_range, rollout as _rollout

__all__ = ["Condition", "Task", "TaskCost", "Trace", "load_model", "hold_pose_controller"]


@dataclass(frozen=True, eq=False)
class Condition:
    """One initial state (and, for reaching tasks, one goal).

    x0: (dX,) initial [qpos, qvel]; target: goal point in world coordinates (peg: slot/hole bottom; octopus:
    target point), or None; params: task-specific settings that shape the world (peg: slot position).
    """

    name: str
    x0: np.ndarray
    target: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        for attr in ("x0", "target"):
            value = getattr(self, attr)
            if value is not None:
                value = np.array(value, dtype=np.float64)
                value.flags.writeable = False  # shared by every rollout of the condition
                object.__setattr__(self, attr, value)


ConditionLike = Union[int, Condition]


@dataclass(frozen=True)
class Trace:
    """A task's 2-D picture of rollouts (:meth:`Task.trace`): the path of what matters, (n, T, 2), the axes'
    labels, the goal point (2,) or None, and whether both axes share a unit (plotted to scale)."""

    points: np.ndarray
    xlabel: str
    ylabel: str
    goal: np.ndarray | None = None
    equal_axes: bool = True


def load_model(asset: str) -> mujoco.MjModel:
    """Compile ``gpsx/tasks/assets/<asset>`` (our own MJCF, shipped as package data)."""
    path = resources.files(__package__).joinpath("assets", asset)
    with resources.as_file(path) as p:
        return mujoco.MjModel.from_xml_path(str(p))


class TaskCost:
    """The task's cost with the condition as an argument: ``cost(X, U, condition=0)``, ``.derivatives(...)``."""

    def __init__(self, task: "Task"):
        self._task = task

    def __call__(self, X: np.ndarray, U: np.ndarray, condition: ConditionLike = 0) -> np.ndarray:
        """Cost per sample and step, (n, T) (or (T,) for a single trajectory)."""
        return self._task.cost_for(condition)(X, U)

    def derivatives(self, X: np.ndarray, U: np.ndarray, condition: ConditionLike = 0) -> CostDerivatives:
        """Analytic expansion .l .lx .lu .lxx .luu .lux at every sample and step."""
        return self._task.cost_for(condition).derivatives(X, U)


class Task(abc.ABC):
    """A MuJoCo task with state x = [qpos, qvel], action = actuator controls (clipped to ctrlrange).

    Attributes: name, model, T, dt (control period), substeps (physics timestep = dt / substeps), dX, dU,
    conditions, train_conditions, test_conditions, cost (:class:`TaskCost`).
    """

    name: str = ""

    def __init__(self, model: mujoco.MjModel, *, T: int, dt: float, substeps: int = 1,
                 train: Sequence[Condition], test: Sequence[Condition]):
        if model.nq != model.nv:
            raise ValueError(f"{self.name}: the state [qpos, qvel] needs nq == nv (hinge/slide joints)")
        self.model = model
        self.T, self.dt, self.substeps = int(T), float(dt), int(substeps)
        model.opt.timestep = self.dt / self.substeps
        self.nq, self.nv, self.dU = model.nq, model.nv, model.nu
        self.dX = self.nq + self.nv
        self.conditions: tuple[Condition, ...] = tuple(train) + tuple(test)
        self.train_conditions = tuple(range(len(train)))
        self.test_conditions = tuple(range(len(train), len(self.conditions)))
        for c in self.conditions:
            if np.shape(c.x0) != (self.dX,):
                raise ShapeError(f"condition {c.name!r}: x0 has shape {np.shape(c.x0)}, expected ({self.dX},)",
                                 array="x0")
        self.ctrl_range = ctrl_range(model)  # (lo, hi), (dU,) each
        self.cost = TaskCost(self)
        self._models: dict[Condition, mujoco.MjModel] = {}
        self._costs: dict[Condition, Cost] = {}
        self._sims: dict[tuple, Simulator] = {}

    def __getstate__(self) -> dict:
        """Pickle without the simulators (a ``mujoco.batch.Batch`` is rebuilt on first use), e.g. for joblib."""
        state = self.__dict__.copy()
        state["_sims"] = {}
        return state

    def with_horizon(self, T: int) -> "Task":
        """A copy of this task with horizon ``T`` (e.g. a short one for quick experiments and tests).

        The copy shares the model, conditions and costs; its rollouts and initial controllers have T steps.
        """
        if isinstance(T, bool) or int(T) != T or T < 2:
            raise ValueError(f"horizon T must be an integer >= 2, got {T!r}")
        task = copy.copy(self)
        task.T = int(T)
        task._models, task._costs, task._sims = dict(self._models), dict(self._costs), {}
        return task

    # conditions -------------------------------------------------------------------------------------------
    def condition(self, condition: ConditionLike) -> Condition:
        """The :class:`Condition` for an index (or the condition itself)."""
        if isinstance(condition, Condition):
            return condition
        i = int(condition)
        if not 0 <= i < len(self.conditions):
            raise IndexError(f"{self.name} has conditions 0..{len(self.conditions) - 1}, got {condition}")
        return self.conditions[i]

    def model_for(self, condition: ConditionLike) -> mujoco.MjModel:
        """The model simulated under ``condition`` (the task's model, changed by :meth:`_configure_model`)."""
        c = self.condition(condition)
        if c not in self._models:
            self._models[c] = self._configure_model(c)
        return self._models[c]

    def _configure_model(self, condition: Condition) -> mujoco.MjModel:
        """Hook: the model for a condition. Default: the task's model, unchanged."""
        return self.model

    # observations -----------------------------------------------------------------------------------------
    @property
    def dO(self) -> int:
        """Dimension of the policy's observations (:meth:`observe`)."""
        features = self._observed_features(np.zeros((1, self.dX)), self.conditions[0]).shape[-1]
        return self.dX + features + self._observed_extra(self.conditions[0]).shape[0]

    def observe(self, X: np.ndarray, condition: ConditionLike = 0) -> np.ndarray:
        """What the neural-network policy sees at states X (..., dX) under ``condition``: (..., dO).

        The state, then :meth:`_observed_features` of it, then :meth:`_observed_extra` of the condition (the same
        at every step).
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 0 or X.shape[-1] != self.dX:
            raise ShapeError(f"{self.name}.observe: X has shape {X.shape}, its last axis must be the state ({self.dX})",
                             array="X")
        c = self.condition(condition)
        extra = self._observed_extra(c)
        parts = [X, self._observed_features(X, c), np.broadcast_to(extra, (*X.shape[:-1], extra.shape[0]))]
        parts = [part for part in parts if part.shape[-1]]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

    def _observed_features(self, X: np.ndarray, condition: Condition) -> np.ndarray:
        """Hook: (..., k) functions of the states X (..., dX) under ``condition`` that the policy sees besides the
        state itself (e.g. the end effector relative to the goal). Default: none (k = 0)."""
        return np.zeros((*X.shape[:-1], 0))

    def _observed_extra(self, condition: Condition) -> np.ndarray:
        """Hook: what a policy must know about a condition beyond the state. Default: the condition's goal
        point when it has one (peg slot, octopus target: their conditions share the initial state, so a
        policy on the state alone could not tell them apart), else nothing."""
        return np.zeros(0) if condition.target is None else condition.target

    # cost, success, initial controller --------------------------------------------------------------------
    def cost_for(self, condition: ConditionLike = 0) -> Cost:
        """The :class:`~gpsx.costs.Cost` of one condition: ``cost(X, U)`` and ``cost.derivatives(X, U)``."""
        c = self.condition(condition)
        if c not in self._costs:
            self._costs[c] = Cost(self._cost_terms(c), self.dX, self.dU)
        return self._costs[c]

    @abc.abstractmethod
    def _cost_terms(self, condition: Condition) -> list[CostTerm]:
        """The Appendix-B cost terms of this task for one condition."""

    @abc.abstractmethod
    def success(self, X: np.ndarray, condition: ConditionLike = 0) -> np.ndarray:
        """(n,) bool: which samples X (n, T, dX) solved the task."""

    @abc.abstractmethod
    def initial_controller(self, condition: ConditionLike = 0) -> LinearGaussianController:
        """A controller that is safe to sample from before any learning."""

    def trace(self, X: np.ndarray, condition: ConditionLike = 0) -> Trace:
        """The picture of rollouts X (n, T, dX) that ``gpsx plot`` draws. Default: the first two coordinates of
        qpos; tasks override it with what matters (a tip and its goal, a body's path)."""
        X = self._check_X(X)
        return Trace(X[..., :2], "qpos[0]", "qpos[1]", equal_axes=False)

    # sampling ---------------------------------------------------------------------------------------------
    def simulator(self, condition: ConditionLike, n: int, backend: str = "auto") -> Simulator:
        """A (cached) :class:`~gpsx.sampling.Simulator` of n copies of the condition's model."""
        c = self.condition(condition)
        key = (c, int(n), backend)
        if key not in self._sims:
            self._sims[key] = Simulator(self.model_for(c), n, self.substeps, backend=backend)
        return self._sims[key]

    def sample(self, policy: object, condition: ConditionLike = 0, n: int = 5, seed: int | None = 0,
               noise: bool = True, backend: str = "auto") -> Rollouts:
        """n samples from the condition's initial state, with their validity mask (never raises on divergence)."""
        c = self.condition(condition)
        sim = self.simulator(c, n, backend)
        return _rollout(sim, policy, c.x0, self.T, seed=seed, noise=noise)

    def rollout(self, policy: object, condition: ConditionLike = 0, n: int = 5, seed: int | None = 0,
                noise: bool = True, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """n samples X (n, T, dX), applied actions U (n, T, dU) under a controller or :class:`~gpsx.sampling.Policy`.

        Exploration noise u_t = K_t x_t + k_t + chol(cov_t) ε_t is seeded by ``seed``; ``noise=False`` gives the
        mean behaviour. Raises :class:`~gpsx.errors.RolloutDivergedError` if any sample diverged (use
        :meth:`sample` to get a validity mask instead).
        """
        r = self.sample(policy, condition, n, seed, noise, backend).check()
        return r.X, r.U

    # helpers for subclasses -------------------------------------------------------------------------------
    def _check_X(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 2:
            X = X[None]
        if X.ndim != 3 or X.shape[2] != self.dX:
            raise ShapeError(f"expected (n, T, {self.dX}), got {X.shape}", array="X")
        return X

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name}: dX={self.dX} dU={self.dU} T={self.T} dt={self.dt} "
                f"substeps={self.substeps} conditions={len(self.train_conditions)} train + "
                f"{len(self.test_conditions)} test>")


def actuated_dofs(model: mujoco.MjModel) -> np.ndarray:
    """For every actuator, the dof (= qpos index here, nq == nv) of the joint it drives."""
    if not (model.actuator_trntype == mujoco.mjtTrn.mjTRN_JOINT).all():
        raise ValueError("hold_pose_controller needs joint actuators")
    return model.jnt_dofadr[model.actuator_trnid[:, 0]]


def gravity_torques(model: mujoco.MjModel, qpos: np.ndarray) -> np.ndarray:
    """Controls that cancel gravity (and passive forces) at rest in configuration ``qpos``: qfrc_bias / gear."""
    d = mujoco.MjData(model)
    d.qpos[:] = qpos
    mujoco.mj_forward(model, d)
    dofs = actuated_dofs(model)
    return (d.qfrc_bias[dofs] - d.qfrc_passive[dofs]) / model.actuator_gear[:, 0]


def hold_pose_controller(model: mujoco.MjModel, T: int, x_ref: np.ndarray, kp: np.ndarray | float,
                         kd: np.ndarray | float, variance: float | np.ndarray, *,
                         gravity_compensation: bool = True) -> LinearGaussianController:
    """Damped PD holding the actuated joints at ``x_ref``: u = kp (q_ref − q) − kd q̇ + u_g + noise.

    ``u_g`` cancels gravity at q_ref (when ``gravity_compensation``); ``variance`` is the exploration noise
    variance per actuator (scalar or (dU,)), in control units squared.
    """
    nq, nu = model.nq, model.nu
    dofs = actuated_dofs(model)
    kp = np.broadcast_to(np.asarray(kp, dtype=float), (nu,))
    kd = np.broadcast_to(np.asarray(kd, dtype=float), (nu,))
    gear = model.actuator_gear[:, 0]
    K = np.zeros((nu, nq + model.nv))
    K[np.arange(nu), dofs] = -kp / gear
    K[np.arange(nu), nq + dofs] = -kd / gear
    k = kp / gear * x_ref[dofs]
    if gravity_compensation:
        k = k + gravity_torques(model, x_ref[:nq])
    var = np.broadcast_to(np.asarray(variance, dtype=float), (nu,))
    cov = np.broadcast_to(np.diag(var), (T, nu, nu))
    return LinearGaussianController(np.broadcast_to(K, (T, nu, nq + model.nv)), np.broadcast_to(k, (T, nu)), cov)
