"""Franka Panda: MJCF from Franka's DH table, torch-free FK/IK, manipulation tasks on MuJoCo or PyBullet physics.

``forward_kinematics`` and the IK (:mod:`sim.arm.ik`) are numpy only; the envs (torch, mujoco) are imported
lazily through ``ARM_TASKS`` so that the deploy runtime can import the kinematics without torch.
"""

from __future__ import annotations

from typing import Any

from sim.arm.kinematics import forward_kinematics, tcp_pose

__all__ = ["ARM_TASKS", "forward_kinematics", "tcp_pose"]


def _tasks() -> dict[str, tuple[type, type]]:
    from sim.arm.peg import PegInsertConfig, PegInsertEnv
    from sim.arm.pick import PickCubeConfig, PickCubeEnv
    from sim.arm.reach import ReachBimodalConfig, ReachBimodalEnv
    from sim.arm.reach_free import ReachConfig, ReachEnv

    return {
        "panda-reach": (ReachConfig, ReachEnv),
        "panda-pick-cube": (PickCubeConfig, PickCubeEnv),
        "panda-reach-bimodal": (ReachBimodalConfig, ReachBimodalEnv),
        "panda-peg-insert": (PegInsertConfig, PegInsertEnv),
    }


def __getattr__(name: str) -> Any:
    if name == "ARM_TASKS":
        return _tasks()
    raise AttributeError(f"module 'sim.arm' has no attribute {name!r}")
