"""swimmer: a 3-link swimmer in a viscous fluid (Appendix B, swimming).

Model (``assets/swimmer.xml``): three capsules 0.5 m long (r 5 cm, 3.9 kg each) in the x–y plane, no gravity,
MuJoCo's ellipsoid fluid model (fluid density 1000 kg/m³, viscosity 0.1) giving anisotropic drag on each link.
The head carries slide x, slide y and a heading hinge (global position and orientation free); two body
joints (range ±1.75 rad, passive spring 40 N·m/rad, damping 0.05) are driven by motors, gear 1, torques
clipped to ±40 N·m. qpos = [x, y, heading, joint1, joint2]. dt = 0.05 s (20 Hz) = 5 RK4 substeps of 0.01 s,
T = 400 (20 s).

Cost (Appendix B): ½·2e-5‖u‖² + ½(v_x − 2.0)², v_x = qvel of the x slide (state index 5).
Success: the head moved forward (+x) by at least ``SUCCESS_DISTANCE`` = 1.0 m over the horizon (an
open-loop travelling-wave gait, 30 N·m at 1 Hz, makes about 4.7 m).

Conditions (initial states at rest; (heading, joint1, joint2) in rad): train (0, 0, 0), (0, 0.3, −0.3),
(0, −0.3, 0.3), (0.2, 0, 0); test (0.1, 0.15, −0.15), (−0.1, −0.15, 0.15), (−0.2, 0.1, 0.1).

Initial controller: damped PD towards straight joints, kp = 5 N·m/rad, kd = 1 N·m·s/rad, plus an open-loop
*standing* wave u_t = ``WAVE_TORQUE`` · sin(2π ``WAVE_HZ`` t) · (1, −1) (20 N·m at 1.5 Hz, the two joints in
antiphase), exploration noise variance 10 (N·m)² per joint, white in time.
Why the wave: thrust is bilinear in joint angle × lateral velocity. Around a straight, motionless body the
time-varying linear models fitted to a zero-mean, symmetric sample cloud have no first-order path from the
torques to v_x, and the trajectory optimisation has nothing to follow (with the PD alone the cost stayed flat
and the head moved −0.14..−0.05 m in 15 iterations). The antiphase wave drives the joint angles towards
(θ, −θ), a shape that is point-symmetric about the centre of the middle link, so swimming head first and tail
first are the same motion and the wave produces no net thrust itself (|distance| ≤ 2 cm on every condition).
But the body moves with a large amplitude, and shifting the phase of one joint towards a travelling wave
changes the thrust to first order. Forward motion of the learned controllers is therefore learned, not given.
"""
from __future__ import annotations

import numpy as np

from ..containers import LinearGaussianController
from ..costs import ActionPenalty, StateTarget
from .base import Condition, ConditionLike, Task, Trace, hold_pose_controller, load_model

TARGET_VX, ACTION_WEIGHT = 2.0, 2e-5
SUCCESS_DISTANCE = 1.0  # m along +x over the horizon
TRAIN = ((0.0, 0.0, 0.0), (0.0, 0.3, -0.3), (0.0, -0.3, 0.3), (0.2, 0.0, 0.0))
TEST = ((0.1, 0.15, -0.15), (-0.1, -0.15, 0.15), (-0.2, 0.1, 0.1))
INIT_KP, INIT_KD, INIT_VARIANCE = 5.0, 1.0, 10.0
WAVE_TORQUE, WAVE_HZ = 20.0, 1.5  # the initial controller's open-loop antiphase standing wave (N·m, Hz)


class Swimmer(Task):
    name = "swimmer"

    def __init__(self):
        model = load_model("swimmer.xml")

        def cond(h, j1, j2):
            x0 = np.zeros(2 * model.nq)
            x0[2:5] = h, j1, j2
            return Condition(f"heading={h} joints=({j1}, {j2})", x0)

        super().__init__(model, T=400, dt=0.05, substeps=5,
                         train=[cond(*c) for c in TRAIN], test=[cond(*c) for c in TEST])

    def _cost_terms(self, condition: Condition):
        return [ActionPenalty(ACTION_WEIGHT), StateTarget(self.nq + 0, TARGET_VX)]

    def forward_distance(self, X: np.ndarray) -> np.ndarray:
        """x displacement of the head over the horizon, (n,)."""
        X = self._check_X(X)
        return X[:, -1, 0] - X[:, 0, 0]

    def success(self, X: np.ndarray, condition: ConditionLike = 0) -> np.ndarray:
        return self.forward_distance(X) >= SUCCESS_DISTANCE

    def trace(self, X: np.ndarray, condition: ConditionLike = 0) -> Trace:
        """The head's path in the plane."""
        return Trace(self._check_X(X)[..., :2], "x [m]", "y [m]")

    def initial_controller(self, condition: ConditionLike = 0) -> LinearGaussianController:
        """PD towards straight joints plus the open-loop antiphase standing wave (module docstring); the same
        for every condition."""
        self.condition(condition)  # validates the index
        pd = hold_pose_controller(self.model, self.T, np.zeros(self.dX), INIT_KP, INIT_KD, INIT_VARIANCE,
                                  gravity_compensation=False)
        return LinearGaussianController(pd.K, pd.k + standing_wave(self.T, self.dt), pd.cov)


def standing_wave(T: int, dt: float) -> np.ndarray:
    """(T, 2) joint torques ``WAVE_TORQUE`` · sin(2π ``WAVE_HZ`` t) · (1, −1) at t = 0, dt, ..., (T − 1) dt."""
    phase = 2 * np.pi * WAVE_HZ * dt * np.arange(T)
    return WAVE_TORQUE * np.sin(phase)[:, None] * np.array([1.0, -1.0])
