"""What peg2d and peg3d share: the slot that moves per condition, the Appendix-B cost, success, IK and a script.

Cost (Appendix B, w_p = 1): ½·1e-6‖u‖² + ℓ12(p_tip − p*), p_tip = site ``tip`` (end of the peg), p* = site
``target`` (centre of the slot/hole bottom) of the condition's model. Conditions move the body ``slot`` (the
slot/hole and its ``target`` site) to ``params["slot"]``.

Observations: the state and the tip's offset p_tip − p* on ``observed_axes``, and the slot bottom p* itself
where ``observes_slot``. Without the offset the policy must learn the arm's kinematics to find a slot it was not
trained on; with it, it solves more held-out slots (docs/results.md, issue 6, session 11). With the offset, p*
(four values in training) is redundant: without it the peg2d policies solve every held-out slot on more seeds,
the peg3d ones fewer holes (issue 6, session 15). So peg2d does not observe p*, and peg3d does.

Success (DESIGN §5, "tip within 1 cm of the slot bottom at the end"): the distance from the final tip to the slot
bottom, the floor between the walls' inner faces (:func:`slot_half_widths`), is below 1 cm. The distance is to the
floor, not to its centre p*: the slot is 2 cm wider than the peg, so a peg pushed fully in and resting against a
wall ends 10–15 mm from p* (more when it tilts), and a test on ‖p_tip − p*‖ counted such pegs as misses.
"""
from __future__ import annotations

import copy

import mujoco
import numpy as np
from scipy.optimize import least_squares

from ..costs import ActionPenalty, PointTarget, SitePoint
from .base import Condition, ConditionLike, Task, Trace, actuated_dofs

SUCCESS_RADIUS = 0.01  # m
ACTION_WEIGHT = 1e-6


def slot_half_widths(model: mujoco.MjModel) -> np.ndarray:
    """Half-widths (x, y) of the slot floor: per axis, the nearest inner face of the walls of body ``slot`` that
    flank the slot along it (a wall flanks along an axis if its box lies wholly to one side); ``inf`` along an axis
    no wall bounds (peg2d's slot is open along y, the arm moves in the x–z plane)."""
    slot = model.body("slot").id
    walls = [g for g in range(model.ngeom)
             if model.geom_bodyid[g] == slot and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX]
    half = np.full(2, np.inf)
    for g in walls:
        pos, size = np.abs(model.geom_pos[g][:2]), model.geom_size[g][:2]
        beside = pos > size
        half[beside] = np.minimum(half[beside], (pos - size)[beside])
    return half


def slot_target(model: mujoco.MjModel, slot_pos: np.ndarray) -> np.ndarray:
    """World position of the slot bottom when the (unrotated) body ``slot`` sits at ``slot_pos``."""
    site = model.site("target")
    return np.asarray(slot_pos, dtype=float) + model.site_pos[site.id]


def peg_ik(model: mujoco.MjModel, tip_goal: np.ndarray, q_init: np.ndarray, axis_weight: float = 1.0,
           reg: float = 1e-2) -> np.ndarray:
    """Joint positions that put the site ``tip`` at ``tip_goal`` with the peg pointing straight down.

    The peg axis is the direction from the peg body's origin to the tip. Least squares with a small pull towards
    ``q_init`` (``reg``) to pick the branch near it; respects joint ranges.
    """
    d = mujoco.MjData(model)
    tip = model.site("tip").id
    peg = model.body("peg").id
    down = np.array([0.0, 0.0, -1.0])

    def residual(q):
        d.qpos[:] = q
        mujoco.mj_kinematics(model, d)
        p = d.site_xpos[tip]
        a = p - d.xpos[peg]
        a = a / np.linalg.norm(a)
        return np.concatenate([p - tip_goal, axis_weight * (a - down), reg * (q - q_init)])

    lo, hi = model.jnt_range.T
    lo = np.where(model.jnt_limited, lo, -np.inf)
    hi = np.where(model.jnt_limited, hi, np.inf)
    sol = least_squares(residual, np.clip(q_init, lo + 1e-6, hi - 1e-6), bounds=(lo, hi), xtol=1e-12, ftol=1e-12)
    return sol.x


class ScriptedInsertion:
    """A hand-written insertion: PD + gravity compensation tracking an IK joint path (a test oracle and demo).

    Waypoints: the start pose → the peg vertical ``approach`` m above the slot bottom (smooth, ``t_approach`` s) →
    the slot bottom (``t_insert`` s) → hold. Torque on actuated joints: kp (q_ref − q) − kd q̇ + gravity(q).
    Acts on the batch; ``noise`` is scaled by ``noise_std`` (0 by default: a deterministic script).
    """

    def __init__(self, task: "PegTask", condition: ConditionLike, kp, kd, *, approach: float = 0.15,
                 t_approach: float = 3.0, t_insert: float = 2.5, noise_std=0.0):
        c = task.condition(condition)
        self.model = task.model_for(c)
        self.task = task
        q0 = c.x0[: task.nq]
        above = peg_ik(self.model, c.target + [0.0, 0.0, approach], q0)
        bottom = peg_ik(self.model, c.target + [0.0, 0.0, 0.002], above)  # hang 2 mm above the bottom
        steps_a = int(round(t_approach / task.dt))
        steps_i = int(round(t_insert / task.dt))
        s = lambda n: 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))[:, None]  # smooth 0 → 1
        path = [q0 + s(steps_a) * (above - q0), above + s(steps_i) * (bottom - above)]
        rest = max(task.T - steps_a - steps_i, 0)
        self.q_ref = np.concatenate(path + [np.repeat(bottom[None], rest, axis=0)])[: task.T]
        self.dofs = actuated_dofs(self.model)
        self.kp, self.kd = np.broadcast_to(kp, (task.dU,)), np.broadcast_to(kd, (task.dU,))
        self.noise_std = np.broadcast_to(np.asarray(noise_std, dtype=float), (task.dU,))
        self._data = mujoco.MjData(self.model)

    def act(self, x: np.ndarray, t: int, noise: np.ndarray) -> np.ndarray:
        nq, dofs = self.task.nq, self.dofs
        m, d = self.model, self._data
        u = np.empty((x.shape[0], len(dofs)))
        for i, xi in enumerate(x):
            d.qpos[:] = xi[:nq]
            d.qvel[:] = 0.0
            mujoco.mj_forward(m, d)  # qfrc_bias at zero velocity: gravity
            u[i] = d.qfrc_bias[dofs]
        u += self.kp * (self.q_ref[t, dofs] - x[:, dofs]) - self.kd * x[:, nq + dofs]
        return u / m.actuator_gear[:, 0] + noise * self.noise_std


class PegTask(Task):
    """Base of the peg tasks: subclasses give the model, conditions and gains."""

    #: PD gains of the scripted insertion (per actuator) and of the initial controller
    script_kp: np.ndarray
    script_kd: np.ndarray
    #: the world axes of the tip's path in :meth:`trace` (peg2d: the arm's x–z plane; peg3d: from above)
    trace_axes: tuple[int, int] = (0, 2)
    #: the world axes of the tip's offset from the slot bottom that the policy observes (peg2d: its plane)
    observed_axes: tuple[int, ...] = (0, 1, 2)
    #: whether the policy also observes the slot bottom p* (module doc)
    observes_slot: bool = True

    def __init__(self, model: mujoco.MjModel, **kwargs):
        super().__init__(model, **kwargs)
        self._tip = SitePoint(model, "tip")   # the arm alone places the tip: one model serves every condition

    def _configure_model(self, condition: Condition) -> mujoco.MjModel:
        model = copy.copy(self.model)
        model.body_pos[model.body("slot").id] = condition.params["slot"]
        return model

    def _cost_terms(self, condition: Condition):
        tip = SitePoint(self.model_for(condition), "tip")
        return [ActionPenalty(ACTION_WEIGHT), PointTarget(tip, condition.target)]

    def _observed_features(self, X: np.ndarray, condition: Condition) -> np.ndarray:
        """The tip's offset from the slot bottom on ``observed_axes``, (..., len(observed_axes))."""
        axes = list(self.observed_axes)
        return self._tips(X)[..., axes] - condition.target[axes]

    def _observed_extra(self, condition: Condition) -> np.ndarray:
        """The slot bottom p* if ``observes_slot``, else nothing (module doc)."""
        return super()._observed_extra(condition) if self.observes_slot else np.zeros(0)

    def tip_positions(self, X: np.ndarray, condition: ConditionLike = 0) -> np.ndarray:
        """Peg tip positions (n, T, 3) for samples X (n, T, dX), the same under every condition (the slot moves)."""
        self.condition(condition)   # an unknown condition is still an error
        return self._tips(self._check_X(X))

    def _tips(self, X: np.ndarray) -> np.ndarray:
        """Tip positions (..., 3) for states X (..., dX)."""
        q = np.ascontiguousarray(X[..., : self.nq].reshape(-1, self.nq))
        return self._tip.positions(q).reshape(*X.shape[:-1], 3)

    def trace(self, X: np.ndarray, condition: ConditionLike = 0) -> Trace:
        """The peg tip's path and the slot bottom, on ``trace_axes``."""
        c = self.condition(condition)
        axes = list(self.trace_axes)
        names = ("x [m]", "y [m]", "z [m]")
        return Trace(self.tip_positions(X, c)[..., axes], names[axes[0]], names[axes[1]], c.target[axes])

    def bottom_distances(self, X: np.ndarray, condition: ConditionLike = 0) -> np.ndarray:
        """Distance (m) from the final tip to the slot bottom (the floor between the walls), per sample (n,)."""
        X = self._check_X(X)
        c = self.condition(condition)
        offset = self.tip_positions(X[:, -1:], c)[:, 0] - c.target
        outside = np.maximum(np.abs(offset[:, :2]) - slot_half_widths(self.model_for(c)), 0.0)
        return np.hypot(np.linalg.norm(outside, axis=1), offset[:, 2])

    def success(self, X: np.ndarray, condition: ConditionLike = 0) -> np.ndarray:
        """Tip within 1 cm of the slot bottom at the last step (module doc)."""
        return self.bottom_distances(X, condition) < SUCCESS_RADIUS

    def scripted_policy(self, condition: ConditionLike = 0, noise_std=0.0) -> ScriptedInsertion:
        """The scripted insertion for a condition (see :class:`ScriptedInsertion`)."""
        return ScriptedInsertion(self, condition, self.script_kp, self.script_kd, noise_std=noise_std)

    def peg_contact_depths(self, X: np.ndarray, condition: ConditionLike = 0) -> np.ndarray:
        """Deepest penetration (m, ≥ 0) of the peg geom into anything, per sample and step, (n, T)."""
        X = self._check_X(X)
        m = self.model_for(condition)
        d = mujoco.MjData(m)
        peg = m.geom("peg").id
        out = np.zeros(X.shape[:2])
        for idx in np.ndindex(*X.shape[:2]):
            d.qpos[:] = X[idx][: self.nq]
            mujoco.mj_kinematics(m, d)
            mujoco.mj_collision(m, d)
            for j in range(d.ncon):
                con = d.contact[j]
                if peg in (con.geom1, con.geom2) and con.dist < 0:
                    out[idx] = max(out[idx], -con.dist)
        return out
