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

Observations: the policy sees the state and, per leg, how far the torso centre is ahead of the ankle and the
foot's height above the floor (:func:`leg_geometry`), dO = 22.

Conditions (initial states, standing with feet on the floor): train: still, leaning forward 0.05 rad, moving
forward at 0.3 m/s, leaning back 0.05 rad; test: leaning 0.025 rad, moving at 0.15 m/s, leaning −0.025 rad
with 0.15 m/s.

Initial controller: a walking gait, the feedback law of a SIMBICON-style state machine (Yin, Loken & van de
Panne 2007) linearised along its own rollout. The machine (:class:`Gait`, :func:`gait_torques`) alternates
stance legs, starting with the right; a step ends when the swing foot touches the floor after ``min_step`` or
at ``max_step``. During a step:
- the torso is held at a forward lean by a PD on its pitch whose torque the stance hip supplies (minus the
  swing hip's torque, so the torso gets exactly the PD's);
- the swing thigh is driven to an angle forward of vertical that grows with how far the torso centre is
  ahead of the stance ankle (the balance feedback of foot placement);
- the swing knee flexes for ``lift`` s, then extends part-way; the stance knee is held straight;
- the swing foot is kept at a fixed angle to the floor, the stance ankle at a fixed joint angle.
:meth:`Walker.initial_controller` rolls the machine out once, noise-free, from the condition's initial state,
records which leg was in stance and whether the swing knee was flexing at each step, and linearises the
feedback law at each step of that rollout (central differences) into u = K_t x + k_t, so that the linear
controller's noise-free rollout is the machine's. Exploration noise
variance ``INIT_VARIANCE`` = 10 (N·m)² per actuator, white in time.
From every condition the gait walks about 6 m in 5 s (a step of ≈ 0.45 m every ≈ 0.4 s, 1.1–1.7 m/s, torso
centre 1.10–1.16 m), and the linear controller does so under its exploration noise too. The gains were found
by a short random search on the cost of the linear controllers' noisy rollouts on the training conditions
(falls penalised), then rounded.
Why: from a gait that does not walk (a PD holding the standing pose; the same PD stepping in place) the
learned controllers moved forward 0.8–1.4 m by lunging, and condition 2 learned to fall forward: under the
cost ½(v_x − 2.1)² + ½(p_z − 1.1)² falling forward is cheaper per step than standing still, and the local
models saw no walking to improve on.
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from ..containers import LinearGaussianController
from ..costs import ActionPenalty, StateTarget
from .base import Condition, ConditionLike, Task, Trace, load_model

TARGET_VX, TARGET_Z, ACTION_WEIGHT = 2.1, 1.1, 1e-4
SUCCESS_DISTANCE, MIN_HEIGHT, MAX_PITCH = 2.0, 0.8, 1.0
X, Z, PITCH = 0, 1, 2
NQ = 9  # qpos entries; the state is [qpos, qvel]
INIT_VARIANCE = 10.0
# lengths of assets/walker.xml (m): torso centre to hips, thigh, shin; foot behind and in front of the ankle, radius
HIP_DROP, THIGH, SHIN = 0.2, 0.45, 0.45
FOOT_BACK, FOOT_FRONT, FOOT_RADIUS = 0.06, 0.16, 0.05
TOUCHDOWN = 0.003  # m: a swing foot this close to the floor has landed
# (pitch, forward velocity) of the initial states
TRAIN = ((0.0, 0.0), (0.05, 0.0), (0.0, 0.3), (-0.05, 0.0))
TEST = ((0.025, 0.0), (0.0, 0.15), (-0.025, 0.15))


@dataclass(frozen=True)
class Gait:
    """Settings of the initial controller's walking state machine (module docstring): angles in rad (the swing
    thigh's from the vertical, the swing foot's from the floor), times in s, gains in N·m/rad and N·m·s/rad."""

    min_step: float = 0.18  # a step ends when the swing foot lands after min_step, or at max_step
    max_step: float = 0.55
    lift: float = 0.17  # the swing knee flexes this long, then extends
    torso: float = 0.10  # torso pitch target (forward lean)
    kp_torso: float = 480.0
    kd_torso: float = 13.0
    swing_hip: float = 0.29  # swing thigh forward of vertical, plus placement · (torso ahead of stance ankle, m)
    placement: float = 1.0
    kp_hip: float = 320.0
    kd_hip: float = 13.0
    swing_knee: float = 0.95  # swing knee flexion while lifting, then swing_knee_late
    swing_knee_late: float = 0.30
    kp_knee: float = 100.0  # towards those; the stance knee towards straight (0)
    kd_knee: float = 17.0
    swing_foot: float = 0.06  # swing foot angle to the floor, toes down
    stance_ankle: float = -0.24  # stance ankle joint angle (negative: shin leaning forward over a flat foot)
    kp_ankle: float = 120.0
    kd_ankle: float = 3.5


def standing_height(model: mujoco.MjModel) -> float:
    """Torso-centre height with straight legs and the feet flat on the floor."""
    d = mujoco.MjData(model)
    mujoco.mj_kinematics(model, d)
    foot = model.geom("foot_r")
    return -(d.geom_xpos[foot.id][2] - foot.size[0])


class Walker(Task):
    name = "walker"

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

    def _observed_features(self, X_: np.ndarray, condition: Condition) -> np.ndarray:
        """Per leg (right, left): how far the torso centre is ahead of the ankle and how high the foot is
        (:func:`leg_geometry`). The gait switches on foot contact; a network on the state alone did not pick that
        up (behaviour cloning of the gait, docs/results.md)."""
        right, left = leg_geometry(X_, 0), leg_geometry(X_, 1)
        return np.stack([*right, *left], axis=-1)

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
        """The walking gait of :class:`Gait` from this condition's initial state, linearised along its rollout
        (module docstring)."""
        machine = GaitMachine(Gait(), self.dt)
        X_, _ = self.rollout(machine, condition, n=1, noise=False)
        K, k = linearize_gait(machine.gait, X_[0], *machine.schedule())
        cov = np.broadcast_to(INIT_VARIANCE * np.eye(self.dU), (self.T, self.dU, self.dU))
        return LinearGaussianController(K, k, cov)


def leg_geometry(X_: np.ndarray, leg: int) -> tuple[np.ndarray, np.ndarray]:
    """For states X_ (..., dX) and a leg (0 right, 1 left): how far the torso centre is ahead of the leg's ankle,
    and the height of the lowest point of its foot above the floor (m; planar kinematics of the asset)."""
    q = X_[..., :NQ]
    hip = 3 + 3 * leg
    pitch = q[..., PITCH]
    thigh = pitch + q[..., hip]  # link angles from the vertical, positive with the foot behind
    shin = thigh + q[..., hip + 1]
    foot = shin + q[..., hip + 2]  # from the floor, toes down
    ahead = HIP_DROP * np.sin(pitch) + THIGH * np.sin(thigh) + SHIN * np.sin(shin)
    ankle = q[..., Z] - HIP_DROP * np.cos(pitch) - THIGH * np.cos(thigh) - SHIN * np.cos(shin)
    lowest = ankle - np.maximum(-FOOT_BACK * np.sin(foot), FOOT_FRONT * np.sin(foot)) - FOOT_RADIUS
    return ahead, lowest


def gait_torques(gait: Gait, X_: np.ndarray, stance: np.ndarray, lifting: np.ndarray) -> np.ndarray:
    """(n, 6) torques of the state machine at states X_ (n, dX), with ``stance`` (n,) the stance leg (0 right,
    1 left) and ``lifting`` (n,) whether the swing knee is in its flexing phase (module docstring)."""
    pitch, pitch_rate = X_[:, PITCH], X_[:, NQ + PITCH]
    st, sw = _leg_columns(stance), _leg_columns(1 - stance)  # (n, 3) action columns: hip, knee, ankle
    rows = np.arange(len(X_))[:, None]
    q, v = X_[:, 3:NQ], X_[:, NQ + 3:]  # joint angles and rates, in action order
    qs, vs, qw, vw = q[rows, st], v[rows, st], q[rows, sw], v[rows, sw]
    ahead = np.where(stance == 0, leg_geometry(X_, 0)[0], leg_geometry(X_, 1)[0])
    torso = gait.kp_torso * (gait.torso - pitch) - gait.kd_torso * pitch_rate  # wanted torque on the torso
    thigh = -(gait.swing_hip + gait.placement * ahead) - pitch  # the swing hip's target
    swing_hip = gait.kp_hip * (thigh - qw[:, 0]) - gait.kd_hip * (vw[:, 0] + pitch_rate)
    knee = np.where(lifting, gait.swing_knee, gait.swing_knee_late)
    foot, foot_rate = pitch + qw.sum(axis=1), pitch_rate + vw.sum(axis=1)
    u = np.empty((len(X_), 6))
    u[rows, sw] = np.stack([swing_hip,
                            gait.kp_knee * (knee - qw[:, 1]) - gait.kd_knee * vw[:, 1],
                            gait.kp_ankle * (gait.swing_foot - foot) - gait.kd_ankle * foot_rate], axis=1)
    u[rows, st] = np.stack([-torso - swing_hip,  # the hips' reactions on the torso sum to the PD's torque
                            -gait.kp_knee * qs[:, 1] - gait.kd_knee * vs[:, 1],
                            gait.kp_ankle * (gait.stance_ankle - qs[:, 2]) - gait.kd_ankle * vs[:, 2]], axis=1)
    return u


def _leg_columns(leg: np.ndarray) -> np.ndarray:
    """(n, 3) action columns (hip, knee, ankle) of the legs ``leg`` (n,), 0 right, 1 left."""
    return 3 * leg[:, None] + np.arange(3)


class GaitMachine:
    """The state machine as a :class:`~gpsx.sampling.Policy` (noise ignored), recording its phases.

    A step ends when the swing foot lands (lowest point within ``TOUCHDOWN`` of the floor) after
    ``gait.min_step``, or at ``gait.max_step``; the right leg is in stance first.
    """

    def __init__(self, gait: Gait, dt: float):
        self.gait, self.dt = gait, dt
        self._stance: list[np.ndarray] = []
        self._lifting: list[np.ndarray] = []

    def act(self, x: np.ndarray, t: int, noise: np.ndarray) -> np.ndarray:
        if t == 0:
            self._stance, self._lifting = [], []
            self._leg, self._since = np.zeros(len(x), dtype=int), np.zeros(len(x))
        swing = 1 - self._leg
        landed = np.where(swing == 0, leg_geometry(x, 0)[1], leg_geometry(x, 1)[1]) < TOUCHDOWN
        swap = (landed & (self._since >= self.gait.min_step)) | (self._since >= self.gait.max_step)
        self._leg, self._since = np.where(swap, swing, self._leg), np.where(swap, 0.0, self._since)
        lifting = self._since < self.gait.lift
        self._stance.append(self._leg)
        self._lifting.append(lifting)
        self._since = self._since + self.dt
        return gait_torques(self.gait, x, self._leg, lifting)

    def schedule(self) -> tuple[np.ndarray, np.ndarray]:
        """The stance leg and the lifting flag of the first sample at every step of the last rollout, (T,) each."""
        return np.array(self._stance)[:, 0], np.array(self._lifting)[:, 0]


def linearize_gait(gait: Gait, X_: np.ndarray, stance: np.ndarray, lifting: np.ndarray,
                   eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """K (T, 6, dX), k (T, 6) with K_t x + k_t the first-order expansion of :func:`gait_torques` at the states
    X_ (T, dX) under the phases ``stance``, ``lifting`` (T,): central differences of step ``eps``."""
    T, dX = X_.shape
    shifts = np.concatenate([np.zeros((1, dX)), eps * np.eye(dX), -eps * np.eye(dX)])  # (1 + 2 dX, dX)
    points = (X_[:, None, :] + shifts).reshape(-1, dX)
    U = gait_torques(gait, points, np.repeat(stance, len(shifts)), np.repeat(lifting, len(shifts)))
    U = U.reshape(T, len(shifts), -1)
    K = np.swapaxes(U[:, 1: 1 + dX] - U[:, 1 + dX:], 1, 2) / (2 * eps)
    return K, U[:, 0] - np.einsum("tud,td->tu", K, X_)
