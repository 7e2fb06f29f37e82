"""The octopus arm's physics model: dimensions, tip Jacobian, stability, hydrostat (constant area), reach."""
import mujoco
import numpy as np
import pytest

from gpsx.tasks import octopus_model as om


@pytest.fixture(scope="module")
def model():
    return om.build_octopus_model()


def _warnings(data):
    return {mujoco.mjtWarning(i).name: int(data.warning[i].number)
            for i in range(len(data.warning)) if data.warning[i].number}


def _polygon_area(p):
    """Shoelace area of a polygon given as (n, 2) vertices, written as the textbook loop."""
    return 0.5 * sum(p[i, 0] * p[(i + 1) % len(p), 1] - p[(i + 1) % len(p), 0] * p[i, 1] for i in range(len(p)))


def _deformed(model, seed=0, steps=20):
    """A data object in a generic (bent, moving) state reached by random activations."""
    data = mujoco.MjData(model)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        data.ctrl[:] = rng.uniform(0, 1, model.nu)
        mujoco.mj_step(model, data, nstep=om.SUBSTEPS)
    mujoco.mj_kinematics(model, data)
    return data


def test_dimensions_and_layout(model):
    assert (model.nq, model.nv, model.nu) == (25, 25, 18)
    assert model.opt.timestep * om.SUBSTEPS == pytest.approx(om.DT_CONTROL)
    assert om.DT_CONTROL == 0.05
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in range(model.nu)]
    assert names == ([f"dorsal{k}" for k in range(6)] + [f"ventral{k}" for k in range(6)]
                     + [f"transverse{k}" for k in range(6)])
    np.testing.assert_array_equal(model.actuator_ctrlrange, np.tile([0.0, 1.0], (18, 1)))
    assert np.all(model.actuator_ctrllimited == 1)
    np.testing.assert_array_equal(model.opt.gravity, 0.0)
    # one hinge (base edge orientation) then 24 slides: the 12 free points in the plane
    assert model.jnt_type[0] == mujoco.mjtJoint.mjJNT_HINGE
    assert np.all(model.jnt_type[1:] == mujoco.mjtJoint.mjJNT_SLIDE)


def test_contraction_only_muscles(model):
    """Each actuator shortens its own muscle: positive ctrl gives a force that pulls its two ends together."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    length0 = data.ten_length.copy()
    for i in (0, 6, 12):
        data.ctrl[:] = 0
        data.ctrl[i] = 1
        mujoco.mj_forward(model, data)
        assert data.actuator_force[i] < 0
        tendon = model.actuator_trnid[i, 0]
        d2 = mujoco.MjData(model)
        d2.ctrl[:] = data.ctrl
        mujoco.mj_step(model, d2, nstep=2 * om.SUBSTEPS)
        mujoco.mj_fwdPosition(model, d2)
        assert d2.ten_length[tendon] < length0[tendon] - 1e-3


def test_rest_geometry(model):
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    np.testing.assert_allclose(om.tip_position(data), [om.ARM_LENGTH, 0.0], atol=1e-12)
    np.testing.assert_allclose(om.chamber_areas(data), om.rest_areas(model))
    pts = om.rest_points()
    expected = [_polygon_area(pts[[2 * k, 2 * k + 2, 2 * k + 3, 2 * k + 1]]) for k in range(6)]
    np.testing.assert_allclose(om.rest_areas(model), expected, rtol=1e-12)
    assert np.all(om.rest_areas(model) > 0)


def test_chamber_areas_match_polygon_formula_when_deformed(model):
    data = _deformed(model, seed=1)
    s = data.site_xpos[:, :2]
    expected = [_polygon_area(s[[2 * k, 2 * k + 2, 2 * k + 3, 2 * k + 1]]) for k in range(6)]
    np.testing.assert_allclose(om.chamber_areas(data), expected, rtol=1e-12)
    assert not np.allclose(om.chamber_areas(data), om.rest_areas(model), rtol=1e-3)


def test_tip_jacobian_matches_finite_differences_and_mj_jacsite(model):
    data = _deformed(model, seed=2)
    jac = om.tip_jacobian(model, data)
    assert jac.shape == (2, model.nv)
    eps = 1e-6
    fd = np.zeros((2, model.nv))
    probe = mujoco.MjData(model)
    for j in range(model.nq):
        for sign in (1, -1):
            probe.qpos[:] = data.qpos
            probe.qpos[j] += sign * eps
            mujoco.mj_kinematics(model, probe)
            fd[:, j] += sign * om.tip_position(probe) / (2 * eps)
    np.testing.assert_allclose(jac, fd, atol=1e-8)
    mujoco.mj_comPos(model, data)
    jac_site = np.zeros((3, model.nv))
    for site in ("V6", "D6"):
        jp = np.zeros((3, model.nv))
        mujoco.mj_jacSite(model, data, jp, None, mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site))
        jac_site += 0.5 * jp
    np.testing.assert_allclose(jac, jac_site[:2], atol=1e-12)


@pytest.mark.parametrize("kind", ["uniform", "bang_bang"])
def test_random_activations_stable_and_area_preserving(model, kind):
    """100 seeded rollouts x 100 control steps; activations resampled every 1-5 steps."""
    data = mujoco.MjData(model)
    area0 = om.rest_areas(model)
    rng = np.random.default_rng(12345 if kind == "uniform" else 54321)
    lo, hi = np.inf, -np.inf
    for _ in range(100):
        mujoco.mj_resetData(model, data)
        hold = int(rng.integers(1, 6))
        for t in range(100):
            if t % hold == 0:
                u = rng.uniform(0, 1, model.nu)
                data.ctrl[:] = u if kind == "uniform" else (u > 0.5)
            mujoco.mj_step(model, data, nstep=om.SUBSTEPS)
            mujoco.mj_kinematics(model, data)
            ratio = om.chamber_areas(data) / area0
            lo, hi = min(lo, ratio.min()), max(hi, ratio.max())
        assert not _warnings(data), _warnings(data)
        assert np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel))
        assert np.abs(data.qvel).max() < 50.0
    assert 0.9 <= lo and hi <= 1.1, (lo, hi)


@pytest.mark.parametrize("muscles, side", [(slice(0, 6), +1), (slice(6, 12), -1)])
def test_reach_bends_both_ways(model, muscles, side):
    """All dorsal (ventral) muscles on: the tip moves > L/3 and ends on the dorsal (ventral) side."""
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    tip0 = om.tip_position(data).copy()
    area0 = om.rest_areas(model)
    for _ in range(100):
        data.ctrl[:] = 0
        data.ctrl[muscles] = 1
        mujoco.mj_step(model, data, nstep=om.SUBSTEPS)
        mujoco.mj_kinematics(model, data)
        ratio = om.chamber_areas(data) / area0
        assert np.all(np.abs(ratio - 1) <= 0.1), ratio
    tip = om.tip_position(data)
    assert np.linalg.norm(tip - tip0) >= om.ARM_LENGTH / 3
    assert side * tip[1] > 0.3 * om.ARM_LENGTH
    assert not _warnings(data)


def test_transverse_muscles_elongate_the_arm(model):
    """The hydrostat at work: squeezing the width makes the chambers longer."""
    data = mujoco.MjData(model)
    data.ctrl[12:18] = 1
    mujoco.mj_step(model, data, nstep=40 * om.SUBSTEPS)
    mujoco.mj_kinematics(model, data)
    assert om.tip_position(data)[0] > om.ARM_LENGTH * 1.1
    assert abs(om.tip_position(data)[1]) < 1e-6


def test_pure_mjcf_rollout_matches_step_loop(model):
    """No Python force per substep: MuJoCo's own rollout reproduces the mj_step loop exactly."""
    rollout = pytest.importorskip("mujoco.rollout")
    rng = np.random.default_rng(7)
    U = rng.uniform(0, 1, (20, model.nu))
    data = mujoco.MjData(model)
    for u in U:
        data.ctrl[:] = u
        mujoco.mj_step(model, data, nstep=om.SUBSTEPS)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    d0 = mujoco.MjData(model)
    state0 = np.zeros(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, d0, state0, spec)
    states, _ = rollout.rollout(model, d0, state0[None], np.repeat(U, om.SUBSTEPS, axis=0)[None])
    final = np.zeros_like(state0)
    mujoco.mj_getState(model, data, final, spec)
    np.testing.assert_array_equal(states[0, -1], final)


def test_unknown_parameter_raises():
    with pytest.raises(TypeError):
        om.build_octopus_model(stifness=1.0)
    m = om.build_octopus_model(substeps=10)
    assert m.opt.timestep == pytest.approx(0.005)
