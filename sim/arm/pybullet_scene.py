"""Building the Bullet world of a Panda task from its compiled MJCF (see :mod:`sim.arm.pybullet_physics`)."""

from __future__ import annotations

import mujoco
import numpy as np
import pybullet as pb

from sim.arm.kinematics import FINGER_MAX, JOINT_NAMES, Q_LOWER, Q_UPPER, TAU_LIMIT
from sim.arm.mjcf import FINGER_KP, FINGER_KV, KP, KV
from sim.quadrotor.pybullet_backend import _quiet_stdout

SPACING = 4.0
"""Distance (m) between neighbouring envs sharing a Bullet world."""
GRAVITY = np.array([0.0, 0.0, -9.81])
FINGER_NAMES = ("finger_joint1", "finger_joint2")
#: Servo gains per robot DOF (7 arm joints, 2 fingers): each finger gets half of the gripper's tendon servo.
KP9 = np.array([*KP, FINGER_KP / 2, FINGER_KP / 2])
KV9 = np.array([*KV, FINGER_KV / 2, FINGER_KV / 2])
LIMIT9 = np.array([*TAU_LIMIT, 70.0, 70.0])
LOW9 = np.array([*Q_LOWER, 0.0, 0.0])
HIGH9 = np.array([*Q_UPPER, FINGER_MAX, FINGER_MAX])


def xyzw(wxyz) -> list[float]:
    return [float(wxyz[1]), float(wxyz[2]), float(wxyz[3]), float(wxyz[0])]


def _quat(mat: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(mat).reshape(9))
    return q


class BulletScene:
    """Mixin of :class:`sim.arm.pybullet_physics.PybulletArmPhysics`: the scene of ``self.model`` as Bullet bodies.

    MuJoCo bodies with a joint become Bullet links, welded children are merged into them (exact combined mass,
    centre of mass and principal inertia), geoms become the same primitives at the same places.
    """

    # ----- building -----------------------------------------------------------------------------------------------
    def _plan(self, m: mujoco.MjModel) -> None:
        """Split the MuJoCo bodies into robot links (jointed bodies, welded children merged) and world objects."""
        root = m.body("link0").id
        self._objects: dict[str, str] = {}
        link_of = {root: -1}
        self._links: list[int] = []  # MuJoCo body id of each Bullet link, in MuJoCo (parent-first) order
        for b in range(1, m.nbody):
            name, par = m.body(b).name, m.body_parentid[b]
            if b == root:
                continue
            if par in link_of:
                if m.body_jntnum[b] == 0:
                    link_of[b] = link_of[par]
                elif m.body_jntnum[b] == 1 and m.jnt_type[m.body_jntadr[b]] in (int(mujoco.mjtJoint.mjJNT_HINGE),
                                                                               int(mujoco.mjtJoint.mjJNT_SLIDE)):
                    link_of[b] = len(self._links)
                    self._links.append(b)
                else:
                    raise ValueError(f"pybullet arm backend: robot body {name!r} needs one hinge or slide joint")
            elif par == 0:
                if m.body_mocapid[b] >= 0 or m.body_jntnum[b] == 0:
                    self._objects[name] = "fixed"
                elif m.body_jntnum[b] == 1 and m.jnt_type[m.body_jntadr[b]] == int(mujoco.mjtJoint.mjJNT_FREE):
                    self._objects[name] = "free"
                else:
                    raise ValueError(f"pybullet arm backend: world body {name!r} must be fixed, mocap or free")
            else:
                raise ValueError(f"pybullet arm backend: nested world body {name!r} is not supported")
        self._link_of = link_of
        joints = [m.joint(n).id for n in (*JOINT_NAMES, *FINGER_NAMES)]
        order = [m.jnt_bodyid[j] for j in joints]
        self._dof_links = [self._links.index(b) for b in order]  # Bullet link index of each of the 9 DOFs
        self._armature = np.array([m.dof_armature[m.jnt_dofadr[j]] for j in joints])
        self._damping = np.array([m.dof_damping[m.jnt_dofadr[j]] for j in joints])

    def _frame(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        return self._ref.xpos[b].copy(), self._ref.xmat[b].reshape(3, 3).copy()

    def _shape(self, pc: int, geoms: list[int], frame: tuple[np.ndarray, np.ndarray]) -> int:
        """One (compound) collision shape of ``geoms`` placed relative to ``frame`` (world position, rotation)."""
        m, d = self.model, self._ref
        p0, r0 = frame
        kinds, radii, halves, lengths, normals, poss, orns = [], [], [], [], [], [], []
        for g in geoms:
            t, s = m.geom_type[g], m.geom_size[g]
            pos = r0.T @ (d.geom_xpos[g] - p0)
            rot = r0.T @ d.geom_xmat[g].reshape(3, 3)
            if t == int(mujoco.mjtGeom.mjGEOM_BOX):
                kinds.append(pb.GEOM_BOX), radii.append(0.0), halves.append(list(s)), lengths.append(0.0)
            elif t in (int(mujoco.mjtGeom.mjGEOM_CAPSULE), int(mujoco.mjtGeom.mjGEOM_CYLINDER)):
                kinds.append(pb.GEOM_CAPSULE if t == int(mujoco.mjtGeom.mjGEOM_CAPSULE) else pb.GEOM_CYLINDER)
                radii.append(float(s[0])), halves.append([0.0] * 3), lengths.append(2.0 * float(s[1]))
            elif t == int(mujoco.mjtGeom.mjGEOM_SPHERE):
                kinds.append(pb.GEOM_SPHERE), radii.append(float(s[0])), halves.append([0.0] * 3), lengths.append(0.0)
            else:
                raise ValueError(f"pybullet arm backend: geom {m.geom(g).name!r} of type {t} is not supported")
            normals.append([0.0, 0.0, 1.0])
            poss.append(pos.tolist()), orns.append(xyzw(_quat(rot)))
        if not geoms:
            return -1
        return pb.createCollisionShapeArray(kinds, radii=radii, halfExtents=halves, lengths=lengths,
                                            planeNormals=normals, collisionFramePositions=poss,
                                            collisionFrameOrientations=orns, physicsClientId=pc)

    def _inertia(self, bodies: list[int], frame) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Mass, centre of mass, principal inertia and its rotation of ``bodies`` merged, in ``frame``."""
        m, d = self.model, self._ref
        p0, r0 = frame
        mass = sum(float(m.body_mass[b]) for b in bodies)
        com = sum(m.body_mass[b] * (r0.T @ (d.xipos[b] - p0)) for b in bodies) / mass
        tensor = np.zeros((3, 3))
        for b in bodies:
            r = r0.T @ d.ximat[b].reshape(3, 3)
            off = r0.T @ (d.xipos[b] - p0) - com
            shift = m.body_mass[b] * (off @ off * np.eye(3) - np.outer(off, off))  # parallel-axis theorem
            tensor += r @ np.diag(m.body_inertia[b]) @ r.T + shift
        diag, axes = np.linalg.eigh(tensor)
        if np.linalg.det(axes) < 0:
            axes[:, 0] *= -1
        return mass, com, diag, axes

    def _build_client(self, c: int) -> None:
        m = self.model
        with _quiet_stdout():  # the Bullet library prints its build time to fd 1 on connect
            pc = pb.connect(pb.DIRECT)
        self.clients.append(pc)
        pb.setGravity(0.0, 0.0, 0.0, physicsClientId=pc)  # gravity acts on free bodies only (see the module doc)
        pb.setPhysicsEngineParameter(fixedTimeStep=self.dt, numSubSteps=0, deterministicOverlappingPairs=1,
                                     physicsClientId=pc)
        floor = [g for g in range(m.ngeom) if m.geom_bodyid[g] == 0]
        if any(m.geom_type[g] != int(mujoco.mjtGeom.mjGEOM_PLANE) for g in floor):
            raise ValueError("pybullet arm backend: only a plane may sit on the MJCF world body")
        if floor:
            plane = pb.createMultiBody(0, pb.createCollisionShape(pb.GEOM_PLANE, physicsClientId=pc),
                                       physicsClientId=pc)
            self._set_contact(pc, plane, -1, floor[0])
            self._plane[c] = plane
        geoms_of = {}
        for g in range(m.ngeom):
            geoms_of.setdefault(m.geom_bodyid[g], []).append(g)
        root = m.body("link0").id
        link_geoms = {k: [] for k in range(-1, len(self._links))}
        link_bodies = {k: [] for k in range(-1, len(self._links))}
        for b, k in self._link_of.items():
            link_geoms[k] += geoms_of.get(b, [])
            link_bodies[k].append(b)
        base_frame = self._frame(root)
        base_shape = self._shape(pc, link_geoms[-1], base_frame)
        masses, shapes, poss, orns, ipos, iorn, parents, jtypes, axes = [], [], [], [], [], [], [], [], []
        self._link_inertia = []
        for k, b in enumerate(self._links):
            frame = self._frame(b)
            par = self._link_of[m.body_parentid[b]]
            pf = base_frame if par < 0 else self._frame(self._links[par])
            mass, com, diag, rot = self._inertia(link_bodies[k], frame)
            self._link_inertia.append(diag)
            masses.append(mass), shapes.append(self._shape(pc, link_geoms[k], frame))
            poss.append((pf[1].T @ (frame[0] - pf[0])).tolist()), orns.append(xyzw(_quat(pf[1].T @ frame[1])))
            ipos.append(com.tolist()), iorn.append(xyzw(_quat(rot)))
            parents.append(par + 1)
            j = m.body_jntadr[b]
            hinge = m.jnt_type[j] == int(mujoco.mjtJoint.mjJNT_HINGE)
            jtypes.append(pb.JOINT_REVOLUTE if hinge else pb.JOINT_PRISMATIC)
            axes.append(m.jnt_axis[j].tolist())
        for i in np.flatnonzero(self.client_of == c):
            side = int(np.ceil(np.sqrt(self.num_envs)))
            self.origins[i] = [SPACING * (i % side), SPACING * (i // side), 0.0]
            r = pb.createMultiBody(0.0, base_shape, -1, (self.origins[i] + base_frame[0]).tolist(),
                                   xyzw(_quat(base_frame[1])), linkMasses=masses, linkCollisionShapeIndices=shapes,
                                   linkVisualShapeIndices=[-1] * len(masses), linkPositions=poss,
                                   linkOrientations=orns, linkInertialFramePositions=ipos,
                                   linkInertialFrameOrientations=iorn, linkParentIndices=parents,
                                   linkJointTypes=jtypes, linkJointAxis=axes, physicsClientId=pc)
            self.robot[i] = r
            if link_geoms[-1]:
                self._set_contact(pc, r, -1, link_geoms[-1][0])
            for k in range(len(self._links)):
                pb.changeDynamics(r, k, linearDamping=0.0, angularDamping=0.0, jointDamping=0.0,
                                  maxJointVelocity=100.0, activationState=pb.ACTIVATION_STATE_DISABLE_SLEEPING,
                                  physicsClientId=pc)
                # alone: together with the other options Bullet keeps the inertia it derived from the shapes
                pb.changeDynamics(r, k, localInertiaDiagonal=self._link_inertia[k].tolist(), physicsClientId=pc)
                if link_geoms[k]:
                    self._set_contact(pc, r, k, link_geoms[k][-1])
            for dof, k in enumerate(self._dof_links):
                pb.changeDynamics(r, k, jointLowerLimit=float(LOW9[dof]), jointUpperLimit=float(HIGH9[dof]),
                                  physicsClientId=pc)
            pb.setJointMotorControlArray(r, self._dof_links, pb.VELOCITY_CONTROL, forces=[0.0] * 9,
                                         physicsClientId=pc)  # Bullet's default joint motors off: torques only
            for name, kind in self._objects.items():
                b = m.body(name).id
                frame = self._frame(b)
                mass = float(m.body_mass[b]) if kind == "free" else 0.0
                if kind == "free" and (np.abs(m.body_ipos[b]).max() > 1e-9 or abs(m.body_iquat[b][0]) < 1 - 1e-9):
                    raise ValueError(f"pybullet arm backend: free body {name!r} needs its inertia at its frame")
                o = pb.createMultiBody(mass, self._shape(pc, geoms_of.get(b, []), frame), -1,
                                       (self.origins[i] + frame[0]).tolist(), xyzw(_quat(frame[1])),
                                       physicsClientId=pc)
                if kind == "free":
                    pb.changeDynamics(o, -1, linearDamping=0.0, angularDamping=0.0,
                                      activationState=pb.ACTIVATION_STATE_DISABLE_SLEEPING, physicsClientId=pc)
                    pb.changeDynamics(o, -1, localInertiaDiagonal=m.body_inertia[b].tolist(), physicsClientId=pc)
                if geoms_of.get(b):
                    self._set_contact(pc, o, -1, geoms_of[b][0])
                self.objects[name][i] = o

    def _set_contact(self, pc: int, body: int, link: int, geom: int) -> None:
        """MuJoCo's contype/conaffinity as Bullet's group/mask (equivalent for the scene's arm and world bits),
        and the geom's sliding friction."""
        m = self.model
        pb.setCollisionFilterGroupMask(body, link, int(m.geom_contype[geom]), int(m.geom_conaffinity[geom]),
                                       physicsClientId=pc)
        pb.changeDynamics(body, link, lateralFriction=float(m.geom_friction[geom][0]), physicsClientId=pc)

    def _where(self, geom: str) -> tuple[str, int]:
        """``(owner, link)`` of a geom: owner "robot", "plane" or an object's body name."""
        m = self.model
        b = m.geom(geom).bodyid[0]
        if b == 0:
            return "plane", -1
        if b in self._link_of:
            return "robot", self._link_of[b]
        return m.body(b).name, -1

