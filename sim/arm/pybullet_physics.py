"""The Panda tasks in PyBullet (DIRECT mode): the task's own MJCF scene rebuilt as Bullet multibodies.

The scene is defined once (:func:`sim.arm.mjcf.panda_mjcf` plus the task's bodies). This backend reads the
compiled ``MjModel`` at its reference pose and rebuilds it: every MuJoCo body with a joint becomes a Bullet link
(revolute/prismatic about the same axis, the same frame), bodies welded to it (flange, hand) are merged into it
with their exact combined mass, centre of mass and principal inertia, and every geom becomes the same Bullet
primitive (box, capsule, cylinder, sphere, plane) at the same place. So link frames, and therefore the TCP, are
the shared DH kinematics exactly (tests check < 1e-6 m). Free bodies (the cube) and fixed bodies (wall, hole
ring, moved like MuJoCo mocap bodies) are single-link multibodies; the floor is a Bullet plane.

Servos, with MuJoCo's semantics (:mod:`sim.arm.physics`): gravity is switched off in the Bullet world and applied
as an external force to free bodies only (MuJoCo's ``gravcomp="1"`` on every arm body); each physics step applies
joint torques that make Bullet's explicit step produce the acceleration of MuJoCo's ``implicitfast`` integrator:
``tau = M A^-1 (f - c) + c`` with the servo force ``f = clip(g kp e - g kv qd, +-limit) - b qd``, Bullet's bias
forces ``c`` (Coriolis, centrifugal), and ``A = M + armature + dt D``, ``D`` the joint damping plus the servo's
``kv`` where the servo is not saturated (MuJoCo drops the derivative of a clamped force). ``M`` comes from Bullet
once per control step. The fingers each get half the gripper servo (equal targets), where MuJoCo couples them
with an equality constraint.

What differs from MuJoCo: Bullet's contact model (rigid, ERP-stabilised, sequential impulses) against MuJoCo's
soft elliptic-cone contacts; Bullet multiplies the two friction coefficients where MuJoCo takes the larger, has no
torsional friction (MuJoCo condim 4), ignores the Coriolis term in the servo's implicit step, and reports contacts
per link (the peg shares its link with the hand and link 7). ``ArmSimConfig.envs_per_client`` envs share a Bullet
world, 4 m apart, stepped by one ``stepSimulation`` (default one world per env: the same numbers, faster).
"""

from __future__ import annotations

import mujoco
import numpy as np
import pybullet as pb

from sim.arm.config import ArmSimConfig
from sim.arm.physics import ArmPhysics
from sim.arm.pybullet_scene import GRAVITY, HIGH9, KP9, KV9, LIMIT9, LOW9, BulletScene, xyzw

TOUCH_DISTANCE = 1e-4
"""A Bullet contact point counts as a contact (MuJoCo's contact sensor) at this signed distance (m) or closer."""


class PybulletArmPhysics(BulletScene, ArmPhysics):
    """The scene of ``model`` in PyBullet (see the module docstring); ``sim.envs_per_client`` envs share a Bullet
    world; one thread (``sim.num_threads`` is not used)."""

    name = "pybullet"

    def __init__(self, model: mujoco.MjModel, num_envs: int, sim: ArmSimConfig, contacts, dr_bodies,
                 dr_geoms) -> None:
        self.model, self.num_envs, self.dt = model, num_envs, float(model.opt.timestep)
        per = num_envs if sim.envs_per_client <= 0 else int(sim.envs_per_client)
        self.client_of = np.arange(num_envs) // per
        self.chunks = [(0, num_envs)]
        self.ctrl = np.zeros((num_envs, 8))
        self.unstable = np.zeros(num_envs, dtype=bool)
        self.q9, self.qd9 = np.zeros((num_envs, 9)), np.zeros((num_envs, 9))
        self._contacts = np.zeros((num_envs, len(contacts)), dtype=bool)
        self.gain = np.ones(num_envs)
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        self._ref = data
        self._plan(model)
        self.clients, self.origins, self._plane = [], np.zeros((num_envs, 3)), {}
        self.robot = np.zeros(num_envs, dtype=np.int64)
        self.objects = {b: np.zeros(num_envs, dtype=np.int64) for b in self._objects}
        for c in range(int(self.client_of.max()) + 1):
            self._build_client(c)
        self._dr_bodies, self._dr_geoms = list(dr_bodies), list(dr_geoms)
        self._base_mass = {b: float(model.body(b).mass[0]) for b in self._dr_bodies}
        self._base_fric = {g: float(model.geom(g).friction[0]) for g in self._dr_geoms}
        self._pairs = [(self._where(g1), None if g2 is None else self._where(g2)) for g1, g2 in contacts]
        self._free = [b for b, kind in self._objects.items() if kind == "free"]
        self._fixed = [b for b, kind in self._objects.items() if kind == "fixed"]
        self._static = {"plane", *self._fixed}
        self.body_pos = {b: np.zeros((num_envs, 3)) for b in self._free}
        self.body_quat = {b: np.tile([1.0, 0, 0, 0], (num_envs, 1)) for b in self._free}
        self.body_vel = {b: np.zeros((num_envs, 6)) for b in self._free}
        self._fixed_pos = {b: np.tile(model.body(b).pos, (num_envs, 1)) for b in self._fixed}
        self._mass = {b: np.full(num_envs, float(model.body(b).mass[0])) for b in self._free}
        self.forward(range(num_envs))

    # ----- state --------------------------------------------------------------------------------------------------
    def _body(self, owner: str, i: int) -> int:
        if owner == "robot":
            return int(self.robot[i])
        if owner == "plane":
            return self._plane[self.client_of[i]]
        return int(self.objects[owner][i])

    @property
    def arm_q(self) -> np.ndarray:
        return self.q9[:, :7]

    @property
    def arm_qd(self) -> np.ndarray:
        return self.qd9[:, :7]

    @property
    def finger_q(self) -> np.ndarray:
        return self.q9[:, 7:]

    def contact(self, k: int) -> np.ndarray:
        return self._contacts[:, k]

    def body_state(self, body: str):
        return self.body_pos[body], self.body_quat[body], self.body_vel[body]

    def _read(self, ids) -> None:
        """Copy joint states, free-body states and contact flags of envs ``ids`` from Bullet."""
        for i in ids:
            pc = self.clients[self.client_of[i]]
            js = pb.getJointStates(int(self.robot[i]), self._dof_links, physicsClientId=pc)
            self.q9[i] = [s[0] for s in js]
            self.qd9[i] = [s[1] for s in js]
            for b in self._free:
                o = int(self.objects[b][i])
                pos, quat = pb.getBasePositionAndOrientation(o, physicsClientId=pc)
                lin, ang = pb.getBaseVelocity(o, physicsClientId=pc)
                q = np.array([quat[3], quat[0], quat[1], quat[2]])
                rot = np.array(pb.getMatrixFromQuaternion(quat)).reshape(3, 3)
                self.body_pos[b][i] = np.array(pos) - self.origins[i]
                self.body_quat[b][i] = q
                self.body_vel[b][i, :3], self.body_vel[b][i, 3:] = lin, rot.T @ np.array(ang)
            for k, (a, other) in enumerate(self._pairs):
                kw = {} if other is None else {"bodyB": self._body(other[0], i), "linkIndexB": other[1]}
                points = pb.getContactPoints(bodyA=self._body(a[0], i), linkIndexA=a[1], physicsClientId=pc, **kw)
                if other is None and a[0] in self._static:  # MuJoCo never collides two static geoms (a fixed wall
                    static = {self._body(o, i) for o in self._static}  # on the floor); Bullet reports them
                    points = [p for p in points if p[2] not in static]
                # Bullet keeps manifold points up to its contact threshold (positive distances): touching only
                self._contacts[i, k] = any(p[8] <= TOUCH_DISTANCE for p in points)

    def set_params(self, i: int, gain: float, mass: float, friction: float) -> None:
        pc, m = self.clients[self.client_of[i]], self.model
        self.gain[i] = gain
        for b in self._dr_bodies:
            bid = m.body(b).id
            self._mass[b][i] = self._base_mass[b] * mass
            pb.changeDynamics(int(self.objects[b][i]), -1, mass=self._mass[b][i],
                              localInertiaDiagonal=(m.body_inertia[bid] * mass).tolist(), physicsClientId=pc)
        for g in self._dr_geoms:
            owner, link = self._where(g)
            pb.changeDynamics(self._body(owner, i), link, lateralFriction=self._base_fric[g] * friction,
                              physicsClientId=pc)

    def _set_robot(self, i: int, q9: np.ndarray, qd9: np.ndarray) -> None:
        pb.resetJointStatesMultiDof(int(self.robot[i]), self._dof_links, [[float(v)] for v in q9],
                                    targetVelocities=[[float(v)] for v in qd9],
                                    physicsClientId=self.clients[self.client_of[i]])

    def reset(self, ids, q0, finger, gain, mass, friction) -> None:
        for j, i in enumerate(ids):
            self.set_params(i, gain[j], mass[j], friction[j])
            q9 = np.r_[q0[j], finger, finger]
            self._set_robot(i, q9, np.zeros(9))
            self.ctrl[i] = np.r_[q0[j], finger]
            for b in self._free:
                self.place_body(i, b, self.model.body(b).pos, self.model.body(b).quat)
            for b in self._fixed:
                self.move_fixed(i, b, self.model.body(b).pos)

    def place_body(self, i, body, pos, quat) -> None:
        pc, o = self.clients[self.client_of[i]], int(self.objects[body][i])
        pb.resetBasePositionAndOrientation(o, (np.asarray(pos, dtype=float) + self.origins[i]).tolist(),
                                           xyzw(quat), physicsClientId=pc)
        pb.resetBaseVelocity(o, [0.0] * 3, [0.0] * 3, physicsClientId=pc)

    def move_fixed(self, i, body, pos) -> None:
        self._fixed_pos[body][i] = pos
        b = self.model.body(body).id
        pb.resetBasePositionAndOrientation(int(self.objects[body][i]),
                                           (np.asarray(pos, dtype=float) + self.origins[i]).tolist(),
                                           xyzw(self.model.body_quat[b]),
                                           physicsClientId=self.clients[self.client_of[i]])

    def forward(self, ids) -> None:
        for pc in self.clients:
            pb.performCollisionDetection(physicsClientId=pc)
        self._read(ids)

    # ----- stepping -----------------------------------------------------------------------------------------------
    def step(self, nstep, prepare=None, finish=None) -> None:
        if prepare is not None:
            prepare(0, self.num_envs, 0)
        n, dt = self.num_envs, self.dt
        target = np.clip(np.c_[self.ctrl[:, :7], self.ctrl[:, 7:8], self.ctrl[:, 7:8]], LOW9, HIGH9)
        mass = np.array([pb.calculateMassMatrix(int(self.robot[i]), self.q9[i].tolist(),
                                                physicsClientId=self.clients[self.client_of[i]])
                         for i in range(n)])
        kp, kv = self.gain[:, None] * KP9, self.gain[:, None] * KV9
        kp[:, 7:], kv[:, 7:] = KP9[7:], KV9[7:]  # the gain randomisation scales the arm servos only
        gravity = {b: (self._mass[b][:, None] * GRAVITY).tolist() for b in self._free}
        eye, zero = np.eye(9), [0.0] * 9
        for _ in range(nstep):
            servo = kp * (target - self.q9) - kv * self.qd9
            force = np.clip(servo, -LIMIT9, LIMIT9) - self._damping * self.qd9
            # MuJoCo's implicitfast: damping and the servo's kv are implicit, kv only where the servo is not
            # saturated (a clamped force does not depend on the velocity)
            damping = self._damping + np.where(np.abs(servo) < LIMIT9, kv, 0.0)
            implicit = mass + eye * (self._armature + dt * damping)[:, None, :]
            # Bullet adds the bias (Coriolis, centrifugal) forces c itself, through M^-1: ask for the acceleration
            # (M + armature + dt D)^-1 (f - c), as MuJoCo integrates it
            bias = np.array([pb.calculateInverseDynamics(int(self.robot[i]), self.q9[i].tolist(),
                                                         self.qd9[i].tolist(), zero,
                                                         physicsClientId=self.clients[self.client_of[i]])
                             for i in range(n)])
            tau = (mass @ np.linalg.solve(implicit, (force - bias)[..., None]))[..., 0] + bias
            for i in range(n):
                pc = self.clients[self.client_of[i]]
                pb.setJointMotorControlArray(int(self.robot[i]), self._dof_links, pb.TORQUE_CONTROL,
                                             forces=tau[i].tolist(), physicsClientId=pc)
                for b in self._free:
                    o = int(self.objects[b][i])
                    com = pb.getBasePositionAndOrientation(o, physicsClientId=pc)[0]
                    pb.applyExternalForce(o, -1, gravity[b][i], com, pb.WORLD_FRAME, physicsClientId=pc)
            for pc in self.clients:
                pb.stepSimulation(physicsClientId=pc)
            for i in range(n):
                js = pb.getJointStates(int(self.robot[i]), self._dof_links,
                                       physicsClientId=self.clients[self.client_of[i]])
                self.q9[i] = [s[0] for s in js]
                self.qd9[i] = [s[1] for s in js]
        self._read(range(n))
        bad = ~(np.isfinite(self.q9).all(1) & (np.abs(self.qd9) < 100.0).all(1))
        for b in self._free:
            bad |= ~np.isfinite(self.body_pos[b]).all(1) | (np.abs(self.body_vel[b]) > 100.0).any(1)
        self.unstable[:] = bad
        for i in np.flatnonzero(bad):  # as MuJoCo does: back to the reference pose (the env then resets it)
            self._set_robot(i, np.zeros(9), np.zeros(9))
            for b in self._free:
                self.place_body(i, b, self.model.body(b).pos, self.model.body(b).quat)
        if bad.any():
            self.forward(np.flatnonzero(bad))
        if finish is not None:
            finish(0, n, 0)

    def get_state(self) -> np.ndarray:
        """Joints (q, qd), servo targets, free bodies (pos, quat, vel) and fixed-body positions per env; Bullet's
        contact caches are not part of it, so a resumed run continues close to, not bit-exactly like, the original."""
        parts = [self.q9, self.qd9, self.ctrl]
        for b in self._free:
            parts += [self.body_pos[b], self.body_quat[b], self.body_vel[b]]
        parts += [self._fixed_pos[b] for b in self._fixed]
        return np.concatenate(parts, 1).copy()

    def set_state(self, state: np.ndarray) -> None:
        state = np.asarray(state, dtype=np.float64)
        for i in range(self.num_envs):
            s = state[i]
            self._set_robot(i, s[:9], s[9:18])
            self.ctrl[i] = s[18:26]
            k = 26
            for b in self._free:
                self.place_body(i, b, s[k:k + 3], s[k + 3:k + 7])
                rot = np.array(pb.getMatrixFromQuaternion(xyzw(s[k + 3:k + 7]))).reshape(3, 3)
                pb.resetBaseVelocity(int(self.objects[b][i]), s[k + 7:k + 10].tolist(),
                                     (rot @ s[k + 10:k + 13]).tolist(),
                                     physicsClientId=self.clients[self.client_of[i]])
                k += 13
            for b in self._fixed:
                self.move_fixed(i, b, s[k:k + 3])
                k += 3
        self.forward(range(self.num_envs))

    def close(self) -> None:
        for pc in self.clients:
            pb.disconnect(physicsClientId=pc)
        self.clients = []
