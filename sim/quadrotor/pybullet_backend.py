"""The hover task in PyBullet (DIRECT mode): every env's Crazyflie in one Bullet world, Bullet's own integrator.

Each drone is a single-body multibody (a collision box) whose mass and diagonal inertia are set with
``changeDynamics`` to the frame's (linear/angular damping 0, sleeping disabled: Bullet's defaults would damp
the drone and freeze a hovering one). Each physics step applies four ``applyExternalForce`` calls, the rotor
thrusts of our first-order motor model (:mod:`sim.quadrotor.engine_env`) at the rotor positions, and one
``applyExternalTorque``, the summed yaw reaction torques plus the episode's disturbance torque (Bullet clears
external forces after every ``stepSimulation``). Forces and torques are given in the world frame, rotated with
the drone's current orientation: Bullet's ``LINK_FRAME`` torques on a base are applied in the world frame by some
versions, so nothing here relies on it. Integrator: Bullet's semi-implicit Euler at ``dt / substeps``
(2 ms by default). Drones collide with a ground plane ``TARGET_HEIGHT`` below their targets, not with each other
(collision filter groups).
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np
import pybullet
from pybullet_utils.bullet_client import BulletClient

from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.engine_env import EngineHoverEnv, quat_rotate
from sim.quadrotor.mujoco_backend import COLLISION_HALF_SIZE

_DRONE_GROUP, _GROUND_GROUP = 1, 2


@contextlib.contextmanager
def _quiet_stdout():
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class PybulletHoverEnv(EngineHoverEnv):
    """The ``quadrotor-hover`` task with PyBullet physics (registered as backend ``pybullet``); see the module doc."""

    engine_name = "pybullet"

    def _build_engine(self, cfg: QuadrotorTaskConfig, n: int) -> None:
        from sim.quadrotor.task import resolve_frame

        prm = resolve_frame(cfg.frame)
        with _quiet_stdout():  # the Bullet library prints its build time and argv[0] to fd 1 on connect
            self._pb = pb = BulletClient(connection_mode=pybullet.DIRECT)
        self._cid = pb._client
        pb.setGravity(*prm.gravity)
        pb.setPhysicsEngineParameter(fixedTimeStep=self.physics_dt, numSubSteps=0, deterministicOverlappingPairs=1)
        plane = pb.createMultiBody(0.0, pb.createCollisionShape(pybullet.GEOM_PLANE))
        pb.setCollisionFilterGroupMask(plane, -1, _GROUND_GROUP, _DRONE_GROUP)
        box = pb.createCollisionShape(pybullet.GEOM_BOX, halfExtents=list(COLLISION_HALF_SIZE))
        self._ids = []
        for o in self.origins:
            b = pb.createMultiBody(prm.mass, box, -1, list(o))
            pb.changeDynamics(b, -1, mass=prm.mass, localInertiaDiagonal=list(prm.inertia), linearDamping=0.0,
                              angularDamping=0.0, activationState=pybullet.ACTIVATION_STATE_DISABLE_SLEEPING)
            pb.setCollisionFilterGroupMask(b, -1, _DRONE_GROUP, _GROUND_GROUP)
            self._ids.append(b)
        self._rotors = np.asarray(prm.rotor_positions, dtype=np.float64)  # [4, 3] body frame
        self._yaw = prm.torque_coefficient * np.asarray(prm.yaw_signs, dtype=np.float64)

    def _engine_reset(self, idx, pos, quat, vel, omega) -> None:
        w_world = quat_rotate(quat, omega)
        for k, i in enumerate(idx):
            q = quat[k]
            self._pb.resetBasePositionAndOrientation(self._ids[i], pos[k].tolist(), [q[1], q[2], q[3], q[0]])
            self._pb.resetBaseVelocity(self._ids[i], vel[k].tolist(), w_world[k].tolist())

    def _engine_set_params(self, idx, mass, inertia) -> None:
        for k, i in enumerate(idx):
            self._pb.changeDynamics(self._ids[i], -1, mass=float(mass[k]), localInertiaDiagonal=inertia[k].tolist())

    def _poses(self) -> tuple[np.ndarray, np.ndarray]:
        get, cid = pybullet.getBasePositionAndOrientation, self._cid
        poses = [get(b, physicsClientId=cid) for b in self._ids]
        pos = np.array([p for p, _ in poses])
        q = np.array([q for _, q in poses])
        return pos, q[:, [3, 0, 1, 2]]

    def _engine_substep(self, thrust, force, torque) -> None:
        pos, quat = self._poses()
        n = len(self._ids)
        arm = quat_rotate(quat, np.broadcast_to(self._rotors, (n, 4, 3)))  # rotor offsets in the world
        up = quat_rotate(quat, np.tile([0.0, 0.0, 1.0], (n, 1)))  # body z in the world
        at = (pos[:, None, :] + arm).tolist()
        f = (thrust[:, :, None] * up[:, None, :]).tolist()
        body_tau = torque + np.stack((np.zeros(n), np.zeros(n), thrust @ self._yaw), -1)
        tau = quat_rotate(quat, body_tau).tolist()
        dist, com = force.tolist(), pos.tolist()
        apply_force, apply_torque, world, cid = (pybullet.applyExternalForce, pybullet.applyExternalTorque,
                                                 pybullet.WORLD_FRAME, self._cid)
        for i, b in enumerate(self._ids):
            fi, ai = f[i], at[i]
            for j in range(4):  # the four rotor thrusts, each at its rotor
                apply_force(b, -1, fi[j], ai[j], world, physicsClientId=cid)
            apply_force(b, -1, dist[i], com[i], world, physicsClientId=cid)
            apply_torque(b, -1, tau[i], world, physicsClientId=cid)
        pybullet.stepSimulation(physicsClientId=cid)

    def _engine_read(self):
        pos, quat = self._poses()
        vels = [pybullet.getBaseVelocity(b, physicsClientId=self._cid) for b in self._ids]
        vel = np.array([v for v, _ in vels])
        w_world = np.array([w for _, w in vels])
        conj = quat * np.array([1.0, -1.0, -1.0, -1.0])
        return pos, quat, vel, quat_rotate(conj, w_world)

    def close(self) -> None:
        """Disconnect from the Bullet physics server."""
        if getattr(self, "_pb", None) is not None:
            self._pb.disconnect()
            self._pb = None
