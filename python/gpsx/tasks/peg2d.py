"""peg2d: planar 3-link arm inserting a peg into a slot (Appendix B, 2D peg insertion).

Model (``assets/peg2d.xml``): arm in the x–z plane under gravity, shoulder 0.6 m above the floor; links 0.4 m
and 0.4 m (capsules r 3 cm, 1.24 kg each); the peg (0.2 m, r 2 cm) hangs from a **passive** wrist hinge with
damping 0.5 N·m·s/rad (the other joints 1.0), armature 0.05. Motors on shoulder and elbow, gear 1, controls are
torques clipped to ±30 / ±20 N·m. Slot: 6 cm wide (1 cm clearance each side), 10 cm deep, walls 20 cm thick.
dt = 0.01 s, one physics step per control step (implicitfast), T = 800. State [q1 q2 q3 q̇1 q̇2 q̇3].

Conditions: the slot at x = 0.35, 0.43, 0.51, 0.59 m (train) and every 2 cm between them, 0.37–0.57 m without
the training slots (9 test slots, inside the training range: a held-out success rate in steps of 11 %, not
33 %). Every condition starts at rest with the peg hanging vertically, its tip 0.3 m up at x = 0.47 m.

Observations: the state and the tip's offset from the slot bottom in the arm's plane (x, z) (dO = 8).

Initial controller: damped PD on shoulder and elbow holding the start pose with gravity compensation,
kp = 60 N·m/rad, kd = 8 N·m·s/rad, exploration noise variance 1.0 (N·m)² per actuator.
"""
from __future__ import annotations

import numpy as np

from .base import Condition, ConditionLike, hold_pose_controller, load_model
from .peg import PegTask, peg_ik, slot_target

TRAIN_SLOTS = (0.35, 0.43, 0.51, 0.59)
TEST_SLOTS = (0.37, 0.39, 0.41, 0.45, 0.47, 0.49, 0.53, 0.55, 0.57)
START_TIP = np.array([0.47, 0.0, 0.30])
INIT_KP, INIT_KD, INIT_VARIANCE = 60.0, 8.0, 1.0


class Peg2D(PegTask):
    name = "peg2d"
    script_kp = np.array([150.0, 100.0])
    script_kd = np.array([12.0, 8.0])
    observed_axes = (0, 2)
    observes_slot = False

    def __init__(self):
        model = load_model("peg2d.xml")
        q0 = peg_ik(model, START_TIP, np.array([0.6, 0.9, -1.5]))
        x0 = np.concatenate([q0, np.zeros(model.nv)])

        def cond(name, x):
            slot = np.array([x, 0.0, 0.0])
            return Condition(name, x0.copy(), slot_target(model, slot), {"slot": slot})

        super().__init__(model, T=800, dt=0.01, substeps=1,
                         train=[cond(f"slot_x={x}", x) for x in TRAIN_SLOTS],
                         test=[cond(f"slot_x={x}", x) for x in TEST_SLOTS])

    def initial_controller(self, condition: ConditionLike = 0):
        c = self.condition(condition)
        return hold_pose_controller(self.model_for(c), self.T, c.x0, INIT_KP, INIT_KD, INIT_VARIANCE)
