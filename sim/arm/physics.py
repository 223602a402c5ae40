"""The physics seam of the Panda tasks: what a simulator backend supplies to :class:`sim.arm.base.ArmEnv`.

A task (scene, observations, rewards, termination, success, experts, randomisation) is written once against
:class:`ArmPhysics`; a backend supplies the physics: the arm's joint state, poses and velocities of the task's
bodies, contact flags, the joint-position servos (``ctrl``: seven arm targets and the finger opening, held for
``nstep`` physics steps) and resets. The scene itself is defined once, as MJCF (:mod:`sim.arm.mjcf` plus the task's
``_scene``); the MuJoCo backend runs it directly, the PyBullet backend (:mod:`sim.arm.pybullet_physics`) rebuilds
the same bodies and primitive geoms from the compiled ``MjModel``.

Servo semantics (both backends): per arm joint ``tau = clip(g kp (q* - q) - g kv qd, +-tau_limit) - b qd`` with
the per-env gain factor ``g`` (domain randomisation), joint damping ``b`` and rotor armature, on
gravity-compensated links (only free objects feel gravity); the fingers share one servo on their mean opening.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import mujoco
import numpy as np

from sim.arm.config import ArmSimConfig
from sim.arm.kinematics import JOINT_NAMES
from sim.arm.worlds import BatchedWorlds

ContactPair = tuple[str, str | None]
Prepare = Callable[[int, int, int], None]


class ArmPhysics:
    """Interface of an arm physics backend (``num_envs`` independent worlds of one compiled scene).

    Batched arrays (numpy, batch first, float64) are refreshed after :meth:`step`, :meth:`forward` and
    :meth:`set_state`. Body and geom names are the MJCF's; positions are in each env's own base frame.
    """

    name = "physics"
    num_envs: int
    ctrl: np.ndarray
    """``[N, 8]`` servo targets applied by the next :meth:`step`: seven arm joints (rad), finger opening (m)."""
    unstable: np.ndarray
    """``[N]`` bool: the world's physics diverged during the last :meth:`step` (it was reset by the backend)."""
    chunks: list[tuple[int, int]]
    """Row ranges ``(lo, hi)`` that :meth:`step` hands to ``prepare`` (one per worker thread)."""

    @property
    def arm_q(self) -> np.ndarray:
        """Arm joint positions ``[N, 7]``."""
        raise NotImplementedError

    @property
    def arm_qd(self) -> np.ndarray:
        """Arm joint velocities ``[N, 7]``."""
        raise NotImplementedError

    @property
    def finger_q(self) -> np.ndarray:
        """Finger openings ``[N, 2]`` (m, each 0..``FINGER_MAX``)."""
        raise NotImplementedError

    def contact(self, k: int) -> np.ndarray:
        """``[N]`` bool: contact pair ``k`` (in the order given at construction) touched in the last substep."""
        raise NotImplementedError

    def body_state(self, body: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Free body ``body``: position ``[N, 3]``, quaternion ``[N, 4]`` (w x y z) and velocity ``[N, 6]`` (world
        linear, then angular in the body frame: MuJoCo's free-joint velocity)."""
        raise NotImplementedError

    def reset(self, ids: np.ndarray, q0: np.ndarray, finger: float, gain: np.ndarray, mass: np.ndarray,
              friction: np.ndarray) -> None:
        """Reset worlds ``ids``: randomisation factors (servo gain, mass of ``dr_bodies``, friction of
        ``dr_geoms``), everything at rest, arm at ``q0 [k, 7]`` with targets ``q0``, fingers at ``finger``."""
        raise NotImplementedError

    def set_params(self, i: int, gain: float, mass: float, friction: float) -> None:
        """Randomisation factors of world ``i`` (as :meth:`reset` sets them)."""
        raise NotImplementedError

    def place_body(self, i: int, body: str, pos: np.ndarray, quat: np.ndarray) -> None:
        """Put free body ``body`` of world ``i`` at ``pos`` with quaternion ``quat`` (w x y z), at rest."""
        raise NotImplementedError

    def move_fixed(self, i: int, body: str, pos: np.ndarray) -> None:
        """Move the fixed (MJCF mocap) body ``body`` of world ``i`` to ``pos``."""
        raise NotImplementedError

    def set_marker(self, i: int, site: str, pos: np.ndarray) -> None:
        """Move the visual-only site ``site`` of world ``i`` (no physics)."""

    def forward(self, ids) -> None:
        """Recompute derived quantities (contacts, batched arrays) of worlds ``ids`` after their state was set."""
        raise NotImplementedError

    def step(self, nstep: int, prepare: Prepare | None = None, finish: Prepare | None = None) -> None:
        """Run ``prepare(lo, hi, chunk)`` per chunk (it may fill ``ctrl`` rows), then hold ``ctrl`` for ``nstep``
        physics steps, then run ``finish(lo, hi, chunk)`` per chunk (a task's fused observation kernel)."""
        raise NotImplementedError

    def get_state(self) -> np.ndarray:
        """``[N, k]`` state for :meth:`set_state` (checkpoints)."""
        raise NotImplementedError

    def set_state(self, state: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class MujocoArmPhysics(ArmPhysics):
    """The scene in MuJoCo: :class:`sim.arm.worlds.BatchedWorlds` (one ``MjModel`` + ``MjData`` per env, worker
    threads); contacts from the MJCF's ``contact`` sensors, servos are MuJoCo ``position`` actuators."""

    name = "mujoco"

    def __init__(self, model: mujoco.MjModel, num_envs: int, sim: ArmSimConfig, contacts: list[ContactPair],
                 dr_bodies: list[str], dr_geoms: list[str]) -> None:
        self.model = model
        self.worlds = BatchedWorlds(model, num_envs, sim.num_threads)
        self.num_envs, self.chunks = num_envs, self.worlds.chunks
        self.ctrl, self.unstable = self.worlds.ctrl, self.worlds.unstable
        arm_q = [model.jnt_qposadr[model.joint(n).id] for n in JOINT_NAMES]
        arm_v = [model.jnt_dofadr[model.joint(n).id] for n in JOINT_NAMES]
        if arm_q != list(range(7)) or arm_v != list(range(7)):
            raise RuntimeError("the arm joints must come first in the MJCF")
        self._finger_q = np.array([model.jnt_qposadr[model.joint(f"finger_joint{i}").id] for i in (1, 2)])
        self._kp0 = model.actuator_gainprm[:7, 0].copy()
        self._kv0 = -model.actuator_biasprm[:7, 2].copy()
        self._dr_bodies = [model.body(b).id for b in dr_bodies]
        self._dr_geoms = [model.geom(g).id for g in dr_geoms]
        self._ncontact = len(contacts)
        if model.nsensordata not in (self._ncontact, self._ncontact + 6):
            raise RuntimeError("one contact sensor per watched pair (then optionally force + torque) expected")

    @property
    def arm_q(self) -> np.ndarray:
        return self.worlds.qpos[:, :7]

    @property
    def arm_qd(self) -> np.ndarray:
        return self.worlds.qvel[:, :7]

    @property
    def finger_q(self) -> np.ndarray:
        return self.worlds.qpos[:, self._finger_q]

    def contact(self, k: int) -> np.ndarray:
        return self.worlds.sensordata[:, k] > 0

    def wrench(self) -> np.ndarray:
        """``[N, 6]`` force (N) and torque (N m) at the ``ft_sensor`` site, in its frame (MJCF ``ft_sensor=True``)."""
        if self.model.nsensordata != self._ncontact + 6:
            raise RuntimeError("this scene has no wrist force/torque sensor (panda_mjcf(..., ft_sensor=True))")
        return self.worlds.sensordata[:, self._ncontact:self._ncontact + 6]

    def _free(self, body: str) -> tuple[int, int]:
        j = self.model.joint(body)
        return self.model.jnt_qposadr[j.id], self.model.jnt_dofadr[j.id]

    def body_state(self, body: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q, v = self._free(body)
        qp, qv = self.worlds.qpos, self.worlds.qvel
        return qp[:, q:q + 3], qp[:, q + 3:q + 7], qv[:, v:v + 6]

    def set_params(self, i: int, gain: float, mass: float, friction: float) -> None:
        m, base = self.worlds.models[i], self.model
        m.actuator_gainprm[:7, 0] = self._kp0 * gain
        m.actuator_biasprm[:7, 1] = -self._kp0 * gain
        m.actuator_biasprm[:7, 2] = -self._kv0 * gain
        for b in self._dr_bodies:
            m.body_mass[b] = base.body_mass[b] * mass
            m.body_inertia[b] = base.body_inertia[b] * mass
        for g in self._dr_geoms:
            m.geom_friction[g, 0] = base.geom_friction[g, 0] * friction

    def reset(self, ids, q0, finger, gain, mass, friction) -> None:
        for j, i in enumerate(ids):
            m, d = self.worlds.models[i], self.worlds.datas[i]
            self.set_params(i, gain[j], mass[j], friction[j])
            mujoco.mj_resetData(m, d)
            d.qpos[:7] = q0[j]
            d.qpos[self._finger_q] = finger
            d.ctrl[:7] = q0[j]
            d.ctrl[7] = d.qpos[self._finger_q[0]]

    def place_body(self, i, body, pos, quat) -> None:
        q, _ = self._free(body)
        self.worlds.datas[i].qpos[q:q + 7] = [*pos, *quat]

    def move_fixed(self, i, body, pos) -> None:
        self.worlds.datas[i].mocap_pos[self.model.body(body).mocapid[0]] = pos

    def set_marker(self, i, site, pos) -> None:
        self.worlds.models[i].site_pos[self.model.site(site).id] = pos

    def forward(self, ids) -> None:
        self.worlds.forward(ids)

    def step(self, nstep, prepare=None, finish=None) -> None:
        self.worlds.step(nstep, prepare, finish)

    def get_state(self) -> np.ndarray:
        return self.worlds.get_state()

    def set_state(self, state) -> None:
        self.worlds.set_state(state)

    def close(self) -> None:
        self.worlds.close()


PHYSICS_BACKENDS = {"mujoco": ("sim.arm.physics", "MujocoArmPhysics", "mujoco"),
                    "pybullet": ("sim.arm.pybullet_physics", "PybulletArmPhysics", "pybullet")}
"""Backend name -> (module, class, pip package)."""


def make_physics(backend: str, model: mujoco.MjModel, num_envs: int, sim: ArmSimConfig, contacts: list[ContactPair],
                 dr_bodies: list[str], dr_geoms: list[str]) -> ArmPhysics:
    """The physics of ``model``'s scene on ``backend`` (a constructor with these arguments, ``contacts``: the watched
    geom pairs, ``dr_*``: the randomised bodies and geoms); a one-line error names a missing package."""
    if backend not in PHYSICS_BACKENDS:
        raise ValueError(f"unknown arm physics backend {backend!r}; choose from {', '.join(PHYSICS_BACKENDS)}")
    module, cls, package = PHYSICS_BACKENDS[backend]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != package:
            raise
        raise ModuleNotFoundError(f"the {backend} arm backend needs the {package} package: "
                                  "pip install -e '.[backends]'", name=package) from None
    return getattr(mod, cls)(model, num_envs, sim, contacts, dr_bodies, dr_geoms)


__all__ = ["ArmPhysics", "MujocoArmPhysics", "PHYSICS_BACKENDS", "make_physics"]
