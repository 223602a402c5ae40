"""Configuration pieces shared by the Panda tasks (each task config composes them)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal


@dataclass
class ArmSimConfig:
    """Physics and control rates, batching."""

    physics_dt: float = 0.002
    """MuJoCo timestep (s); contact-rich tasks want 2 ms."""
    control_dt: float = 0.02
    """Control period (s), a multiple of ``physics_dt`` (50 Hz by default, the rate of a ros2_control loop)."""
    num_threads: int = 1
    """Threads stepping the MuJoCo worlds (each runs ``mj_step`` on a chunk of envs with the GIL released)."""
    envs_per_client: int = 1
    """PyBullet backend: envs sharing one Bullet world (one ``stepSimulation`` steps them all); 0: every env in one
    world. The numbers do not depend on it; one world per env is the fastest (``benchmarks/arm_sim_to_sim.py``).
    MuJoCo ignores it."""


@dataclass
class ArmActionConfig:
    """How the policy's action in [-1, 1] becomes joint position targets."""

    type: Literal["ee_delta", "joint_position"] = "ee_delta"
    """``ee_delta``: TCP delta (x, y, z[, yaw]) through the shared IK (:mod:`sim.arm.ik`); ``joint_position``:
    absolute joint targets, -1/+1 = lower/upper joint limit."""
    pos_scale: float = 0.02
    """TCP displacement (m) per control step at |a| = 1 (1 m/s at 50 Hz)."""
    yaw_scale: float = 0.1
    """Hand yaw change (rad) per control step at |a| = 1 (tasks with a yaw action)."""
    max_lead: float = 0.04
    """The commanded TCP target stays within this distance (m) of the measured TCP (no wind-up in contact)."""
    ik_iterations: int = 10
    """DLS iterations per control step (warm-started from the previous joint target)."""


@dataclass
class ArmDomainRandomization:
    """Per-env ranges sampled uniformly at every reset (set low == high to switch one off)."""

    object_mass_scale: tuple[float, float] = (0.7, 1.3)
    """Factor on the object's mass and inertia."""
    object_friction: tuple[float, float] = (0.7, 1.3)
    """Factor on the object's sliding friction."""
    gain_scale: tuple[float, float] = (0.9, 1.1)
    """Factor on every arm joint servo's kp and kv."""
    action_latency_steps: tuple[int, int] = (0, 1)
    """Delay (control steps, inclusive range) between the policy's action and the arm receiving it."""
    extra_latency: float = 0.0
    """Fixed delay (s, a multiple of ``sim.physics_dt``) of every action on top of ``action_latency_steps``: whole
    control steps join the step delay, the rest holds the previous servo targets for the first physics steps of each
    control step (sub-step latency, e.g. the robustness sweep's +10 ms at 50 Hz)."""


@dataclass
class ArmObsNoise:
    """Standard deviations of the Gaussian noise added to the policy group (the critic group is exact)."""

    joint_position: float = 0.001
    """rad, per joint (encoder + calibration); ee_position/rotation are the FK of the noisy joints."""
    joint_velocity: float = 0.02
    """rad/s, per joint."""
    gripper_width: float = 0.001
    """m."""
    object_position: float = 0.002
    """m, per step (object tracker jitter)."""
    object_quaternion: float = 0.01
    """Per component before re-normalising."""


@dataclass
class ArmWristFT:
    """A 6-axis force/torque sensor between the flange and the hand (the ``wrench`` observation group).

    It reads what a real wrist F/T sensor under ros2_control's ``force_torque_sensor_broadcaster`` publishes
    (``geometry_msgs/WrenchStamped`` in the sensor frame ``ft_sensor``, whose axes are the flange's: z out of the
    flange, towards the fingers): MuJoCo's ``force``/``torque`` sensor, the wrench (torque about the flange centre)
    that the arm exerts through the sensor on the hand, its fingers and what they hold; at rest it carries their
    weight: -m g along z when the hand points down, -7.95 N on the peg task. Per episode a zero offset (the
    drift left after taring), per step white noise, then a first-order low-pass (the broadcaster's
    ``wrench_filtered`` with a low-pass filter in its chain). MuJoCo backend only.
    """

    enabled: bool = False
    """Add the sensor and the ``wrench`` group (force x y z in N, torque x y z in N m)."""
    force_noise: float = 0.1
    """N, std of the white noise per axis and sample (a Mini45-class sensor at 1 kHz, before filtering)."""
    torque_noise: float = 0.005
    """N m, std of the white noise per axis and sample."""
    force_offset: float = 0.2
    """N, std of the per-episode zero offset per axis."""
    torque_offset: float = 0.01
    """N m, std of the per-episode zero offset per axis."""
    cutoff_hz: float = 10.0
    """Cutoff of the first-order low-pass at the control rate (0: no filter)."""


@dataclass
class ArmTaskBase:
    """Fields every Panda task config has."""

    num_envs: int = 16
    """Parallel worlds (MuJoCo, or PyBullet with ``impl="pybullet"``)."""
    episode_seconds: float = 8.0
    """Time limit (s); episodes reaching it are truncated."""
    terminate_on_success: bool = True
    """End the episode (terminated) once the success condition holds."""
    sim: ArmSimConfig = field(default_factory=ArmSimConfig)
    action: ArmActionConfig = field(default_factory=ArmActionConfig)
    dr: ArmDomainRandomization = field(default_factory=ArmDomainRandomization)
    noise: ArmObsNoise = field(default_factory=ArmObsNoise)
    ft_sensor: ArmWristFT = field(default_factory=ArmWristFT)
    """Wrist force/torque sensor: the opt-in ``wrench`` observation group (``robot-rl train resip --wrench``)."""
    device: str = "cpu"
    """Torch device of the returned tensors (physics always runs on the CPU)."""


def with_wrist_ft(task_cfg):
    """``task_cfg`` (a Panda task config) with the wrist force/torque sensor, and so the ``wrench`` group, enabled."""
    ft = getattr(task_cfg, "ft_sensor", None)
    if not isinstance(ft, ArmWristFT):
        raise ValueError(f"{type(task_cfg).__name__} has no wrist force/torque sensor (the Panda tasks have one)")
    return replace(task_cfg, ft_sensor=replace(ft, enabled=True))
