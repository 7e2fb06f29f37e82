"""walker: a planar biped, torso + two 3-link legs (Appendix B, walking).

Model (``assets/walker.xml``): x–z plane under gravity. Torso capsule 0.4 m (r 6 cm) on slide x, slide z and a
pitch hinge (qpos[1] is the height of the torso centre: 1.15 m standing); per leg a hip (range −1.8..0.6 rad),
thigh 0.45 m, knee (0..2.5 rad), shin 0.45 m, ankle (±0.8 rad) and a foot capsule 0.22 m. Joint damping 0.5,
armature 0.02, friction 0.9; the legs collide with the floor only. Six motors, gear 1, torques clipped to
±150 (hips, knees) and ±80 (ankles) N·m. dt = 0.01 s (100 Hz) = 5 implicitfast substeps of 2 ms, T = 500.
qpos = [x, z, pitch, hip_r, knee_r, ankle_r, hip_l, knee_l, ankle_l].

Cost (Appendix B): ½·1e-4‖u‖² + ½(v_x − 2.1)² + ½(p_z − 1.1)², v_x = qvel[x] (state 9), p_z = qpos[z] (state 1).
Success: moved forward at least ``SUCCESS_DISTANCE`` = 2.0 m and stayed upright (torso centre above
``MIN_HEIGHT`` = 0.8 m and |pitch| < ``MAX_PITCH`` = 1.0 rad at every step).

Conditions (initial states, standing with feet on the floor): train: still, leaning forward 0.05 rad, moving
forward at 0.3 m/s, leaning back 0.05 rad; test: leaning 0.025 rad, moving at 0.15 m/s, leaning −0.025 rad
with 0.15 m/s.

Initial controller: stepping in place. A PD with gravity compensation (computed at the straight standing pose),
kp = 150 N·m/rad on every joint, kd = 10 (hips, knees) and 5 (ankles) N·m·s/rad, tracks the standing pose plus
the open-loop offsets of :func:`stepping_offsets`: at ``STEP_HZ`` = 1 Hz the legs take turns lifting the foot
(hip −s, knee +2s, ankle −s with s = ``STEP_ANGLE`` · max(0, ±sin 2πft), ``STEP_ANGLE`` = 0.25 rad), which
keeps the lifted foot level under the hip and raises it by about 2.5 cm. Exploration noise variance 10 (N·m)²
per actuator, white in time.
Why: the PD holding the standing pose alone stays upright, but its samples barely move, and the controllers
learned from them moved 8–15 cm in 15 iterations. Stepping in place gives the local models a moving
trajectory with foot contacts to linearise around, whose step timing and placement the optimisation can
shift. The feet are not fore–aft symmetric (0.16 m of foot in front of the ankle, 0.06 m behind), so stepping
in place itself drifts forward by 0.2–0.4 m over the horizon. It stays upright from every condition under the
exploration noise.
"""
from __future__ import annotations

import mujoco
import numpy as np

from ..containers import LinearGaussianController
from ..costs import ActionPenalty, StateTarget
from .base import Condition, ConditionLike, Task, Trace, hold_pose_controller, load_model

TARGET_VX, TARGET_Z, ACTION_WEIGHT = 2.1, 1.1, 1e-4
SUCCESS_DISTANCE, MIN_HEIGHT, MAX_PITCH = 2.0, 0.8, 1.0
X, Z, PITCH = 0, 1, 2
INIT_VARIANCE = 10.0
STEP_ANGLE, STEP_HZ = 0.25, 1.0  # the initial controller's stepping in place (rad, Hz)
# (pitch, forward velocity) of the initial states
TRAIN = ((0.0, 0.0), (0.05, 0.0), (0.0, 0.3), (-0.05, 0.0))
TEST = ((0.025, 0.0), (0.0, 0.15), (-0.025, 0.15))


def standing_height(model: mujoco.MjModel) -> float:
    """Torso-centre height with straight legs and the feet flat on the floor."""
    d = mujoco.MjData(model)
    mujoco.mj_kinematics(model, d)
    foot = model.geom("foot_r")
    return -(d.geom_xpos[foot.id][2] - foot.size[0])


class Walker(Task):
    name = "walker"
    # standing PD (hip, knee, ankle per leg). The ankles carry the balance: their stiffness must exceed the
    # toppling stiffness m·g·h ≈ 23 kg · 9.81 · 0.75 m / 2 ≈ 85 N·m/rad per ankle, and kd·dt stays ≪ inertia.
    kp = np.array([150.0, 150.0, 150.0, 150.0, 150.0, 150.0])
    kd = np.array([10.0, 10.0, 5.0, 10.0, 10.0, 5.0])

    def __init__(self):
        model = load_model("walker.xml")
        z0 = standing_height(model) + 0.001

        def cond(pitch, vx):
            x0 = np.zeros(2 * model.nq)
            x0[Z], x0[PITCH] = z0, pitch
            x0[3], x0[6] = -pitch, -pitch  # hips compensate: legs stay vertical, feet flat
            x0[model.nq + X] = vx
            return Condition(f"pitch={pitch} vx={vx}", x0)

        super().__init__(model, T=500, dt=0.01, substeps=5,
                         train=[cond(*c) for c in TRAIN], test=[cond(*c) for c in TEST])

    def _cost_terms(self, condition: Condition):
        return [ActionPenalty(ACTION_WEIGHT), StateTarget(self.nq + X, TARGET_VX), StateTarget(Z, TARGET_Z)]

    def forward_distance(self, X_: np.ndarray) -> np.ndarray:
        X_ = self._check_X(X_)
        return X_[:, -1, X] - X_[:, 0, X]

    def upright(self, X_: np.ndarray) -> np.ndarray:
        """(n,) bool: torso high enough and not tipped over at every step."""
        X_ = self._check_X(X_)
        return (X_[:, :, Z] > MIN_HEIGHT).all(axis=1) & (np.abs(X_[:, :, PITCH]) < MAX_PITCH).all(axis=1)

    def trace(self, X_: np.ndarray, condition: ConditionLike = 0) -> Trace:
        """The torso centre's path in the x–z plane (height on the vertical axis, so falls show)."""
        return Trace(self._check_X(X_)[..., [X, Z]], "x [m]", "torso height z [m]", equal_axes=False)

    def success(self, X_: np.ndarray, condition: ConditionLike = 0) -> np.ndarray:
        return (self.forward_distance(X_) >= SUCCESS_DISTANCE) & self.upright(X_)

    def initial_controller(self, condition: ConditionLike = 0) -> LinearGaussianController:
        """Stepping in place (module docstring): the standing PD with its reference moved by
        :func:`stepping_offsets`; the same for every condition."""
        self.condition(condition)  # validates the index
        x_stand = np.zeros(self.dX)
        x_stand[Z] = standing_height(self.model)
        pd = hold_pose_controller(self.model, self.T, x_stand, self.kp, self.kd, INIT_VARIANCE)
        # u = kp (q_ref + Δq_t − q) − kd q̇ + u_g: the offsets enter the open-loop term only (gear 1)
        return LinearGaussianController(pd.K, pd.k + self.kp * stepping_offsets(self.T, self.dt), pd.cov)


def stepping_offsets(T: int, dt: float) -> np.ndarray:
    """(T, 6) joint-angle offsets (hip, knee, ankle of the right leg, then the left) for stepping in place.

    The right leg lifts while sin(2π ``STEP_HZ`` t) > 0, the left while it is < 0, each by s = ``STEP_ANGLE`` ·
    |sin|: hip −s (thigh forward), knee +2s (flexed), ankle −s (foot level).
    """
    wave = np.sin(2 * np.pi * STEP_HZ * dt * np.arange(T))
    offsets = np.zeros((T, 6))
    for leg, lift in enumerate((np.maximum(wave, 0.0), np.maximum(-wave, 0.0))):
        s = STEP_ANGLE * lift
        offsets[:, 3 * leg: 3 * leg + 3] = np.stack([-s, 2 * s, -s], axis=1)
    return offsets

