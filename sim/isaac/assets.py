"""USD assets written by the project, laid out as an Isaac Sim asset root, so Isaac Lab tasks run offline.

Every Isaac Lab asset is a USD file under the Nucleus asset root (``ISAACLAB_NUCLEUS_DIR/...``), fetched over
the network at run time. :func:`write_asset_root` writes our own versions of the files the tasks we use refer
to, at the same relative paths, and :mod:`sim.isaac.tasks` points the task's ``usd_path`` s at that directory
(the same layout as Isaac Sim's ``ISAACSIM_ASSET_ROOT``; a local mirror of NVIDIA's assets works too).

The files are USDA text written with ``pxr`` (usd-core, which Isaac Lab installs): UsdPhysics rigid bodies,
collision shapes, mass properties and joints, which Newton's USD importer reads.

Usage: ``python -m sim.isaac.assets DIR`` (writes every asset below; idempotent).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics

#: Relative paths (below the asset root) of the files this module writes, as Isaac Lab's configs name them.
CARTPOLE = "Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd"
GROUND_PLANE = "Isaac/IsaacLab/Environments/Grid/default_ground_plane_checker_v1/default_ground_plane.usda"
CRAZYFLIE = "RobotRL/Robots/Bitcraze/Crazyflie/crazyflie_hover.usda"
"""Ours, not an Isaac Lab asset (Isaac Lab's ``cf2x.usd`` has rotor joints; our task needs one body)."""
PANDA = "RobotRL/Robots/Franka/panda_reach.usda"
"""Ours (:mod:`sim.isaac.panda_asset`), not Isaac Lab's ``panda_instanceable.usd``."""

# Cart-pole dimensions (ours; documented in write_cartpole): a 4 m rail, a 1 kg cart, a 1.25 m 0.5 kg pole.
RAIL_HALF_LENGTH = 4.0
CART_MASS = 1.0
POLE_MASS = 0.5
POLE_LENGTH = 1.25


def _new_stage(path: Path, default_prim: str) -> tuple[Usd.Stage, Usd.Prim]:
    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, f"/{default_prim}").GetPrim()
    stage.SetDefaultPrim(root)
    return stage, root


def _save(stage: Usd.Stage, path: Path) -> Path:
    """Write the stage to ``path`` as USDA text, atomically (export to a temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}"
    if not stage.GetRootLayer().Export(str(tmp), args={"format": "usda"}):
        raise OSError(f"could not write {path}")
    tmp.replace(path)
    return path


def _box_link(stage: Usd.Stage, path: str, size: tuple[float, float, float], mass: float,
              pos: tuple[float, float, float] = (0.0, 0.0, 0.0), collide: bool = True) -> Usd.Prim:
    """A rigid body at ``pos`` with one box shape of full extents ``size`` and mass ``mass``."""
    link = UsdGeom.Xform.Define(stage, path)
    link.AddTranslateOp().Set(Gf.Vec3d(*pos))
    prim = link.GetPrim()
    UsdPhysics.RigidBodyAPI.Apply(prim)
    mass_api = UsdPhysics.MassAPI.Apply(prim)
    mass_api.CreateMassAttr(mass)
    sx, sy, sz = size
    mass_api.CreateDiagonalInertiaAttr(Gf.Vec3f(mass * (sy**2 + sz**2) / 12, mass * (sx**2 + sz**2) / 12,
                                                mass * (sx**2 + sy**2) / 12))
    mass_api.CreateCenterOfMassAttr(Gf.Vec3f(0.0, 0.0, 0.0))
    cube = UsdGeom.Cube.Define(stage, f"{path}/geometry")
    cube.CreateSizeAttr(1.0)
    cube.AddScaleOp().Set(Gf.Vec3f(*size))
    if collide:
        UsdPhysics.CollisionAPI.Apply(cube.GetPrim())
    return prim


def _joint(joint: UsdPhysics.Joint, body0: str, body1: str, pos0: tuple[float, float, float],
           pos1: tuple[float, float, float]) -> None:
    joint.CreateBody0Rel().SetTargets([Sdf.Path(body0)])
    joint.CreateBody1Rel().SetTargets([Sdf.Path(body1)])
    joint.CreateLocalPos0Attr(Gf.Vec3f(*pos0))
    joint.CreateLocalPos1Attr(Gf.Vec3f(*pos1))
    joint.CreateLocalRot0Attr(Gf.Quatf(1.0))
    joint.CreateLocalRot1Attr(Gf.Quatf(1.0))


def write_cartpole(path: Path) -> Path:
    """The cart-pole Isaac Lab's ``CARTPOLE_CFG`` loads: an articulation ``rail`` (fixed to the world) ->
    prismatic ``slider_to_cart`` along x (limits ±4 m) -> ``cart`` (1 kg) -> revolute ``cart_to_pole`` about y
    -> ``pole`` (0.5 kg, 1.25 m, hinged at its lower end). Joint positions 0: cart centred, pole upright."""
    stage, root = _new_stage(path, "cartpole")
    UsdPhysics.ArticulationRootAPI.Apply(root)
    rail = _box_link(stage, "/cartpole/rail", (2 * RAIL_HALF_LENGTH, 0.03, 0.03), 5.0, collide=False)
    cart = _box_link(stage, "/cartpole/cart", (0.3, 0.2, 0.15), CART_MASS, collide=False)
    pole = _box_link(stage, "/cartpole/pole", (0.04, 0.04, POLE_LENGTH), POLE_MASS,
                     pos=(0.0, 0.15, POLE_LENGTH / 2), collide=False)
    fixed = UsdPhysics.FixedJoint.Define(stage, "/cartpole/root_joint")
    fixed.CreateBody1Rel().SetTargets([rail.GetPath()])
    fixed.CreateLocalPos0Attr(Gf.Vec3f(0.0, 0.0, 0.0))
    fixed.CreateLocalPos1Attr(Gf.Vec3f(0.0, 0.0, 0.0))
    slider = UsdPhysics.PrismaticJoint.Define(stage, "/cartpole/slider_to_cart")
    _joint(slider, str(rail.GetPath()), str(cart.GetPath()), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    slider.CreateAxisAttr(UsdPhysics.Tokens.x)
    slider.CreateLowerLimitAttr(-RAIL_HALF_LENGTH)
    slider.CreateUpperLimitAttr(RAIL_HALF_LENGTH)
    hinge = UsdPhysics.RevoluteJoint.Define(stage, "/cartpole/cart_to_pole")
    _joint(hinge, str(cart.GetPath()), str(pole.GetPath()), (0.0, 0.15, 0.0), (0.0, 0.0, -POLE_LENGTH / 2))
    hinge.CreateAxisAttr(UsdPhysics.Tokens.y)
    return _save(stage, path)


def write_ground_plane(path: Path, half_size: float = 50.0) -> Path:
    """A ground plane in Isaac Sim's grid layout: ``/GroundPlane/Environment`` (a mesh, scaled by the spawner)
    and a collision ``Plane`` prim ``/GroundPlane/CollisionPlane`` at z = 0 (the spawner binds materials to it)."""
    stage, _ = _new_stage(path, "GroundPlane")
    env = UsdGeom.Xform.Define(stage, "/GroundPlane/Environment")
    env.AddScaleOp().Set(Gf.Vec3f(1.0, 1.0, 1.0))
    mesh = UsdGeom.Mesh.Define(stage, "/GroundPlane/Environment/Geometry")
    h = half_size
    mesh.CreatePointsAttr([(-h, -h, 0.0), (h, -h, 0.0), (h, h, 0.0), (-h, h, 0.0)])
    mesh.CreateFaceVertexCountsAttr([4])
    mesh.CreateFaceVertexIndicesAttr([0, 1, 2, 3])
    plane = UsdGeom.Plane.Define(stage, "/GroundPlane/CollisionPlane")
    plane.CreateAxisAttr(UsdGeom.Tokens.z)
    UsdPhysics.CollisionAPI.Apply(plane.GetPrim())
    return _save(stage, path)


def write_crazyflie(path: Path) -> Path:
    """The Crazyflie 2.x body of our hover task as one free rigid body ``/crazyflie/body``: the paper model's
    mass (27 g) and diagonal inertia (``sim/quadrotor/crazyflie.yaml``), centre of mass at the origin, a 9 x 9 x 3 cm
    box as its visual shape (no collisions: the task ends an episode 0.6 m from the target, far from anything).
    The rotors are not bodies: :mod:`sim.isaac.crazyflie` applies their thrusts and torques as a wrench."""
    from sim.quadrotor.task import resolve_frame

    prm = resolve_frame("crazyflie")
    stage, _ = _new_stage(path, "crazyflie")
    body = _box_link(stage, "/crazyflie/body", (0.09, 0.09, 0.03), prm.mass, collide=False)
    UsdPhysics.MassAPI(body).GetDiagonalInertiaAttr().Set(Gf.Vec3f(*prm.inertia))
    return _save(stage, path)


def write_panda(path: Path) -> Path:
    """The Franka Panda articulation of our reach task (:func:`sim.isaac.panda_asset.write_panda`)."""
    from sim.isaac.panda_asset import write_panda as write

    return write(path)


#: Every asset this module writes: relative path -> writer.
WRITERS = {CARTPOLE: write_cartpole, GROUND_PLANE: write_ground_plane, CRAZYFLIE: write_crazyflie,
           PANDA: write_panda}


def write_asset_root(root: Path) -> Path:
    """Write every asset of :data:`WRITERS` below ``root`` (an Isaac Sim asset-root layout); returns ``root``."""
    root = Path(root)
    for rel, writer in WRITERS.items():
        writer(root / rel)
    return root


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m sim.isaac.assets DIR")
    print(f"assets written below {write_asset_root(Path(sys.argv[1]))}")
