"""The hover task in MuJoCo: one MJCF world holding every env's Crazyflie, stepped by MuJoCo's own integrator.

Each drone is a free body with the frame's mass and diagonal inertia (an explicit ``<inertial>``; the collision
box carries no mass), four rotor sites at the frame's rotor positions and one actuator per rotor on its site
with the 6-D gear ``(0, 0, 1, 0, 0, k_m sign_i)``: the actuator force is the rotor thrust along the site's z
axis and the gear's torque row adds the rotor's yaw reaction torque, so MuJoCo applies every rotor's wrench at
its rotor. ``ctrl`` is set to the thrusts of our first-order motor model each physics step
(:mod:`sim.quadrotor.engine_env`); the episode's disturbance goes through ``xfrc_applied`` (world force at the
centre of mass, body torque rotated to the world). Integrator: MuJoCo's default semi-implicit Euler at
``dt / substeps`` (2 ms by default). Drones collide with an infinite ground plane ``TARGET_HEIGHT`` below their
targets (``contype``/``conaffinity`` masks keep them from colliding with each other).
"""

from __future__ import annotations

import mujoco
import numpy as np

from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.engine_env import EngineHoverEnv, quat_rotate
from sim.quadrotor.params import QuadrotorParams

COLLISION_HALF_SIZE = (0.045, 0.045, 0.012)
"""Half extents of a drone's collision box (m): the Crazyflie's rotor tips and battery height, roughly."""
WORLD_SIZE = 16
"""Drones per MuJoCo world (see :class:`MujocoHoverEnv`)."""


def hover_mjcf(prm: QuadrotorParams, origins: np.ndarray, physics_dt: float, integrator: str = "Euler") -> str:
    """The MJCF of ``len(origins)`` drones of frame ``prm`` starting at ``origins`` above a ground plane."""
    g = " ".join(f"{x:g}" for x in prm.gravity)
    inertia = " ".join(f"{x:.10g}" for x in prm.inertia)
    box = " ".join(f"{x:g}" for x in COLLISION_HALF_SIZE)
    bodies, actuators = [], []
    for i, o in enumerate(origins):
        sites = "".join(f'<site name="d{i}r{j}" pos="{r[0]:g} {r[1]:g} {r[2]:g}" size="0.005"/>'
                        for j, r in enumerate(prm.rotor_positions))
        bodies.append(f'<body name="drone{i}" pos="{o[0]:g} {o[1]:g} {o[2]:g}"><freejoint/>'
                      f'<inertial pos="0 0 0" mass="{prm.mass:.10g}" diaginertia="{inertia}"/>'
                      f'<geom type="box" size="{box}" contype="1" conaffinity="0" mass="0"/>{sites}</body>')
        actuators += [f'<general site="d{i}r{j}" gear="0 0 1 0 0 {prm.torque_coefficient * s:.10g}"/>'
                      for j, s in enumerate(prm.yaw_signs)]
    return (f'<mujoco model="{prm.name}-hover"><option timestep="{physics_dt:.10g}" gravity="{g}" '
            f'integrator="{integrator}"/><worldbody>'
            '<geom name="ground" type="plane" size="0 0 1" contype="0" conaffinity="1" friction="0.8 0.005 0.0001"/>'
            + "".join(bodies) + "</worldbody><actuator>" + "".join(actuators) + "</actuator></mujoco>")


class MujocoHoverEnv(EngineHoverEnv):
    """The ``quadrotor-hover`` task with MuJoCo physics (registered as backend ``mujoco``); see the module doc.

    The envs are split into worlds of at most :data:`WORLD_SIZE` drones: MuJoCo computes each site actuator's
    transmission with a Jacobian over every degree of freedom of its world, so one world of N drones would cost
    O(N^2) per step.
    """

    engine_name = "mujoco"

    def _build_engine(self, cfg: QuadrotorTaskConfig, n: int) -> None:
        from sim.quadrotor.task import resolve_frame

        prm = resolve_frame(cfg.frame)
        self._worlds = []
        for lo in range(0, n, WORLD_SIZE):
            rows = np.arange(lo, min(n, lo + WORLD_SIZE))
            model = mujoco.MjModel.from_xml_string(hover_mjcf(prm, self.origins[rows], self.physics_dt))
            data = mujoco.MjData(model)
            k = len(rows)
            # views: qpos = pos (3, world) + quat (w, x, y, z); qvel = linear (world) + angular (body) velocity
            self._worlds.append((rows, model, data, data.qpos.reshape(k, 7), data.qvel.reshape(k, 6),
                                 data.ctrl.reshape(k, 4), data.xfrc_applied[1:]))

    def _engine_reset(self, idx, pos, quat, vel, omega) -> None:
        for rows, _, _, qpos, qvel, _, _ in self._worlds:
            sel = (idx >= rows[0]) & (idx <= rows[-1])
            local = idx[sel] - rows[0]
            qpos[local, :3], qpos[local, 3:] = pos[sel], quat[sel]
            qvel[local, :3], qvel[local, 3:] = vel[sel], omega[sel]

    def _engine_set_params(self, idx, mass, inertia) -> None:
        for rows, model, data, *_ in self._worlds:
            sel = (idx >= rows[0]) & (idx <= rows[-1])
            if sel.any() and not (np.array_equal(model.body_mass[1 + idx[sel] - rows[0]], mass[sel])
                                  and np.array_equal(model.body_inertia[1 + idx[sel] - rows[0]], inertia[sel])):
                model.body_mass[1 + idx[sel] - rows[0]] = mass[sel]
                model.body_inertia[1 + idx[sel] - rows[0]] = inertia[sel]
                # MuJoCo caches quantities derived from mass and inertia; mj_setConst recomputes them at qpos0
                # and leaves data there, so the other drones of the world are put back afterwards
                saved = data.qpos.copy(), data.qvel.copy(), data.qacc_warmstart.copy()
                mujoco.mj_setConst(model, data)
                data.qpos[:], data.qvel[:], data.qacc_warmstart[:] = saved

    def _engine_substep(self, thrust, force, torque) -> None:
        for rows, model, data, qpos, _, ctrl, xfrc in self._worlds:
            ctrl[:] = thrust[rows]
            xfrc[:, :3] = force[rows]
            xfrc[:, 3:] = quat_rotate(qpos[:, 3:], torque[rows])
            mujoco.mj_step(model, data)

    def _engine_read(self):
        qpos = np.concatenate([w[3] for w in self._worlds])
        qvel = np.concatenate([w[4] for w in self._worlds])
        return qpos[:, :3], qpos[:, 3:], qvel[:, :3], qvel[:, 3:]
