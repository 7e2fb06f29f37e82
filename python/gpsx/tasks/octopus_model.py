"""MuJoCo model of the octopus arm of Levine & Abbeel (2014), Appendix B, generated as MJCF.

Geometry (top view, no gravity, in water). Seven pairs of points along +x, ``ARM_LENGTH`` long, with
the width tapering from ``BASE_WIDTH`` to ``TIP_WIDTH``. Point ``Vk`` is the ventral (y < 0) point of
pair k and ``Dk`` the dorsal (y > 0) one. Chamber k (0..5) is the quadrilateral Vk, V(k+1), D(k+1), Dk,
counter-clockwise, so its signed area is positive. The base pair is one rigid body on a hinge at the
midpoint of the base edge. The hinge has a weak torsional spring (``hinge_stiffness``; 0 makes it
free). Each of the other 12 points is its own body with two slide joints (x, y). So nq = nv = 25
and [qpos, qvel] has 50 dims. qpos[0] is the base angle, and qpos[1 + 2*(2*(k-1) + s) + c] is
coordinate c of point k (s = 0 ventral, 1 dorsal). Site ids are V0, D0, V1, D1, ..., V6, D6.

Muscles: 18 spatial tendons, each driven by a ``general`` actuator with force -F*ctrl and ctrl in
[0, 1] (contraction only, no activation state). Actuator order: dorsal 0..5 (Dk-D(k+1)), ventral
6..11 (Vk-V(k+1)), transverse 12..17 (D(k+1)-V(k+1), the distal edge of chamber k). F is
``muscle_force`` times the chamber's mean width / ``BASE_WIDTH``, so that thin distal chambers curl
about as much as thick proximal ones. The muscle tendons have springs and dampers (passive tissue),
and so do the 12 chamber diagonals (shear resistance).

Hydrostat (constant chamber area). MuJoCo has no area constraint. Each chamber therefore gets one
soft **tendon equality constraint** ``T1 = poly(T2)`` on an area proxy built from distances only, and
MuJoCo's constraint solver enforces it. Take a quad with diagonals p, q, transverse sides w1, w2 and
long sides l1, l2. Then 16 A^2 = 4 p^2 q^2 - (w1^2 + w2^2 - l1^2 - l2^2)^2. To second order in the
asymmetries this gives 2A = D^2 - (x - y)^2 / 4, with D = (p + q)/2, x = w1 + w2 and y = l1 + l2.
The relation is exact for rectangles. Its residual error under bending, keystone and shear falls off
as chambers approach a square. A tendon equality relates only two tendon lengths, so T1 = p + q + 2b*x
(long chambers; T2 = y) or T1 = p + q + 2b*y (wide chambers; T2 = x). T1 is one spatial tendon with
pulley branches, and b makes the constraint surface tangent to the area surface at rest. The quartic
``poly`` is fitted on that surface along x*y = const (exact for constant-area rectangles). The
constraint costs no Python per step and is stable at the physics step. Tendon range limits keep muscles within ``muscle_range``
(0.5-1.5) of rest length and transverse edges within ``transverse_range`` (0.6-1.4); these are tissue
limits. They stop the extreme shapes where the proxy degrades.

Measured (100 seeded rollouts x 100 control steps, activations resampled every 1-5 steps; worst area
ratio over all chambers and steps):
- this model: uniform [0, 1] activations 0.963-1.034, bang-bang {0, 1} activations 0.942-1.057.
  No MuJoCo warnings. Dorsal (ventral) muscles on: the tip moves 0.33 m in 1 s and 0.76 m in 5 s.
- the same without tendon limits: 0.911-1.047 uniform, 0.814-1.081 bang-bang.
- the equality constraint disabled: areas fall to 0.35 (soft springs alone do not keep the area).
- earlier proxies in our sweeps: "mean length x mean width" (T1 = y, T2 = x, y = A/x) went down to 0.84
  with stiff edges (its error in a bend is a factor cos(theta/2)), and chambers inverted with soft
  ones. "Diagonals vs length", which is exact in symmetric bends, reached 0.93 and broke on keystone
  shapes.
- not used: a Python pressure force per substep (~95 us per substep in numpy in our prototype). It
  also rules out ``mujoco.rollout`` and ``mujoco.batch``. This pure-MJCF model supports both, and a
  test checks that ``mujoco.rollout`` reproduces the step loop bit for bit.
- hinge_stiffness = 0: equally stable, but the free base counter-rotates by 1.2 rad when the arm
  curls, and the dorsal reach drops to 0.53 m.

Time stepping: physics timestep = ``DT_CONTROL / SUBSTEPS`` = 0.01 s with ``implicitfast``. Water
drag (slide-joint damping) and tendon damping are implicit; the springs are explicit. Bang-bang area
error: 15 % at 3 substeps, 5.8 % at 5, 5.6 % at 8; at 1 substep (dt = 0.05) the arm diverges.
**The model is pure MJCF: one control step is plain ``mujoco.mj_step(model, data, nstep=SUBSTEPS)``.**
Cost: about 90-170 us per control step (19-33 us per physics step, depending on machine load), and
45-85 ms of wall time for 5 rollouts x 100 control steps.

The arm behaves like a damped elastic rod in viscous fluid. After a full curl is released, it
straightens slowly (several seconds); the muscles straighten it faster.
"""
from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

__all__ = [
    "ARM_LENGTH",
    "BASE_WIDTH",
    "TIP_WIDTH",
    "N_CHAMBERS",
    "DT_CONTROL",
    "SUBSTEPS",
    "DEFAULT_PARAMS",
    "build_octopus_model",
    "mjcf",
    "tip_position",
    "tip_jacobian",
    "chamber_areas",
    "rest_areas",
    "rest_points",
]

N_CHAMBERS = 6
N_PAIRS = N_CHAMBERS + 1
ARM_LENGTH = 1.0
BASE_WIDTH = 0.24
TIP_WIDTH = 0.10
DT_CONTROL = 0.05
SUBSTEPS = 5

# Defaults of build_octopus_model (SI units: kg, N/m, N*s/m, N, s).
DEFAULT_PARAMS: dict[str, Any] = dict(
    substeps=SUBSTEPS,  # physics steps per control step
    point_mass=0.1,  # mass of each free point (the base body carries two)
    drag=2.0,  # water drag: damping of each slide joint
    hinge_damping=0.5,  # damping of the base hinge
    hinge_stiffness=3.0,  # torsional spring of the base hinge (0 = no restoring torque)
    edge_stiffness=50.0,  # passive elasticity of the 18 muscle tendons
    edge_damping=1.0,
    diag_stiffness=150.0,  # the 12 chamber diagonals (shear resistance)
    diag_damping=1.0,
    muscle_force=10.0,  # peak contraction force at the base chamber
    area_timeconst=0.02,  # solref of the area constraints (>= 2 physics steps)
    area_solimp=(0.99, 0.999, 0.001),
    muscle_range=(0.5, 1.5),  # dorsal/ventral length limits, fraction of rest length
    transverse_range=(0.6, 1.4),  # transverse length limits, fraction of rest length
)


def _f(v: float) -> str:
    """Format a number for MJCF (plain float repr, never a numpy repr)."""
    return repr(float(v))


def _widths() -> np.ndarray:
    return np.linspace(BASE_WIDTH, TIP_WIDTH, N_PAIRS)


def rest_points() -> np.ndarray:
    """Rest positions (14, 2); row 2k is ventral point k (y < 0), row 2k+1 dorsal point k."""
    x = np.linspace(0.0, ARM_LENGTH, N_PAIRS)
    w = _widths()
    pts = np.empty((2 * N_PAIRS, 2))
    pts[0::2, 0] = x
    pts[0::2, 1] = -w / 2
    pts[1::2, 0] = x
    pts[1::2, 1] = w / 2
    return pts


def _nm(k: int, side: int) -> str:
    return ("V" if side == 0 else "D") + str(k)


def _area_constraint(pts: np.ndarray, k: int) -> tuple[list[tuple[str, str, float]], str, list[float]]:
    """Area-proxy constraint of chamber k: branches of T1 (site, site, weight), name of T2, polycoef."""
    a, b, c, d = pts[2 * k], pts[2 * k + 2], pts[2 * k + 3], pts[2 * k + 1]
    x0 = np.linalg.norm(d - a) + np.linalg.norm(c - b)  # transverse sum w1 + w2
    y0 = np.linalg.norm(d - c) + np.linalg.norm(a - b)  # long sum l1 + l2
    d0 = 0.5 * (np.linalg.norm(c - a) + np.linalg.norm(d - b))  # mean diagonal D
    s0 = x0 - y0
    two_area = d0**2 - s0**2 / 4
    wgt = abs(s0) / (4 * d0)  # b: makes {T1 = f(T2)} tangent to {2A = D^2 - (x-y)^2/4} at rest
    # constant-area rectangles parameterised by T2: x*y = x0*y0
    e = np.linspace(-0.35, 0.5, 86)
    if s0 < 0:  # long chambers: T2 = y, extra branches in T1 are the transverse edges
        y = y0 * (1 + e)
        x = x0 * y0 / y
        t2, t2_name = y, f"len{k}"
        extra = [(_nm(k, 1), _nm(k, 0)), (_nm(k + 1, 1), _nm(k + 1, 0))]
        t1 = 2 * np.sqrt((x - y) ** 2 / 4 + two_area) + 2 * wgt * x
    else:  # wide chambers: T2 = x, extra branches are the dorsal and ventral edges
        x = x0 * (1 + e)
        y = x0 * y0 / x
        t2, t2_name = x, f"wid{k}"
        extra = [(_nm(k, 1), _nm(k + 1, 1)), (_nm(k, 0), _nm(k + 1, 0))]
        t1 = 2 * np.sqrt((x - y) ** 2 / 4 + two_area) + 2 * wgt * y
    i0 = int(np.argmin(np.abs(e)))  # e = 0 is on the grid: the rest shape
    cf = np.polynomial.polynomial.polyfit(t2 - t2[i0], t1 - t1[i0], 4)
    branches = [(_nm(k, 0), _nm(k + 1, 1), 1.0), (_nm(k, 1), _nm(k + 1, 0), 1.0)]
    if wgt > 1e-9:
        branches += [(u, v, 2 * wgt) for u, v in extra]
    return branches, t2_name, [0.0] + [float(v) for v in cf[1:]]


def _mjcf(p: dict[str, Any]) -> str:
    pts = rest_points()
    widths = _widths()
    m = float(p["point_mass"])
    r0 = BASE_WIDTH / 2
    izz = 2 * m * r0 * r0
    out = [
        '<mujoco model="gpsx_octopus">',
        f'  <option timestep="{_f(DT_CONTROL / int(p["substeps"]))}" integrator="implicitfast" gravity="0 0 0">',
        '    <flag contact="disable"/>',
        "  </option>",
        "  <worldbody>",
        '    <body name="base">',
        f'      <joint name="base" type="hinge" axis="0 0 1" damping="{_f(p["hinge_damping"])}" '
        f'stiffness="{_f(p["hinge_stiffness"])}"/>',
        f'      <inertial pos="0 0 0" mass="{_f(2 * m)}" diaginertia="{_f(izz)} {_f(izz)} {_f(izz)}"/>',
        f'      <site name="V0" pos="0 {_f(-r0)} 0" size="0.01"/>',
        f'      <site name="D0" pos="0 {_f(r0)} 0" size="0.01"/>',
        "    </body>",
    ]
    for k in range(1, N_PAIRS):
        for side in (0, 1):
            nm = _nm(k, side)
            x, y = pts[2 * k + side]
            out += [
                f'    <body name="{nm}" pos="{_f(x)} {_f(y)} 0">',
                f'      <joint name="{nm}_x" type="slide" axis="1 0 0" damping="{_f(p["drag"])}"/>',
                f'      <joint name="{nm}_y" type="slide" axis="0 1 0" damping="{_f(p["drag"])}"/>',
                f'      <inertial pos="0 0 0" mass="{_f(m)}" diaginertia="1e-4 1e-4 1e-4"/>',
                f'      <site name="{nm}" size="0.01"/>',
                "    </body>",
            ]
    out += ["  </worldbody>", "  <tendon>"]
    pos = {_nm(k, s): pts[2 * k + s] for k in range(N_PAIRS) for s in (0, 1)}

    def spatial(name: str, a: str, b: str, stiff: float, damp: float, rng: tuple[float, float] | None) -> str:
        lim = ""
        if rng is not None:
            length = float(np.linalg.norm(pos[a] - pos[b]))
            lim = f' limited="true" range="{_f(rng[0] * length)} {_f(rng[1] * length)}"'
        return (
            f'    <spatial name="{name}" stiffness="{_f(stiff)}" damping="{_f(damp)}"{lim}>'
            f'<site site="{a}"/><site site="{b}"/></spatial>'
        )

    muscles = [(f"dorsal{k}", _nm(k, 1), _nm(k + 1, 1), k) for k in range(N_CHAMBERS)]
    muscles += [(f"ventral{k}", _nm(k, 0), _nm(k + 1, 0), k) for k in range(N_CHAMBERS)]
    muscles += [(f"transverse{k}", _nm(k + 1, 1), _nm(k + 1, 0), k) for k in range(N_CHAMBERS)]
    for name, a, b, _ in muscles:
        rng = p["transverse_range"] if name.startswith("transverse") else p["muscle_range"]
        out.append(spatial(name, a, b, p["edge_stiffness"], p["edge_damping"], rng))
    equalities = []
    for k in range(N_CHAMBERS):
        out.append(spatial(f"diag_a{k}", _nm(k, 0), _nm(k + 1, 1), p["diag_stiffness"], p["diag_damping"], None))
        out.append(spatial(f"diag_b{k}", _nm(k, 1), _nm(k + 1, 0), p["diag_stiffness"], p["diag_damping"], None))
        branches, t2_name, coef = _area_constraint(pts, k)
        path = "".join(
            (f'<pulley divisor="{_f(1 / w)}"/>' if i else "") + f'<site site="{u}"/><site site="{v}"/>'
            for i, (u, v, w) in enumerate(branches)
        )
        out.append(f'    <spatial name="area{k}">{path}</spatial>')
        if t2_name.startswith("len"):
            pair = f'<site site="{_nm(k, 1)}"/><site site="{_nm(k + 1, 1)}"/><pulley divisor="1"/>'
            pair += f'<site site="{_nm(k, 0)}"/><site site="{_nm(k + 1, 0)}"/>'
        else:
            pair = f'<site site="{_nm(k, 1)}"/><site site="{_nm(k, 0)}"/><pulley divisor="1"/>'
            pair += f'<site site="{_nm(k + 1, 1)}"/><site site="{_nm(k + 1, 0)}"/>'
        out.append(f'    <spatial name="{t2_name}">{pair}</spatial>')
        equalities.append(
            f'    <tendon name="hydrostat{k}" tendon1="area{k}" tendon2="{t2_name}" '
            f'polycoef="{" ".join(_f(v) for v in coef)}" solref="{_f(p["area_timeconst"])} 1" '
            f'solimp="{" ".join(_f(v) for v in p["area_solimp"])}"/>'
        )
    out += ["  </tendon>", "  <equality>", *equalities, "  </equality>", "  <actuator>"]
    for name, _, _, k in muscles:
        force = float(p["muscle_force"]) * 0.5 * (widths[k] + widths[k + 1]) / BASE_WIDTH
        out.append(
            f'    <general name="{name}" tendon="{name}" dyntype="none" gaintype="fixed" biastype="none" '
            f'gainprm="{_f(-force)}" ctrllimited="true" ctrlrange="0 1"/>'
        )
    out += ["  </actuator>", "</mujoco>"]
    return "\n".join(out)


def _params(overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - set(DEFAULT_PARAMS)
    if unknown:
        raise TypeError(f"unknown octopus model parameters: {sorted(unknown)}")
    p = {**DEFAULT_PARAMS, **overrides}
    if int(p["substeps"]) < 1:
        raise ValueError("substeps must be >= 1")
    return p


def build_octopus_model(**params: Any) -> mujoco.MjModel:
    """Compile the octopus arm; keyword overrides of ``DEFAULT_PARAMS`` (unknown keys raise TypeError)."""
    return mujoco.MjModel.from_xml_string(_mjcf(_params(params)))


def mjcf(**params: Any) -> str:
    """The MJCF text that ``build_octopus_model`` compiles (for inspection and saving)."""
    return _mjcf(_params(params))


def tip_position(data: mujoco.MjData) -> np.ndarray:
    """Tip = midpoint of the last pair of points, (2,) in the plane; valid after ``mj_kinematics``."""
    s = data.site_xpos
    return 0.5 * (s[2 * N_PAIRS - 2, :2] + s[2 * N_PAIRS - 1, :2])


def tip_jacobian(model: mujoco.MjModel, data: mujoco.MjData | None = None) -> np.ndarray:
    """d tip / d qpos, (2, nv). Constant: the last two points are slide-joint bodies (0.5 on their dofs).

    ``data`` is accepted for a uniform task API and not needed.
    """
    jac = np.zeros((2, model.nv))
    for side in (0, 1):
        for c, axis in enumerate("xy"):
            jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, f"{_nm(N_PAIRS - 1, side)}_{axis}")
            jac[c, model.jnt_dofadr[jid]] = 0.5
    return jac


def chamber_areas(data: mujoco.MjData) -> np.ndarray:
    """Signed shoelace area of each chamber, (6,); positive when not inverted. After ``mj_kinematics``."""
    s = data.site_xpos
    v = s[0 : 2 * N_PAIRS : 2, :2]
    d = s[1 : 2 * N_PAIRS : 2, :2]
    u = d[1:] - v[:-1]  # diagonal V_k -> D_(k+1)
    w = d[:-1] - v[1:]  # diagonal V_(k+1) -> D_k
    return 0.5 * (u[:, 0] * w[:, 1] - u[:, 1] * w[:, 0])


def rest_areas(model: mujoco.MjModel) -> np.ndarray:
    """Chamber areas at ``qpos0`` (the rest shape), (6,)."""
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    return chamber_areas(data)
