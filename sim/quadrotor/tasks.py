"""Registration of the quadrotor tasks (imported by ``sim.quadrotor``)."""

from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.demo import open_loop_demo
from sim.quadrotor.evaluation import HOVER_PROTOCOL
from sim.quadrotor.factory import make_hover_env
from sim.registry import register_task


def _make(cfg: QuadrotorTaskConfig, seed: int = 0, impl: str = "torch", differentiable: bool = False):
    return make_hover_env(cfg, seed=seed, impl=impl, differentiable=differentiable)


register_task(
    "quadrotor-hover", config_cls=QuadrotorTaskConfig, env_factory=_make, evaluation=HOVER_PROTOCOL,
    backends=("torch", "fused", "mujoco", "pybullet"), aliases=("crazyflie",), demo=open_loop_demo,
    description="L2F hover/position hold from random states (motor RPM or attitude+thrust setpoints)")
