"""The world: tasks, costs, sampler and the Gymnasium adapter (issue 4)."""
from __future__ import annotations

import numpy as np
import pytest

import gpsx.tasks
from gpsx.containers import LinearGaussianController
from gpsx.costs import SitePoint, l12
from gpsx.errors import RolloutDivergedError, ShapeError

SPEC = {  # name: (dX, dU, T, dt) from DESIGN §5 / the issue
    "peg2d": (6, 2, 800, 0.01),
    "peg3d": (12, 6, 800, 0.01),
    "swimmer": (10, 2, 400, 0.05),
    "walker": (18, 6, 500, 0.01),
    "octopus": (50, 18, 100, 0.05),
}
NAMES = gpsx.tasks.names()
_CACHE: dict[str, gpsx.tasks.Task] = {}


def task_of(name: str) -> gpsx.tasks.Task:
    if name not in _CACHE:
        _CACHE[name] = gpsx.tasks.make(name)
    return _CACHE[name]


# --- building ------------------------------------------------------------------------------------------------
def test_names_cover_the_paper_tasks():
    assert {"peg2d", "peg3d", "swimmer", "walker"} <= set(NAMES)
    with pytest.raises(ValueError, match="unknown task"):
        gpsx.tasks.make("cartpole")


@pytest.mark.parametrize("name", NAMES)
def test_dimensions_horizon_and_time_step(name):
    task = task_of(name)
    dX, dU, T, dt = SPEC[name]
    assert (task.dX, task.dU, task.T) == (dX, dU, T)
    assert task.dt == pytest.approx(dt)
    assert task.model.opt.timestep * task.substeps == pytest.approx(dt)
    assert task.dX == task.model.nq + task.model.nv and task.dU == task.model.nu
    assert len(task.train_conditions) >= 1 and len(task.test_conditions) >= 1
    assert set(task.train_conditions).isdisjoint(task.test_conditions)
    for c in task.conditions:
        assert c.x0.shape == (dX,)
    X, U = task.rollout(task.initial_controller(0), 0, n=2, seed=0)
    assert X.shape == (2, T, dX) and U.shape == (2, T, dU)
    assert np.array_equal(X[:, 0], np.broadcast_to(task.condition(0).x0, (2, dX)))


# --- costs ---------------------------------------------------------------------------------------------------
def test_l12_derivatives_match_finite_differences():
    rng = np.random.default_rng(0)
    for z in [rng.normal(size=3), 1e-3 * rng.normal(size=2), np.zeros(3)]:
        v, g, H = l12(z)
        h = 1e-6
        for i in range(len(z)):
            e = np.zeros_like(z)
            e[i] = h
            assert (l12(z + e)[0] - l12(z - e)[0]) / (2 * h) == pytest.approx(g[i], abs=1e-6)
            assert np.allclose((l12(z + e)[1] - l12(z - e)[1]) / (2 * h), H[i], atol=1e-4 * max(1, np.abs(H).max()))
    assert l12(np.zeros(3))[0] == pytest.approx(np.sqrt(1e-5))


def _random_states(task, n=2, T=3, seed=0):
    """A few states near the task's reachable set: rollout states with a random perturbation."""
    rng = np.random.default_rng(seed)
    X, U = task.rollout(task.initial_controller(0), 0, n=n, seed=seed)
    idx = rng.choice(task.T, size=T, replace=False)
    X = X[:, idx] + 0.05 * rng.normal(size=(n, T, task.dX))
    U = U[:, idx] + rng.normal(size=(n, T, task.dU))
    return X, U


def _fd(f, A, h=1e-6):
    """Central differences of f (returning (n, T, ...)) with respect to the last axis of A (n, T, d)."""
    cols = []
    for i in range(A.shape[-1]):
        e = np.zeros_like(A)
        e[..., i] = h
        cols.append((f(A + e) - f(A - e)) / (2 * h))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("name", NAMES)
def test_cost_derivatives_match_finite_differences(name):
    task = task_of(name)
    cond = task.train_conditions[-1]
    X, U = _random_states(task)
    d = task.cost.derivatives(X, U, condition=cond)
    cost = lambda X_, U_: task.cost(X_, U_, condition=cond)
    assert np.allclose(d.l, cost(X, U))
    assert np.allclose(d.lx, _fd(lambda A: cost(A, U), X), rtol=1e-5, atol=1e-6)
    assert np.allclose(d.lu, _fd(lambda A: cost(X, A), U), rtol=1e-5, atol=1e-6)
    assert np.allclose(d.luu, _fd(lambda A: task.cost.derivatives(X, A, cond).lu, U), atol=1e-6)
    assert np.allclose(d.lux, _fd(lambda A: task.cost.derivatives(A, U, cond).lu, X), atol=1e-6)
    assert np.allclose(d.lxx, np.swapaxes(d.lxx, -1, -2))
    fd_lxx = _fd(lambda A: task.cost.derivatives(A, U, cond).lx, X)
    if name in ("swimmer", "walker"):  # quadratic in x: the Hessian is exact
        assert np.allclose(d.lxx, fd_lxx, atol=1e-5)
    else:  # Gauss–Newton: lxx = Jᵀ ∇²ℓ12 J with the Jacobian J of the tip, checked against a finite-difference J
        nq = task.nq
        c = task.condition(cond)
        pts = task.cost_for(cond).terms[-1].points
        flat = lambda A: pts.positions(np.ascontiguousarray(A.reshape(-1, nq))).reshape(*A.shape[:2], -1)
        J = _fd(flat, X[..., :nq])  # (n, T, dim, nq)
        _, _, H = l12(flat(X[..., :nq]) - c.target)
        gn = np.einsum("ntdq,ntde,ntep->ntqp", J, H, J)
        assert np.allclose(d.lxx[..., :nq, :nq], gn, rtol=1e-5, atol=1e-5)
        assert np.allclose(d.lxx[..., nq:, :], 0.0) and np.all(np.linalg.eigvalsh(d.lxx) > -1e-9)
        # and it differs from the exact Hessian only by the dropped kinematic-curvature term (small near p*)
        assert np.abs(d.lxx - fd_lxx).max() < 0.5 * np.abs(fd_lxx).max() + 1e-6


@pytest.mark.parametrize("name", [n for n in ("peg2d", "peg3d") if n in NAMES])
def test_site_jacobian_matches_finite_differences(name):
    task = task_of(name)
    tip = SitePoint(task.model, "tip")
    q = task.condition(0).x0[: task.nq] + np.random.default_rng(1).normal(scale=0.2, size=task.nq)
    _, J = tip.jacobians(q[None])
    h = 1e-6
    fd = np.stack([(tip.positions((q + h * e)[None]) - tip.positions((q - h * e)[None]))[0] / (2 * h)
                   for e in np.eye(task.nq)], axis=1)
    assert np.allclose(J[0], fd, atol=1e-8)


def test_cost_is_per_condition_and_defaults_to_condition_0():
    task = task_of("peg2d")
    X, U = _random_states(task)
    assert np.array_equal(task.cost(X, U), task.cost(X, U, condition=0))
    assert not np.allclose(task.cost(X, U, condition=0), task.cost(X, U, condition=3))
    # at the target with zero action the cost is ℓ12(0) = √α
    from gpsx.tasks.peg import peg_ik

    c = task.condition(2)
    q = peg_ik(task.model_for(c), c.target, c.x0[: task.nq], reg=0.0)
    x = np.concatenate([q, np.zeros(task.nv)])[None, None]
    assert task.cost(x, np.zeros((1, 1, task.dU)), condition=2)[0, 0] == pytest.approx(np.sqrt(1e-5), abs=1e-6)


# --- sampling ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_rollouts_are_reproducible_from_a_seed(name):
    task = task_of(name)
    ctrl = task.initial_controller(1)
    X1, U1 = task.rollout(ctrl, 1, n=3, seed=7)
    X2, U2 = task.rollout(ctrl, 1, n=3, seed=7)
    X3, _ = task.rollout(ctrl, 1, n=3, seed=8)
    assert np.array_equal(X1, X2) and np.array_equal(U1, U2)
    assert not np.allclose(X1, X3)
    assert not np.allclose(X1[0], X1[1])  # the samples of one call differ from each other


needs_batch = pytest.mark.skipif(gpsx.sampling._mjbatch is None, reason="mujoco.batch needs mujoco >= 3.17")


@needs_batch
def test_batch_and_loop_backends_agree_bit_for_bit():
    task = task_of("peg3d")
    ctrl = task.initial_controller(0)
    Xb, Ub = task.rollout(ctrl, 0, n=3, seed=3, backend="batch")
    Xl, Ul = task.rollout(ctrl, 0, n=3, seed=3, backend="loop")
    assert np.array_equal(Xb, Xl) and np.array_equal(Ub, Ul)


def test_noise_free_rollout_is_the_mean_and_noise_has_the_documented_covariance():
    task = task_of("peg2d")
    ctrl = task.initial_controller(0)
    X, U = task.rollout(ctrl, 0, n=2, seed=0, noise=False)
    assert np.array_equal(X[0], X[1])
    mean = np.einsum("tux,ntx->ntu", ctrl.K, X) + ctrl.k
    assert np.allclose(U, mean)
    X, U = task.rollout(ctrl, 0, n=8, seed=0)
    resid = U - (np.einsum("tux,ntx->ntu", ctrl.K, X) + ctrl.k)
    assert np.var(resid) == pytest.approx(np.mean(np.diagonal(ctrl.cov, axis1=1, axis2=2)), rel=0.1)


class _OpenLoop:
    """A policy replaying given actions (n, T, dU)."""

    def __init__(self, U):
        self.U = U

    def act(self, x, t, noise):
        return self.U[:, t]


def test_actions_are_clipped_to_ctrlrange_and_recorded_clipped():
    task = task_of("peg3d")
    lo, hi = task.ctrl_range
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(2, task.T, task.dU)) * 3 * hi  # mostly outside the range
    X, U = task.rollout(_OpenLoop(raw), 0, n=2, noise=False)
    assert np.array_equal(U, np.clip(raw, lo, hi)) and (np.abs(raw) > hi).any()
    X2, U2 = task.rollout(_OpenLoop(np.clip(raw, lo, hi)), 0, n=2, noise=False)
    assert np.array_equal(X, X2)


def test_policy_protocol_and_shape_errors():
    from gpsx.sampling import Policy, as_policy

    task = task_of("swimmer")

    class Bad:
        def act(self, x, t, noise):
            return np.zeros((x.shape[0], task.dU + 1))

    assert isinstance(_OpenLoop(None), Policy)
    with pytest.raises(ShapeError, match="policy returned shape"):
        task.rollout(Bad(), 0, n=2)
    with pytest.raises(TypeError):
        as_policy(object())


@pytest.fixture
def in_tmp_dir(tmp_path, monkeypatch):
    """MuJoCo appends its warnings to MUJOCO_LOG.TXT in the working directory: keep it out of the checkout."""
    monkeypatch.chdir(tmp_path)


def test_absurd_gains_raise_and_are_marked(in_tmp_dir):
    task = gpsx.tasks.make("peg2d")
    ctrl = task.initial_controller(0)
    huge = LinearGaussianController(ctrl.K * 1e12, ctrl.k, ctrl.cov)  # actions beyond MuJoCo's 1e10 limit
    with pytest.raises(RolloutDivergedError, match="diverged"):
        task.rollout(huge, 0, n=2)
    r = task.sample(huge, 0, n=2)
    assert not r.valid.any() and "limit" in r.reason[0]
    assert task.sample(ctrl, 0, n=2, seed=0).valid.all()


@pytest.mark.parametrize("backend", [pytest.param("batch", marks=needs_batch), "loop"])
def test_a_physics_blow_up_is_detected_despite_mujocos_auto_reset(backend, in_tmp_dir):
    task = gpsx.tasks.make("peg2d")
    task.model.actuator_ctrllimited[:] = 0  # no torque limits (before any simulator copies the model) ...
    ctrl = task.initial_controller(0)
    stiff = LinearGaussianController(ctrl.K * 1e4, ctrl.k, ctrl.cov)  # ... and absurdly stiff feedback
    r = task.sample(stiff, 0, n=2, seed=0, backend=backend)
    assert not r.valid.any() and (r.diverged_at > 0).all()
    assert "reset" in r.reason[0]
    assert np.isfinite(r.X).all()  # MuJoCo's reset leaves finite states: a NaN check alone would miss it
    with pytest.raises(RolloutDivergedError) as err:
        r.check()
    assert err.value.t == int(r.diverged_at.min())
    with pytest.raises(RolloutDivergedError):
        task.rollout(stiff, 0, n=2, seed=0, backend=backend)


# --- task behaviour ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in ("peg2d", "peg3d") if n in NAMES])
def test_scripted_insertion_reaches_the_slot_bottom(name):
    task = task_of(name)
    for c in task.train_conditions + task.test_conditions:
        X, _ = task.rollout(task.scripted_policy(c), c, n=1, noise=False)
        tip = task.tip_positions(X[:, -1:], c)[0, 0]
        assert np.linalg.norm(tip - task.condition(c).target) < 0.01, (name, c)
        assert task.success(X, c).all()
    X, _ = task.rollout(task.initial_controller(0), 0, n=2)
    assert not task.success(X, 0).any()  # the start pose is not a success


@pytest.mark.parametrize("name", [n for n in ("peg2d", "peg3d") if n in NAMES])
def test_peg_penetration_stays_below_5mm_under_exploration_noise(name):
    task = task_of(name)
    X, _ = task.rollout(task.initial_controller(0), 0, n=5, seed=0)
    assert task.peg_contact_depths(X, 0).max() < 0.005
    # the peg pushed into the slot with three times the initial controller's exploration noise on top
    for c in (0, 3):
        std = 3 * np.sqrt(np.diagonal(task.initial_controller(c).cov[0]))
        X, _ = task.rollout(task.scripted_policy(c, noise_std=std), c, n=5, seed=1)
        depth = task.peg_contact_depths(X[:, ::2], c)
        assert (depth > 0).any()  # it did touch the walls or the bottom
        assert depth.max() < 0.005


def test_swimmer_moves_forward_under_an_open_loop_gait():
    task = task_of("swimmer")

    class Gait:  # travelling wave, head to tail: 30 N·m at 1 Hz, joint 2 lagging by 1.5 rad
        def act(self, x, t, noise):
            u = 30.0 * np.sin(2 * np.pi * t * task.dt - np.array([0.0, 1.5]))
            return np.broadcast_to(u, (x.shape[0], 2))

    for c in (task.train_conditions[0], task.test_conditions[0]):
        X, _ = task.rollout(Gait(), c, n=1, noise=False)
        assert task.success(X, c).all() and task.forward_distance(X)[0] > 1.0
    X, _ = task.rollout(task.initial_controller(0), 0, n=3)
    assert not task.success(X, 0).any()


def test_swimmer_initial_controller_is_a_standing_wave_that_does_not_swim():
    from gpsx.tasks.swimmer import WAVE_HZ, WAVE_TORQUE, standing_wave

    task = task_of("swimmer")
    ctrl = task.initial_controller(0)
    wave = standing_wave(task.T, task.dt)
    assert wave.shape == (task.T, 2) and np.allclose(ctrl.k, wave)  # the PD's reference is the straight body
    assert np.allclose(wave[:, 1], -wave[:, 0]) and np.isclose(np.abs(wave).max(), WAVE_TORQUE, rtol=1e-3)
    for c in task.train_conditions + task.test_conditions:
        X, _ = task.rollout(ctrl, c, n=1, noise=False)
        assert abs(task.forward_distance(X)[0]) < 0.05, c  # antiphase: no net thrust ...
        assert (np.abs(X[0, task.T // 2:, 3:5]).max(axis=0) > 0.1).all(), c  # ... although the body bends

    class Travelling:  # the PD and the same wave, joint 2 lagging by π/2 instead of π: it swims, phase is the lever
        def act(self, x, t, noise):
            phase = 2 * np.pi * WAVE_HZ * t * task.dt
            return x @ ctrl.K[t].T + WAVE_TORQUE * np.array([np.sin(phase), np.sin(phase - np.pi / 2)])

    X, _ = task.rollout(Travelling(), 0, n=1, noise=False)
    assert task.forward_distance(X)[0] > 0.3


def test_walker_leg_geometry_matches_mujoco_kinematics():
    import mujoco

    from gpsx.tasks.walker import leg_geometry

    task = task_of("walker")
    model, data = task.model, mujoco.MjData(task.model)
    rng = np.random.default_rng(0)
    for x in task.condition(0).x0 + rng.uniform(-0.5, 0.5, (20, task.dX)):
        data.qpos[:] = x[: task.nq]
        mujoco.mj_kinematics(model, data)
        for leg, side in enumerate("rl"):
            ahead, lowest = leg_geometry(x, leg)
            foot = model.geom(f"foot_{side}").id
            ends = data.geom_xpos[foot] + np.outer((-1, 1), model.geom_size[foot, 1] * data.geom_xmat[foot, 2::3])
            assert np.isclose(ahead, data.qpos[0] - data.xpos[model.body(f"foot_{side}").id, 0])
            assert np.isclose(lowest, ends[:, 2].min() - model.geom_size[foot, 0])


def test_walker_initial_controller_is_the_gait_machine_linearised_and_walks_upright():
    from gpsx.tasks.walker import Gait, GaitMachine

    task = task_of("walker")
    for c in task.train_conditions + task.test_conditions:
        ctrl = task.initial_controller(c)
        machine = GaitMachine(Gait(), task.dt)
        X_machine, _ = task.rollout(machine, c, n=1, noise=False)
        X_linear, _ = task.rollout(ctrl, c, n=1, noise=False)
        assert np.abs(X_linear - X_machine).max() < 1e-8, c  # exact along the machine's own rollout
        stance, _ = machine.schedule()
        assert np.count_nonzero(np.diff(stance)) >= 8, c  # it takes steps, legs alternating
        X, _ = task.rollout(ctrl, c, n=3, seed=c)
        assert task.success(X, c).all(), c  # >= 2 m and upright, under the exploration noise
        assert (X[:, :, 1] > 1.0).all(), c  # walking, not lunging: the torso stays high
    limp = LinearGaussianController.from_gains(task.T, task.dX, task.dU, variance=1.0)
    X, _ = task.rollout(limp, 0, n=2)
    assert not task.upright(X).any()  # without torques it falls, so the check can fail


# --- Gymnasium -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_gymnasium_adapter_passes_check_env(name):
    pytest.importorskip("gymnasium")
    from gymnasium.utils.env_checker import check_env

    env = gpsx.tasks.as_gymnasium(task_of(name), condition=1)
    check_env(env, skip_render_check=True)


def test_gymnasium_episode_matches_the_sampler():
    pytest.importorskip("gymnasium")
    task = task_of("swimmer")
    X, U = task.rollout(task.initial_controller(2), 2, n=1, seed=4)
    env = gpsx.tasks.as_gymnasium(task, condition=2)
    obs, _ = env.reset(seed=0)
    rewards, truncated, t = [], False, 0
    while not truncated:
        assert np.array_equal(obs, X[0, t])
        obs, r, terminated, truncated, info = env.step(U[0, t])
        assert not terminated
        rewards.append(r)
        t += 1
    assert t == task.T
    assert np.allclose(rewards, -task.cost(X, U, condition=2)[0])


@pytest.mark.skipif("octopus" not in NAMES, reason="octopus model not available")
def test_octopus_targets_are_within_reach_of_simple_activations():
    """Every target is reached (< 5 cm) by holding one side's proximal and distal muscles at constant levels."""
    task = task_of("octopus")
    levels = np.linspace(0.0, 1.0, 6)
    a, b = (g.ravel() for g in np.meshgrid(levels, levels))
    u = np.zeros((2 * len(a), task.dU))
    for side, off in enumerate((0, 6)):  # dorsal muscles 0..5, ventral 6..11 (octopus_model's order)
        rows = slice(side * len(a), (side + 1) * len(a))
        u[rows, off: off + 3] = a[:, None]
        u[rows, off + 3: off + 6] = b[:, None]

    class Hold:
        def act(self, x, t, noise):
            return u

    X, _ = task.rollout(Hold(), 0, n=len(u), noise=False)
    for c in task.train_conditions + task.test_conditions:
        assert task.success(X, c).any(), task.condition(c).name
    X, _ = task.rollout(task.initial_controller(0), 0, n=3)
    assert not task.success(X, 0).any()


def test_tasks_pickle_for_worker_processes():
    import pickle

    task = task_of("swimmer")
    X, U = task.rollout(task.initial_controller(1), 1, n=2, seed=5)
    clone = pickle.loads(pickle.dumps(task))
    X2, U2 = clone.rollout(clone.initial_controller(1), 1, n=2, seed=5)
    assert np.array_equal(X, X2) and np.array_equal(U, U2)
    assert np.array_equal(task.cost(X, U, 1), clone.cost(X, U, 1))


@pytest.mark.parametrize("name, half_widths", [(n, w) for n, w in (("peg2d", (0.03, np.inf)),
                                                                   ("peg3d", (0.03, 0.03))) if n in NAMES])
def test_slot_floor_is_the_documented_slot(name, half_widths):
    """6 cm wide slot/hole (module docs of peg2d and peg3d); peg2d's slot is open along y."""
    from gpsx.tasks.peg import slot_half_widths
    task = task_of(name)
    for c in (0, task.test_conditions[-1]):
        np.testing.assert_allclose(slot_half_widths(task.model_for(c)), half_widths, rtol=1e-12)


# tip offset from the slot bottom's centre -> its distance to the slot floor (|x|, |y| <= 3 cm, z = 0), by hand
BOTTOM_CASES = {
    "peg2d": [((0.014, 0.0, 0.001), 0.001),   # pushed in against a wall: 14 mm from the centre, 1 mm up
              ((0.0, 0.0, 0.012), 0.012),     # centred, 12 mm short of the bottom
              ((-0.035, 0.0, 0.012), np.hypot(0.005, 0.012))],
    "peg3d": [((0.012, -0.012, 0.0), 0.0),    # in a corner of the hole
              ((0.0, 0.0, 0.011), 0.011),
              ((0.034, 0.0, 0.003), np.hypot(0.004, 0.003))],
}


@pytest.mark.parametrize("name", [n for n in ("peg2d", "peg3d") if n in NAMES])
def test_peg_success_is_the_distance_to_the_slot_floor_not_to_its_centre(name):
    from gpsx.tasks.peg import peg_ik
    task = task_of(name)
    c = task.test_conditions[0]
    cond, model = task.condition(c), task.model_for(c)
    for offset, expected in BOTTOM_CASES[name]:
        q = peg_ik(model, cond.target + offset, cond.x0[: task.nq], axis_weight=0.0, reg=1e-8)
        X = np.concatenate([q, np.zeros(task.dX - task.nq)])[None, None]
        tip = task.tip_positions(X, c)[0, 0]
        assert np.linalg.norm(tip - cond.target - offset) < 1e-5  # the pose puts the tip where asked
        assert task.bottom_distances(X, c)[0] == pytest.approx(expected, abs=2e-5), offset
        assert task.success(X, c)[0] == (expected < 0.01), offset
