"""Run controllers and policies on MuJoCo models, many samples side by side.

A *policy* is any object with ``act(x, t, noise) -> u``: states x (n, dX), the time step t, standard-normal
noise (n, dU) that the policy scales by its own covariance, and actions u (n, dU). A
:class:`~gpsx.containers.LinearGaussianController` is accepted directly (u = K_t x + k_t + chol(cov_t) ε).

:func:`rollout` steps the n samples together: with ``mujoco.batch`` (MuJoCo ≥ 3.17) the n simulations advance
in one C call per control step; on older MuJoCo one ``MjData`` per sample is stepped with
``mj_step(m, d, substeps)``. Both give bit-identical results. The state is x = [qpos, qvel]; actions are clipped
to the actuators' ``ctrlrange`` and the applied (clipped) action is what U records.

Divergence is never silent: MuJoCo's warning counters (bad qpos/qvel/qacc/ctrl, after which MuJoCo resets the
simulation or zeroes the controls), its auto-reset (the simulation clock jumps back to 0, which dates the
event), non-finite states and non-finite or out-of-range (> 1e10) actions mark a sample invalid from that step
on (:class:`Rollouts` ``.valid``, ``.diverged_at``); :meth:`Rollouts.check` raises
:class:`~gpsx.errors.RolloutDivergedError`. The checks run once after the loop, on the recorded clock and
the counters, so they cost nothing per step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import mujoco
import numpy as np

from .containers import LinearGaussianController
from .errors import RolloutDivergedError, ShapeError

__all__ = ["Policy", "LinearGaussianPolicy", "as_policy", "Rollouts", "Simulator", "rollout", "ctrl_range",
           "DIVERGENCE_WARNINGS"]

try:  # mujoco >= 3.17
    from mujoco import batch as _mjbatch
except ImportError:  # pragma: no cover - exercised only on old MuJoCo
    _mjbatch = None

MJ_MAXVAL = 1e10  # MuJoCo treats |value| > mjMAXVAL as bad (resets or zeroes the controls)

#: MuJoCo warnings that mean the simulation blew up (MuJoCo then resets it, or zeroes the controls).
DIVERGENCE_WARNINGS = tuple(
    int(getattr(mujoco.mjtWarning, name))
    for name in ("mjWARN_BADQPOS", "mjWARN_BADQVEL", "mjWARN_BADQACC", "mjWARN_BADCTRL")
)


@runtime_checkable
class Policy(Protocol):
    """Anything that maps a batch of states to a batch of actions at time step t."""

    def act(self, x: np.ndarray, t: int, noise: np.ndarray) -> np.ndarray:
        """Actions (n, dU) for states x (n, dX) at step t; ``noise`` is standard normal (n, dU)."""


class LinearGaussianPolicy:
    """A :class:`LinearGaussianController` as a :class:`Policy`: u = K_t x + k_t + chol(cov_t) ε."""

    def __init__(self, controller: LinearGaussianController):
        self.controller = controller
        self._KT = np.ascontiguousarray(np.swapaxes(controller.K, 1, 2))  # (T, dX, dU)
        self._k = controller.k
        self._LT = np.ascontiguousarray(np.swapaxes(controller.chol, 1, 2))  # (T, dU, dU)

    def act(self, x: np.ndarray, t: int, noise: np.ndarray) -> np.ndarray:
        u = x @ self._KT[t]
        u += self._k[t]
        u += noise @ self._LT[t]
        return u

    def open_loop(self, noise: np.ndarray) -> np.ndarray:
        """k_t + chol(cov_t) ε_t for a whole noise array (n, T, dU) at once (the sampler's fast path)."""
        T = noise.shape[1]
        return np.einsum("ntv,tvu->ntu", noise, self._LT[:T]) + self._k[:T]


def as_policy(obj: object) -> Policy:
    """Wrap a controller as a :class:`Policy`; pass policies through."""
    if isinstance(obj, LinearGaussianController):
        return LinearGaussianPolicy(obj)
    if callable(getattr(obj, "act", None)):
        return obj  # type: ignore[return-value]
    raise TypeError(f"expected a LinearGaussianController or an object with act(x, t, noise), got {type(obj).__name__}")


@dataclass
class Rollouts:
    """Samples X (n, T, dX), applied actions U (n, T, dU) and their validity.

    ``diverged_at[i]`` is the first step whose state or action is not trustworthy (-1: none), ``reason[i]``
    says why. States of an invalid sample from ``diverged_at`` on are whatever MuJoCo reset them to.
    """

    X: np.ndarray
    U: np.ndarray
    diverged_at: np.ndarray
    reason: list[str]

    @property
    def valid(self) -> np.ndarray:
        """(n,) bool: samples that never diverged."""
        return self.diverged_at < 0

    def check(self) -> "Rollouts":
        """Raise :class:`RolloutDivergedError` naming the first diverged sample and step; else return self."""
        bad = np.flatnonzero(self.diverged_at >= 0)
        if bad.size:
            i = int(bad[np.argmin(self.diverged_at[bad])])
            raise RolloutDivergedError(
                f"{bad.size} of {len(self.diverged_at)} samples diverged; sample {i}: {self.reason[i]}",
                array="X", t=int(self.diverged_at[i]))
        return self


class Simulator:
    """n simulations of one model, stepped together ``substeps`` physics steps per control step.

    ``read(out)`` writes each simulation's [time, qpos, qvel] into a row of ``out`` (n, 1 + dX).
    """

    def __init__(self, model: mujoco.MjModel, n: int, substeps: int = 1, backend: str = "auto", nthread: int = 1):
        if backend == "auto":  # mujoco.batch when this MuJoCo has the API used here, else the MjData loop
            try:
                self.__init__(model, n, substeps, "batch", nthread)
                return
            except (ValueError, AttributeError, TypeError):
                backend = "loop"
        if backend == "batch" and _mjbatch is None:
            raise ValueError("backend='batch' needs mujoco >= 3.17 (mujoco.batch)")
        if backend not in ("batch", "loop"):
            raise ValueError(f"unknown backend {backend!r}")
        self.model, self.n, self.substeps, self.backend = model, int(n), int(substeps), backend
        self.nq, self.nv, self.nu = model.nq, model.nv, model.nu
        self._rows = None
        if backend == "batch":
            b = self._batch = _mjbatch.Batch(model, self.n, nthread=nthread)
            self._qpos, self._qvel, self._time = b.bind("qpos"), b.bind("qvel"), b.bind("time")
            self.ctrl = b.bind("ctrl")  # live (n, nu) view: a write is the controls of the next step
            self._counters = b.warning[:, :, 1]  # live view (n, mjNWARNING)
            # [time, qpos, qvel] adjacent in the state rows (mjSTATE_INTEGRATION order): read them as one live
            # view. Located by the views' own memory offsets, so no private API is needed.
            item = b.state.itemsize
            offs = [(a.__array_interface__["data"][0] - b.state.__array_interface__["data"][0]) // item
                    for a in (self._time, self._qpos, self._qvel)]
            if offs[1] == offs[0] + 1 and offs[2] == offs[1] + self.nq:
                self._rows = b.state[:, offs[0]: offs[0] + 1 + self.nq + self.nv]
        else:
            self._datas = [mujoco.MjData(model) for _ in range(self.n)]
            self.ctrl = np.zeros((self.n, self.nu))

    def reset(self, x0: np.ndarray) -> None:
        """Reset every simulation (time 0, zero controls, warm start and warnings) to states x0 (n, dX)."""
        nq = self.nq
        if self.backend == "batch":
            self._batch.reset(stage=mujoco.mjtStage.mjSTAGE_NONE)
            self._qpos[:] = x0[:, :nq]
            self._qvel[:] = x0[:, nq:]
        else:
            for d, x in zip(self._datas, x0):
                mujoco.mj_resetData(self.model, d)
                d.qpos[:] = x[:nq]
                d.qvel[:] = x[nq:]

    def live_rows(self) -> np.ndarray | None:
        """A live (n, 1 + dX) view of [time, qpos, qvel] of every simulation, when the backend has one."""
        return self._rows

    def read(self, out: np.ndarray) -> None:
        """Write [time, qpos, qvel] of every simulation into ``out`` (n, 1 + dX)."""
        if self._rows is not None:
            out[:] = self._rows
            return
        nq = self.nq
        if self.backend == "batch":
            out[:, 0] = self._time
            out[:, 1: 1 + nq] = self._qpos
            out[:, 1 + nq:] = self._qvel
        else:
            for row, d in zip(out, self._datas):
                row[0] = d.time
                row[1: 1 + nq] = d.qpos
                row[1 + nq:] = d.qvel

    def step(self) -> None:
        """Advance every simulation by one control step with the controls in ``self.ctrl``."""
        if self.backend == "batch":
            self._batch.step(None, self.substeps)
        else:
            m, k = self.model, self.substeps
            for d, u in zip(self._datas, self.ctrl):
                d.ctrl[:] = u
                mujoco.mj_step(m, d, k)

    def warnings(self) -> np.ndarray:
        """Divergence warnings counted since the last reset, (n,)."""
        idx = list(DIVERGENCE_WARNINGS)
        if self.backend == "batch":
            return self._counters[:, idx].sum(axis=1)
        return np.array([sum(d.warning[w].number for w in idx) for d in self._datas])


def ctrl_range(model: mujoco.MjModel) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper control limits (nu,) of a model; ±inf for actuators without ``ctrlrange``."""
    limited = model.actuator_ctrllimited.astype(bool)
    lo, hi = model.actuator_ctrlrange.T
    return np.where(limited, lo, -np.inf), np.where(limited, hi, np.inf)


def rollout(sim: Simulator, policy: object, x0: np.ndarray, T: int, *, seed: int | None = 0,
            noise: bool = True) -> Rollouts:
    """Run ``policy`` for T control steps from states x0 (dX,) or (n, dX) on every simulation of ``sim``.

    ε_t ~ N(0, I) is drawn up front from ``numpy.random.default_rng(seed)`` as one (n, T, dU) array
    (zeros when ``noise`` is False), so a seed reproduces the samples exactly.
    """
    pol = as_policy(policy)
    n, nq, nu = sim.n, sim.nq, sim.nu
    dX = nq + sim.nv
    x0 = np.broadcast_to(np.asarray(x0, dtype=np.float64), (n, dX))
    lo, hi = ctrl_range(sim.model)
    eps = np.random.default_rng(seed).standard_normal((n, T, nu)) if noise else np.zeros((n, T, nu))
    # time-major buffers: one contiguous block per step; rows are [time, qpos, qvel]
    S = np.empty((T, n, 1 + dX))
    Ut = np.empty((T, n, nu))
    fast = isinstance(pol, LinearGaussianPolicy)
    if fast and (pol.controller.T < T or pol.controller.dX != dX or pol.controller.dU != nu):
        c = pol.controller
        raise ShapeError(f"controller has T={c.T}, dX={c.dX}, dU={c.dU}; the task needs T>={T}, dX={dX}, dU={nu}",
                         array="K")
    if fast:
        np.copyto(Ut, np.swapaxes(pol.open_loop(eps), 0, 1))
        KT = pol._KT
        fb = np.empty((n, nu))
    else:
        eps_t = np.ascontiguousarray(np.swapaxes(eps, 0, 1))
    # MuJoCo clamps ctrl to ctrlrange itself, bit-identically to clipping first (unless the model disables
    # it); so the loop writes raw actions and U is clipped once at the end.
    clamp = bool(sim.model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CLAMPCTRL)
    ctrl, step, read = sim.ctrl, sim.step, sim.read
    rows = sim.live_rows()
    sim.reset(x0)
    for t in range(T):
        st = S[t]
        if rows is not None:
            st[:] = rows
        else:
            read(st)
        ut = Ut[t]
        if fast:
            np.dot(st[:, 1:], KT[t], out=fb)
            ut += fb
        else:
            x = st[:, 1:]
            x.flags.writeable = False  # the policy sees the recorded states; it must not change them
            u = np.asarray(pol.act(x, t, eps_t[t]), dtype=np.float64)
            if u.shape != (n, nu):
                raise ShapeError(f"policy returned shape {u.shape}, expected {(n, nu)}", array="U", t=t)
            ut[:] = u
        if clamp:
            np.clip(ut, lo, hi, out=ut)
        if t + 1 < T:  # x_T is not recorded, so the last step is not simulated
            ctrl[:] = ut
            step()
    X = np.ascontiguousarray(np.swapaxes(S[:, :, 1:], 0, 1))
    U = np.ascontiguousarray(np.swapaxes(Ut, 0, 1))
    # Divergence, found after the loop: MuJoCo's counters say which simulations blew up, and its auto-reset
    # sends the clock back to 0, which dates it; non-finite actions and states date themselves.
    diverged_at = np.full(n, -1, dtype=np.int64)
    reason = [""] * n

    def first(mask: np.ndarray, why: str) -> None:  # mask (n, T): earliest offending step per sample
        for i in np.flatnonzero(mask.any(axis=1)):
            t = int(np.argmax(mask[i]))
            if diverged_at[i] < 0 or t < diverged_at[i]:
                diverged_at[i], reason[i] = t, why

    dt = sim.model.opt.timestep * sim.substeps
    clock_reset = np.abs(S[:, :, 0].T - np.arange(T) * dt) > 0.5 * dt
    first(clock_reset, "MuJoCo diverged and reset the simulation (bad qpos/qvel/qacc)")
    first(~np.isfinite(U).all(axis=2), "non-finite action from the policy")
    first(np.abs(U).max(axis=2) > MJ_MAXVAL, "action beyond MuJoCo's limit (mjMAXVAL), controls zeroed")
    first(~np.isfinite(X).all(axis=2), "non-finite state")
    warned = sim.warnings() > 0
    undated = warned & (diverged_at < 0)
    first(np.repeat(undated[:, None], T, axis=1), "MuJoCo reported a divergence warning (step unknown)")
    np.clip(U, lo, hi, out=U)  # the applied actions
    return Rollouts(X, U, diverged_at, reason)
