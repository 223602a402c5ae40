"""Configuration of the L2F hover task (defaults are the paper's values)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim.quadrotor.vehicles import VehicleDistribution


@dataclass
class RewardWeights:
    """Weights of the quadratic cost; the reward is ``-scale * cost + constant``."""

    position: float = 5.0
    """w_p on ||p - target||^2."""
    orientation: float = 5.0
    """w_q on 1 - q_w^2."""
    linear_velocity: float = 0.01
    """w_v on ||v||^2."""
    angular_velocity: float = 0.0
    """w_omega on ||omega||^2."""
    action: float = 0.01
    """w_a on ||a - hover_action||^2."""
    scale: float = 0.5
    """Multiplier of the weighted cost."""
    constant: float = 2.0
    """Per-step survival bonus added after scaling."""

    def as_list(self) -> list[float]:
        return [self.position, self.orientation, self.linear_velocity, self.angular_velocity, self.action]


@dataclass
class DomainRandomization:
    """Per-env parameter randomisation, sampled at every reset (off by default, as in the paper).

    Each range is a multiplicative factor ``(low, high)`` sampled uniformly per env.
    """

    mass: tuple[float, float] = (1.0, 1.0)
    inertia: tuple[float, float] = (1.0, 1.0)
    thrust_coefficient: tuple[float, float] = (1.0, 1.0)
    motor_time_constant: tuple[float, float] = (1.0, 1.0)
    obs_latency_steps: tuple[int, int] = (0, 0)
    """Actor observation delay in control steps, sampled uniformly from the inclusive range."""

    @property
    def enabled(self) -> bool:
        return any(r != (1.0, 1.0) for r in (self.mass, self.inertia, self.thrust_coefficient,
                                             self.motor_time_constant)) or self.obs_latency_steps != (0, 0)


@dataclass
class AttitudeLevelConfig:
    """Action scaling and radio link of the ``attitude_thrust`` level (the radio rate is ``1 / dt``)."""

    roll_max_deg: float = 20.0
    """|roll| setpoint at |a| = 1 (deg)."""
    pitch_max_deg: float = 20.0
    """|pitch| setpoint at |a| = 1 (deg)."""
    yaw_rate_max_deg_s: float = 90.0
    """|yaw rate| setpoint at |a| = 1 (deg/s)."""
    thrust_low: float = 20000.0
    """Thrust setpoint (PWM units) at a = -1."""
    thrust_high: float = 60000.0
    """Thrust setpoint at a = +1 (the firmware caps setpoints at 60000)."""
    latency_ms: tuple[float, float] = (10.0, 30.0)
    """Radio latency, drawn per episode uniformly from this range (ms)."""

    def scale_offset(self) -> tuple[list[float], list[float]]:
        """``value = offset + scale * a`` per channel (roll, pitch, yaw rate, thrust)."""
        half = 0.5 * (self.thrust_high - self.thrust_low)
        return ([self.roll_max_deg, self.pitch_max_deg, self.yaw_rate_max_deg_s, half],
                [0.0, 0.0, 0.0, self.thrust_low + half])


@dataclass
class QuadrotorTaskConfig:
    """The hover task of "Learning to Fly in Seconds"."""

    num_envs: int = 1
    device: str = "cpu"
    frame: str = "crazyflie"
    """Frame name (a YAML file in sim/quadrotor/) or a path to a parameter YAML file."""
    dt: float = 0.01
    """Control and integration step (s); at the attitude_thrust level also the radio's setpoint period."""
    action_level: str = "motor_rpm"
    """``motor_rpm`` (the paper: direct rotor speeds) or ``attitude_thrust`` (roll, pitch, yaw rate, thrust
    setpoints through the radio link and the frame's onboard attitude controller)."""
    attitude: AttitudeLevelConfig = field(default_factory=AttitudeLevelConfig)
    """Scaling and radio link of the attitude_thrust level."""
    obs_angular_velocity: bool = True
    """Include the body angular velocity in the actor observation (off: pose-only state estimates suffice)."""
    episode_length: int = 500
    """Steps until truncation."""
    action_history: int = 32
    """Previous actions in the actor observation, oldest first."""
    critic_actor_inputs: bool = True
    """Give the critic what, besides the state, determines the actor's action: its action history (after the
    privileged state) and, when observation latency is randomised, its latency. The L2F paper's critic (28) has
    neither; ``paper-td3`` turns this off to reproduce it."""
    critic_action_history: int = 0
    """With ``critic_actor_inputs``: how many of the actor's most recent actions the critic reads, oldest first
    (0: all ``action_history`` of them). A short window gives the critic the actions still in flight (the rotors
    lag ~15 steps) without the 128 inputs of the whole history."""
    position_limit: float = 0.6
    """An episode terminates when any |p_i - target_i| exceeds this (m)."""
    obs_noise_position: float = 0.001
    obs_noise_rotation: float = 0.001
    obs_noise_linear_velocity: float = 0.002
    obs_noise_angular_velocity: float = 0.002
    noise: bool = True
    """Add Gaussian noise to the actor observation."""
    reward: RewardWeights = field(default_factory=RewardWeights)
    init_guidance: float = 0.1
    """Probability that an episode starts exactly at the target with identity attitude."""
    init_max_position: float = 0.2
    init_max_angle_deg: float = 90.0
    init_max_linear_velocity: float = 1.0
    init_max_angular_velocity: float = 1.0
    init_rpm: float = 10851.0
    """Rotor speed at the start of an episode (RPM): the L2F paper's 10,851, the speed its action 0 commands."""
    init_rpm_relative: bool = False
    """Start the rotors instead at the speed action 0 commands on each env's own frame or vehicle, as the paper's
    code does (RLtools ``relative_rpm`` with ``min_rpm = max_rpm = 0``: the middle of the env's own action range,
    ``(a + 1) / 2 * rpm_max_v`` on a vehicle, not below its idle floor). On the paper's model both are 10,851 RPM;
    on a weak vehicle the relative start is the slower one (benchmarks/README.md, robust hover)."""
    init_rpm_hover: bool = False
    """Start the rotors instead at each env's own hover speed (four rotors carry its weight; within its idle floor
    and top speed), as a policy that takes over a vehicle in flight finds them (``robot-rl quadrotor-sim`` holds
    its vehicle so until the first command). Excludes ``init_rpm_relative``."""
    disturbance_force_std_g: float = 1.0 / 20.0
    """Std of the per-episode world force per axis, as a fraction of the weight m*g."""
    disturbance_torque_std: float = 2.65e-5
    """Std of the per-episode body torque per axis (N m)."""
    randomization: DomainRandomization = field(default_factory=DomainRandomization)
    vehicles: VehicleDistribution = field(default_factory=VehicleDistribution)
    """Per-env vehicles drawn from published Crazyflie spans at every reset (``sim/quadrotor/vehicles.py``;
    off by default; excludes ``randomization``'s physical factors)."""


def init_min_w(cfg: QuadrotorTaskConfig) -> float:
    """``cos(init_max_angle_deg / 2)``: the smallest ``q_w`` of an initial attitude (1: every episode starts level);
    a clear error outside [0, 180] degrees."""
    if not 0.0 <= cfg.init_max_angle_deg <= 180.0:
        raise ValueError(f"init_max_angle_deg must be in [0, 180], got {cfg.init_max_angle_deg}")
    return math.cos(math.radians(cfg.init_max_angle_deg) / 2)


def start_rpm_mode(cfg: QuadrotorTaskConfig) -> int:
    """Where an episode's rotors start: 0 at ``init_rpm``, 1 at action 0's speed (``init_rpm_relative``), 2 at the
    env's hover speed (``init_rpm_hover``); a clear error for both options at once."""
    if cfg.init_rpm_relative and cfg.init_rpm_hover:
        raise ValueError("init_rpm_relative and init_rpm_hover exclude each other: choose one rotor start")
    return 1 if cfg.init_rpm_relative else 2 if cfg.init_rpm_hover else 0


def critic_history_actions(cfg: QuadrotorTaskConfig) -> int:
    """How many of the actor's past actions the critic group holds (``critic_actor_inputs``,
    ``critic_action_history``); a clear error for a window longer than the history or negative."""
    if not 0 <= cfg.critic_action_history <= cfg.action_history:
        raise ValueError(f"critic_action_history must be in [0, action_history={cfg.action_history}], "
                         f"got {cfg.critic_action_history}")
    if not cfg.critic_actor_inputs:
        return 0
    return cfg.critic_action_history or cfg.action_history
