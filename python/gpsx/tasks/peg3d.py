"""peg3d: a 6-dof arm inserting a peg into a square hole (Appendix B, 3D peg insertion).

Model (``assets/peg3d.xml``): shoulder 0.6 m above the floor with three hinges in one body (yaw z, pitch y,
roll x: a gimbal, so qpos stays 6 angles), upper arm 0.4 m (r 3.5 cm), elbow hinge (y), forearm 0.35 m (r 3 cm),
two wrist hinges (pitch y, roll x) carrying a hand sphere and the rigid peg (0.2 m, r 2 cm). All joints damped
(1 N·m·s/rad), armature 0.05, range ±2.8 rad. Six motors, gear 1, torques clipped to ±30/±40/±30 (shoulder),
±25 (elbow), ±8/±8 (wrist) N·m. Hole: 6 cm square (1 cm clearance each side), 10 cm deep, walls 10 cm thick.
dt = 0.01 s, one physics step per control step (implicitfast), T = 800.

Conditions: hole centre (x, y) at (0.40, ±0.10), (0.50, ±0.10) m (train) and (0.45, 0.00), (0.42, 0.05),
(0.48, −0.05) m (test, inside the training square). Every condition starts at rest with the peg vertical,
its tip 0.3 m up at (0.45, 0, 0.3).

Observations: the state, the tip's offset from the hole bottom (x, y, z) and the hole bottom (dO = 18).

Initial controller: damped PD on all six joints holding the start pose with gravity compensation,
kp = (60, 60, 60, 40, 10, 10) N·m/rad, kd = kp / 8, exploration noise variance 1.0 (N·m)² (shoulder, elbow)
and 0.1 (N·m)² (wrist).
"""
from __future__ import annotations

import numpy as np

from .base import Condition, ConditionLike, hold_pose_controller, load_model
from .peg import PegTask, peg_ik, slot_target

TRAIN_HOLES = ((0.40, -0.10), (0.40, 0.10), (0.50, -0.10), (0.50, 0.10))
TEST_HOLES = ((0.45, 0.00), (0.42, 0.05), (0.48, -0.05))
START_TIP = np.array([0.45, 0.0, 0.30])
INIT_KP = np.array([60.0, 60.0, 60.0, 40.0, 10.0, 10.0])
INIT_KD = INIT_KP / 8.0
INIT_VARIANCE = np.array([1.0, 1.0, 1.0, 1.0, 0.1, 0.1])


class Peg3D(PegTask):
    name = "peg3d"
    trace_axes = (0, 1)
    script_kp = np.array([150.0, 150.0, 150.0, 100.0, 20.0, 20.0])
    script_kd = script_kp / 10.0

    def __init__(self):
        model = load_model("peg3d.xml")
        q0 = peg_ik(model, START_TIP, np.array([0.0, 0.6, 0.0, 0.9, -1.5, 0.0]))
        x0 = np.concatenate([q0, np.zeros(model.nv)])

        def cond(xy):
            slot = np.array([xy[0], xy[1], 0.0])
            return Condition(f"hole=({xy[0]}, {xy[1]})", x0.copy(), slot_target(model, slot), {"slot": slot})

        super().__init__(model, T=800, dt=0.01, substeps=1,
                         train=[cond(xy) for xy in TRAIN_HOLES], test=[cond(xy) for xy in TEST_HOLES])

    def initial_controller(self, condition: ConditionLike = 0):
        c = self.condition(condition)
        return hold_pose_controller(self.model_for(c), self.T, c.x0, INIT_KP, INIT_KD, INIT_VARIANCE)
