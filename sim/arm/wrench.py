"""The wrist force/torque reading of the ``wrench`` observation group (:class:`sim.arm.config.ArmWristFT`).

The physics backend supplies the exact wrench at the ``ft_sensor`` site every control step; this adds what the real
sensor chain adds: a per-episode zero offset, white noise per sample and a first-order low-pass at the control rate
(``y += alpha (x - y)``, ``alpha = 1 - exp(-2 pi f_c dt)``), the filter starting settled at each episode's first
reading. It draws from a generator of its own, so turning the sensor on leaves every other observation, reset and
noise draw of the env exactly as they were (runs with and without it see the same episodes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.arm.config import ArmWristFT

#: Component names of the group, in order (``geometry_msgs/Wrench``: force x y z, torque x y z).
WRENCH_COMPONENTS = ("force", "torque")


class WristWrench:
    """Per-env sensor state: offsets ``[N, 6]``, filter state ``[N, 6]`` and the noise generator."""

    def __init__(self, cfg: ArmWristFT, num_envs: int, dt: float) -> None:
        if min(cfg.force_noise, cfg.torque_noise, cfg.force_offset, cfg.torque_offset, cfg.cutoff_hz) < 0:
            raise ValueError("ft_sensor noise, offset and cutoff_hz must be >= 0")
        self.alpha = 1.0 - np.exp(-2 * np.pi * cfg.cutoff_hz * dt) if cfg.cutoff_hz > 0 else 1.0
        self.noise = np.repeat([cfg.force_noise, cfg.torque_noise], 3)
        self.offset_std = np.repeat([cfg.force_offset, cfg.torque_offset], 3)
        self.offset = np.zeros((num_envs, 6))
        self.value = np.zeros((num_envs, 6))
        self.rng = np.random.default_rng(0)

    def seed(self, seed: int) -> None:
        """Reseed (with the env's reset seed; the stream is the env's seed mixed with a constant)."""
        self.rng = np.random.default_rng([seed, 0x57F7])

    def _sample(self, exact: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return exact[ids] + self.offset[ids] + self.noise * self.rng.standard_normal((len(ids), 6))

    def reset(self, ids: np.ndarray, exact: np.ndarray) -> None:
        """New episodes of ``ids``: fresh offsets, the filter settled on their first sample (``exact``: ``[N, 6]``)."""
        self.offset[ids] = self.offset_std * self.rng.standard_normal((len(ids), 6))
        self.value[ids] = self._sample(exact, ids)

    def update(self, exact: np.ndarray) -> None:
        """One control step of every env: a new sample through the filter."""
        self.value += self.alpha * (self._sample(exact, np.arange(len(exact))) - self.value)

    def observe(self) -> np.ndarray:
        """``[N, 6]`` the group's values (float32)."""
        return self.value.astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"offset": self.offset.copy(), "value": self.value.copy(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.offset, self.value = state["offset"].copy(), state["value"].copy()
        self.rng.bit_generator.state = state["rng"]


#: Plausibility range of a reading at deployment (N, N m): beyond it the sensor is broken or the arm has collided.
VALID_FORCE, VALID_TORQUE = 1000.0, 100.0


def wrench_contract(cfg: ArmWristFT, control_rate_hz: float) -> dict[str, Any]:
    """``composition.wrench`` of an export whose residual reads this sensor: what the runtime must feed it."""
    return {
        "names": ["force.x", "force.y", "force.z", "torque.x", "torque.y", "torque.z"],
        "units": ["N"] * 3 + ["N m"] * 3,
        "frame": "ft_sensor: origin at the flange centre, the flange's axes (z out of the flange, towards the fingers)",
        "sign": "the wrench the arm exerts through the sensor on the hand side; at rest with the hand pointing "
                "down, force.z = -(mass of hand, fingers and held object) * g (-7.95 N on panda-peg-insert)",
        "message": "geometry_msgs/WrenchStamped in the sensor frame, as ros2_control's "
                   "force_torque_sensor_broadcaster publishes it (<controller>/wrench_filtered, its filter chain a "
                   "first-order low-pass as below; <controller>/wrench if the sensor filters itself)",
        "filter": {"type": "first_order_low_pass", "cutoff_hz": cfg.cutoff_hz, "rate_hz": control_rate_hz},
        "training_noise": {"force_std": cfg.force_noise, "torque_std": cfg.torque_noise,
                           "force_offset_std": cfg.force_offset, "torque_offset_std": cfg.torque_offset},
        "valid_low": [-VALID_FORCE] * 3 + [-VALID_TORQUE] * 3, "valid_high": [VALID_FORCE] * 3 + [VALID_TORQUE] * 3,
    }
