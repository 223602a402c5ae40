"""The "Learning to Fly in Seconds" quadrotor: parameters, RK4 dynamics and the batched hover task."""

from sim.quadrotor import tasks  # noqa: F401  (registers "quadrotor-hover")
from sim.quadrotor.config import DomainRandomization, QuadrotorTaskConfig, RewardWeights
from sim.quadrotor.dynamics import STATE_DIM, quat_to_rotmat, state_derivative, step_dynamics
from sim.quadrotor.factory import make_hover_env
from sim.quadrotor.fused import FusedQuadrotorHoverEnv, fused_unsupported_reason
from sim.quadrotor.params import ParamTensors, QuadrotorParams, crazyflie_params, load_params
from sim.quadrotor.reward import REWARD_TERMS, reward_from_terms, reward_terms
from sim.quadrotor.task import QuadrotorHoverEnv

__all__ = [
    "DomainRandomization", "FusedQuadrotorHoverEnv", "ParamTensors", "QuadrotorHoverEnv", "QuadrotorParams",
    "QuadrotorTaskConfig", "REWARD_TERMS", "RewardWeights", "STATE_DIM", "crazyflie_params", "fused_unsupported_reason",
    "load_params", "make_hover_env", "quat_to_rotmat", "reward_from_terms", "reward_terms", "state_derivative",
    "step_dynamics",
]
