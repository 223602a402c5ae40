"""Outcome-prioritised vehicle resampling for training over a vehicle distribution (``vehicles.replay_fraction``).

The policy's crashes concentrate on a small, hard part of the vehicle span (weak, slow-spinning, heavy
vehicles; ``benchmarks/hover_crashes.py``), which a uniform draw visits rarely. With replay on, every vehicle
on which an episode crashed enters a ring of the ``replay_capacity`` most recent crash vehicles, and each reset
re-flies a uniformly chosen ring entry with probability ``replay_fraction`` (fresh draw otherwise; the
initial state and disturbances are always fresh). Only freshly drawn vehicles enter the ring, so a vehicle no
policy can fly cannot crowd it out by crashing again and again; the ring follows the current policy's failures
as new crashes overwrite old ones. ``replay_once``: each entry is re-flown once and then leaves the ring, so every
crash vehicle gets one second episode (the replay share then follows the crash rate, at most
``replay_fraction``).

Both hover envs share this object and its numba kernel (``_vehicle_kernels.replay_reset``): the vehicles come
from a counter-based stream of their own (key from the env's seed, one event per env reset), so the torch env
and the fused env draw the same vehicles for the same seed and the same crash history. Off (fraction 0) the
envs draw as before, bit-identical.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from sim.quadrotor import _vehicle_kernels as V
from sim.quadrotor._fused_rng import make_keys, mix64
from sim.quadrotor.vehicles import VEHICLE_KEYS, VehicleDistribution

_SALT = np.uint64(0x52455056454849)  # separates the vehicle stream from the env's reset/noise stream


@njit(cache=True, error_model="numpy")
def _salted(keys):
    out = np.empty_like(keys)
    for e in range(keys.size):
        out[e] = mix64(keys[e] + _SALT)
    return out


def draw_constants(dist: VehicleDistribution, n: int) -> np.ndarray:
    """The distribution part of the fused kernels' ``vd`` constants (ranges, hard ranges and envs, replay
    fraction) for ``n`` envs; the frame's constants are left zero."""
    vd = np.zeros(V.VD_SIZE, np.float64)
    for i, k in enumerate(VEHICLE_KEYS):
        vd[V.VD_LO + i], vd[V.VD_HI + i] = getattr(dist, k)
    for i, (lo, hi) in enumerate(dist.hard_ranges().values()):
        vd[V.VD_HLO + i], vd[V.VD_HHI + i] = lo, hi
    vd[V.VD_NHARD] = dist.num_hard(n)
    vd[V.VD_REPLAY] = dist.replay_fraction
    vd[V.VD_REPLAY_ONCE] = float(dist.replay_once)
    return vd


class VehicleReplay:
    """The ring of crash vehicles, the per-env vehicle streams and counters of ``n`` envs (numpy buffers)."""

    _BUFFERS = ("keys", "ctr", "src", "ring", "stats")

    def __init__(self, dist: VehicleDistribution, n: int, seed: int) -> None:
        self.num_envs = n
        self.vd = draw_constants(dist, n)
        self.ring = np.zeros((dist.replay_capacity, V.N_VEH), np.float32)
        self.ctr = np.zeros(n, np.uint64)
        self.src = np.zeros(n, np.int64)  # 1: the env flies a replayed vehicle
        self.stats = np.zeros(V.RS_SIZE, np.int64)
        self.rekey(seed)

    def rekey(self, seed: int) -> None:
        """Restart every stream for ``seed`` and empty the ring (same seed, same vehicles)."""
        s = int(seed) & (2**64 - 1)
        self.keys = _salted(make_keys(s - 2**64 if s >= 2**63 else s, self.num_envs))
        self.ctr[:] = 0
        self.src[:] = 0
        self.ring[:] = 0.0
        self.stats[:] = 0

    def bufs(self) -> tuple[np.ndarray, ...]:
        """The kernels' ``rbufs``."""
        return self.keys, self.ctr, self.src, self.ring, self.stats

    def reset_envs(self, envs: np.ndarray, crashed: np.ndarray, veh: np.ndarray) -> None:
        """New vehicles ``veh[envs]`` (float32 ``[N, 13]``, in place) of the done envs ``envs`` (ascending int64),
        of which ``crashed`` (bool, one per entry of ``envs``) crashed: ``_vehicle_kernels.replay_reset``."""
        V.replay_reset(np.ascontiguousarray(envs, np.int64), np.ascontiguousarray(crashed, np.bool_), veh,
                       self.bufs(), self.vd)

    def summary(self) -> dict[str, float]:
        """Ring fill, draws and crash rates of replayed and fresh vehicles since the last :meth:`rekey`."""
        s = self.stats
        return {"ring": int(s[V.RS_COUNT]), "replayed": int(s[V.RS_REPLAYED]), "fresh": int(s[V.RS_FRESH]),
                "crash_rate_replayed": float(s[V.RS_CRASH_REPLAYED] / max(s[V.RS_REPLAYED], 1)),
                "crash_rate_fresh": float(s[V.RS_CRASH_FRESH] / max(s[V.RS_FRESH], 1))}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"env.replay.{k}": torch.from_numpy(getattr(self, k).copy()) for k in self._BUFFERS}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k in self._BUFFERS:
            getattr(self, k)[...] = state[f"env.replay.{k}"].numpy()


__all__ = ["VehicleReplay", "draw_constants"]
