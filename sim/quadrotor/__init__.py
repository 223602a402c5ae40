"""The "Learning to Fly in Seconds" quadrotor: parameters, RK4 dynamics and the batched hover task."""

from sim.quadrotor.config import DomainRandomization, QuadrotorTaskConfig, RewardWeights
from sim.quadrotor.dynamics import STATE_DIM, quat_to_rotmat, state_derivative, step_dynamics
from sim.quadrotor.params import ParamTensors, QuadrotorParams, crazyflie_params, load_params
from sim.quadrotor.task import REWARD_TERMS, QuadrotorHoverEnv, reward_from_terms, reward_terms

__all__ = [
    "DomainRandomization", "ParamTensors", "QuadrotorHoverEnv", "QuadrotorParams", "QuadrotorTaskConfig",
    "REWARD_TERMS", "RewardWeights", "STATE_DIM", "crazyflie_params", "load_params", "quat_to_rotmat",
    "reward_from_terms", "reward_terms", "state_derivative", "step_dynamics",
]
