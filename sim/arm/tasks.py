"""Registration of the Panda tasks (imported by the registry on the first lookup of one, see :mod:`sim.arm.catalog`).

The registered envs are the task classes plus :class:`RegisteredArm`, which gives them what the trainers and
the exporter call through :class:`sim.core.BatchedEnv`: a checkpoint state of flat tensors, and an export spec in
the ``policy.json`` contract's vocabulary (:mod:`deploy.contract`), with plausibility ranges per component.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from sim.arm.base import ArmEnv
from sim.arm.experts import make_expert
from sim.arm.kinematics import FINGER_MAX, JOINT_NAMES, Q_LOWER, Q_UPPER, QD_LIMIT
from sim.arm.peg import PegInsertConfig, PegInsertEnv
from sim.arm.pick import PickCubeConfig, PickCubeEnv
from sim.arm.reach import ReachBimodalConfig, ReachBimodalEnv
from sim.arm.reach_free import ReachConfig, ReachEnv, ReachExpert
from sim.arm.robustness import ArmEvalConfig, arm_sweep
from sim.arm.video import record_video
from sim.evaluation import success_protocol
from sim.registry import register_task

STATE_PREFIX = "env."
#: Physics backends of every Panda task (:mod:`sim.arm.physics`); MuJoCo is the reference.
BACKENDS = ("mujoco", "pybullet")
#: Margin (m) of the plausibility range of positions beyond the controller's workspace box.
POSITION_MARGIN = 0.3


def _flatten(tree: dict[str, Any], prefix: str, out: dict[str, torch.Tensor]) -> None:
    for key, value in tree.items():
        if key == "rng":  # numpy bit-generator state: 128-bit integers, kept as JSON bytes
            out[prefix + key] = torch.tensor(list(json.dumps(value).encode()), dtype=torch.uint8)
        elif isinstance(value, dict):
            _flatten(value, f"{prefix}{key}.", out)
        else:
            out[prefix + key] = torch.from_numpy(np.array(value))


def _unflatten(template: dict[str, Any], prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in template.items():
        name = prefix + key
        if key == "rng":
            out[key] = json.loads(bytes(tensors[name].tolist()).decode())
        elif isinstance(value, dict):
            out[key] = _unflatten(value, f"{name}.", tensors)
        else:
            if name not in tensors:
                raise ValueError(f"checkpoint has no env state {name!r} (saved from another task or config?)")
            out[key] = tensors[name].numpy().copy()
    return out


def _ranges(env: ArmEnv, name: str, size: int) -> dict[str, Any]:
    """Unit and plausibility range of a policy observation component (physical limits with a margin)."""
    lo, hi = np.array(env.workspace_low) - POSITION_MARGIN, np.array(env.workspace_high) + POSITION_MARGIN
    nz = env.cfg.noise
    table = {
        "joint_position": ("rad", (Q_LOWER - 0.1).tolist(), (Q_UPPER + 0.1).tolist(), nz.joint_position),
        "joint_velocity": ("rad/s", (-1.5 * QD_LIMIT).tolist(), (1.5 * QD_LIMIT).tolist(), nz.joint_velocity),
        "ee_position": ("m", lo.tolist(), hi.tolist(), None),
        "ee_rotation_matrix": (None, -1.01, 1.01, None),
        "gripper_width": ("m", -0.005, 2 * FINGER_MAX + 0.005, nz.gripper_width),
        "object_position": ("m", lo.tolist(), hi.tolist(), nz.object_position),
        "object_quaternion": (None, -1.01, 1.01, nz.object_quaternion),
        "goal_position": ("m", lo.tolist(), hi.tolist(), None),
    }
    if name not in table:
        raise env.unsupported(f"export of the observation component {name!r}")
    unit, low, high, noise = table[name]
    comp: dict[str, Any] = {"name": name, "size": size, "valid_low": low, "valid_high": high}
    if name in ("ee_position", "object_position", "goal_position"):
        comp["frame"] = "base"
    if unit:
        comp["unit"] = unit
    if noise:
        comp["noise_std"] = noise
    return comp


def _component_names(name: str, size: int) -> list[str]:
    if name in ("joint_position", "joint_velocity") and size == len(JOINT_NAMES):
        return [f"{name}.{j}" for j in JOINT_NAMES]
    if name == "ee_rotation_matrix":
        return [f"{name}.r{i}{j}" for i in range(3) for j in range(3)]
    if name.endswith(("position", "offset")) and size == 3:
        return [f"{name}.{c}" for c in "xyz"]
    if name.endswith("quaternion") and size == 4:
        return [f"{name}.{c}" for c in "wxyz"]
    return [f"{name}.{i}" for i in range(size)]


class RegisteredArm:
    """Mixin over an :class:`ArmEnv` task: tensor checkpoints and the ``policy.json`` export contract."""

    def observation_names(self) -> dict[str, list[str]]:
        """One name per dimension of each observation group (``component.element``)."""
        state = self.rng.bit_generator.state  # the noisy components draw from the env's generator: put it back
        pol, cri = self._components()
        self.rng.bit_generator.state = state
        return {group: [n for name, v in comps for n in _component_names(name, v.shape[1])]
                for group, comps in (("policy", pol), ("critic", cri))}

    def state_dict(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        _flatten(ArmEnv.state_dict(self), STATE_PREFIX, out)
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        ArmEnv.load_state_dict(self, _unflatten(ArmEnv.state_dict(self), STATE_PREFIX, state))

    def export_spec(self) -> dict[str, Any]:
        raw = ArmEnv.export_spec(self)
        act, cfg = raw["action"], self.cfg.action
        obs = [_ranges(self, c["name"], c["size"]) for c in raw["observation"]]
        if act["type"] == "ee_delta":
            channels = list(act["dims"]) + (["gripper"] if act["gripper"] else [])
            action: dict[str, Any] = {
                "type": "ee_delta", "size": self.action_dim, "low": -1.0, "high": 1.0, "channels": channels,
                "position_scale": cfg.pos_scale, "frame": "base", "joints": list(JOINT_NAMES),
                "max_lead": cfg.max_lead, "workspace_low": act["workspace_low"],
                "workspace_high": act["workspace_high"], "ik_iterations": cfg.ik_iterations,
                "ik_module": act["ik_module"]}
            if "yaw" in channels:
                action["yaw_scale"] = cfg.yaw_scale
            if act["gripper"]:
                action["gripper"] = {"closed_width": act["gripper"]["width_closed"],
                                     "open_width": act["gripper"]["width_open"]}
        else:
            if act["gripper"]:
                raise self.unsupported("export of joint_position actions with a gripper channel (the contract's "
                                       "joint_position action has one element per arm joint)")
            action = {"type": "joint_position", "size": self.action_dim, "low": -1.0, "high": 1.0,
                      "joints": list(JOINT_NAMES), "delta": False, "scale": ((Q_UPPER - Q_LOWER) / 2).tolist(),
                      "offset": ((Q_UPPER + Q_LOWER) / 2).tolist()}
        action["joint_velocity_limit"] = act["joint_velocity_limit"]
        return {"observation": obs, "action": action, "control_rate_hz": raw["control_rate_hz"], "robot": "panda"}


def _registered(env_cls: type[ArmEnv]) -> type[ArmEnv]:
    return type(env_cls.__name__, (RegisteredArm, env_cls), {"__doc__": env_cls.__doc__,
                                                             "__module__": __name__})


def _factory(env_cls: type[ArmEnv]):
    cls = _registered(env_cls)

    def make(cfg: Any, seed: int = 0, impl: str = "mujoco", differentiable: bool = False) -> ArmEnv:
        env = cls(cfg, backend="mujoco" if impl == "auto" else impl)
        env.reset(seed=seed)
        return env

    return make


TASKS: dict[str, tuple[type, type[ArmEnv], str]] = {
    "panda-reach": (ReachConfig, ReachEnv, "Panda: move the TCP to a random goal in a 25x40x25 cm box (no obstacle)"),
    "panda-reach-bimodal": (ReachBimodalConfig, ReachBimodalEnv,
                            "Panda: reach a goal behind a thin wall, round its left or right edge"),
    "panda-pick-cube": (PickCubeConfig, PickCubeEnv, "Panda: lift a 4 cm cube (random place and yaw) by 10 cm, hold"),
    "panda-peg-insert": (PegInsertConfig, PegInsertEnv,
                         "Panda: insert a held peg into a hole (1-1.5 mm clearance, ~3 mm hole-pose noise)"),
}

def _expert(env: ArmEnv, seed: int = 0, action_noise: float = 0.0):
    if env.task_name == "panda-reach":
        return ReachExpert(env, seed=seed, action_noise=action_noise)
    return make_expert(env, seed=seed, action_noise=action_noise)


for _name, (_cfg_cls, _env_cls, _desc) in TASKS.items():
    register_task(_name, config_cls=_cfg_cls, env_factory=_factory(_env_cls),
                  evaluation=success_protocol(ArmEvalConfig, arm_sweep), description=_desc, backends=BACKENDS,
                  expert=_expert, video=record_video)
