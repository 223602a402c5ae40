"""The hover task's actor observation and action contract (the ``policy.json`` fields of its exports)."""

from __future__ import annotations

from typing import Any

from sim.quadrotor.attitude_level import attitude_action_spec
from sim.quadrotor.config import QuadrotorTaskConfig
from sim.quadrotor.params import QuadrotorParams

# Plausibility ranges written into policy.json (outside them the deployed runtime treats the input as a fault):
# physical limits of a small quadrotor with margin, far outside anything the policy trains on.
PLAUSIBLE_POSITION_ERROR = 100.0  # m from the target (a geofence, not this, bounds where the vehicle may fly)
PLAUSIBLE_SPEED = 20.0  # m/s (a Crazyflie tops out near 10 m/s)
PLAUSIBLE_RATE = 40.0  # rad/s (the Crazyflie's BMI088 gyro saturates at 2000 deg/s = 34.9 rad/s)


def hover_export_spec(cfg: QuadrotorTaskConfig, prm: QuadrotorParams) -> dict[str, Any]:
    """The actor observation and action contract of the hover task (``policy.json`` fields)."""
    noise = (cfg.obs_noise_position, cfg.obs_noise_rotation, cfg.obs_noise_linear_velocity,
             cfg.obs_noise_angular_velocity) if cfg.noise else (0.0, 0.0, 0.0, 0.0)
    lim = cfg.position_limit
    spec = {
        "observation": [
            # low/high: the training box (the runtime clamps into it); valid_*: plausibility (outside: a fault)
            {"name": "position", "size": 3, "frame": "world", "unit": "m", "relative_to": "target",
             "low": -lim, "high": lim, "valid_low": -PLAUSIBLE_POSITION_ERROR, "valid_high": PLAUSIBLE_POSITION_ERROR,
             "noise_std": noise[0]},
            {"name": "rotation_matrix", "size": 9, "frame": "body_to_world", "order": "row_major",
             "low": -1.0, "high": 1.0, "valid_low": -1.02, "valid_high": 1.02, "noise_std": noise[1]},
            {"name": "linear_velocity", "size": 3, "frame": "world", "unit": "m/s", "noise_std": noise[2],
             "valid_low": -PLAUSIBLE_SPEED, "valid_high": PLAUSIBLE_SPEED},
            {"name": "angular_velocity", "size": 3, "frame": "body", "unit": "rad/s", "noise_std": noise[3],
             "valid_low": -PLAUSIBLE_RATE, "valid_high": PLAUSIBLE_RATE},
            {"name": "action_history", "size": 4 * cfg.action_history, "steps": cfg.action_history,
             "order": "oldest_first", "initial_value": 0.0, "low": -1.0, "high": 1.0},
        ],
        "action": {
            "type": "motor_rpm", "size": 4, "low": -1.0, "high": 1.0,
            "mapping": "rpm = (clip(a, -1, 1) + 1) / 2 * (rpm_max - rpm_min) + rpm_min",
            "rpm_min": prm.rpm_min, "rpm_max": prm.rpm_max, "hover": prm.hover_action,
            "hover_rpm": prm.hover_rpm,
            "rotor_order": ["m1_front_right", "m2_back_right", "m3_back_left", "m4_front_left"],
            "rotor_positions": [list(r) for r in prm.rotor_positions],
            "yaw_signs": list(prm.yaw_signs),
            "safe_action": -1.0,
        },
        "control_rate_hz": 1.0 / cfg.dt,
        "robot": prm.name,
        "model": {k: v for k, v in prm.to_dict().items() if k != "extra"},
    }
    if not cfg.obs_angular_velocity:
        spec["observation"] = [c for c in spec["observation"] if c["name"] != "angular_velocity"]
    if cfg.action_level == "attitude_thrust":
        spec["action"] = attitude_action_spec(cfg.attitude, prm)
    return spec
