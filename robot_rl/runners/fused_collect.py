"""Fused off-policy collection: TD3's env steps between two updates in one numba call (``td3.fused``).

With one env (the L2F paper's TD3) a plain collection step is ~20 Python-level calls (act, the env's step and
its info dict, the replay write, the episode counters, the observation copies) around ~2 us of arithmetic.
:class:`FusedCollector` runs the steps up to the next update (or the next log, evaluation, checkpoint or
curriculum boundary) as one :func:`robot_rl.runners._collect_kernels.collector` call, with the env stepped by
its own kernel (``BatchedEnv.compiled_step``, the env contract: no task is named here).

Equivalence with the plain loop: the exploration noise is drawn with torch from the runner's generator, one
``randn`` per step as ``TD3.act`` draws it, all before the chunk's updates as in the plain loop (a chunk never
spans an update); the env continues its own random streams; replay rows, stored rewards, episode counters and
observations are the plain loop's values (the actor's output up to float rounding, as ``TD3.act``'s fused path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from robot_rl.algorithms.td3 import TD3
from robot_rl.models.mlp_act import OUTPUT_CODES
from robot_rl.runners._collect_kernels import collector
from robot_rl.storage.replay import FIELDS
from sim.core import Unsupported

if TYPE_CHECKING:
    from robot_rl.runners.off_policy import OffPolicyRunner


def unfused_reason(runner: OffPolicyRunner) -> str | None:
    """Why ``runner`` collects step by step (one line), or None when :class:`FusedCollector` runs it."""
    algo, env, buf = runner.algo, runner.env, runner.buffer
    if not isinstance(algo, TD3) or not algo.cfg.fused:
        return "only the fused TD3 (td3.fused) collects in fused chunks"
    if algo._numba_actor is None or not algo._numba_actor.ready():
        return "the actor does not run as a numba kernel (activation, device or torch's BLAS)"
    if runner.precision_index >= 0:
        return "off_policy.precision_bonus is applied by the plain loop only"
    if buf._np is None or buf.fields != list(FIELDS):
        return "the replay buffer is not a CPU table in FIELDS order"
    if any(runner.obs[k].dtype != torch.float32 for k in ("policy", "critic")) or env.device.type != "cpu":
        return "the env's observations are not float32 on the CPU"
    try:
        env.compiled_step()
    except Unsupported as e:
        return str(e)
    return None


class FusedCollector:
    """Collection of one :class:`OffPolicyRunner` in chunks (see the module docstring)."""

    def __init__(self, runner: OffPolicyRunner) -> None:
        reason = unfused_reason(runner)
        if reason is not None:
            raise ValueError(reason)
        self.runner = runner
        self.step = runner.env.compiled_step()
        self.kernel = collector(self.step.kernel)
        env = runner.env
        self.noise = torch.empty(0, env.num_envs, env.action_dim)
        self.finished = np.empty((0, 2), np.float32)
        self._obs: tuple[torch.Tensor, torch.Tensor] | None = None

    def _obs_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """numpy arrays the kernel overwrites with each next observation; ``runner.obs`` views them (re-bound
        when the runner replaced its observations, e.g. on a checkpoint load)."""
        r = self.runner
        if self._obs is None or r.obs["policy"] is not self._obs[0] or r.obs["critic"] is not self._obs[1]:
            self._obs = (r.obs["policy"].contiguous().clone(), r.obs["critic"].contiguous().clone())
            r.obs = {"policy": self._obs[0], "critic": self._obs[1]}
        return self._obs[0].numpy(), self._obs[1].numpy()

    def collect(self, steps: int) -> None:
        """``steps`` env steps of ``runner`` (exploring; no update), with what the plain loop does between two
        updates: replay rows, episode counters, ``env_steps``."""
        r, env, buf = self.runner, self.runner.env, self.runner.buffer
        n = env.num_envs
        rows = steps * n
        if buf.pos + rows > buf.capacity:
            raise ValueError("a fused chunk must not wrap the replay buffer")  # the caller splits chunks at its end
        if not buf.overwrite and buf.size + rows > buf.capacity:
            raise RuntimeError(f"replay buffer full ({buf.capacity} transitions) and overwrite=False")
        if self.noise.shape[0] < steps:
            self.noise = torch.empty(steps, n, env.action_dim)
            self.finished = np.empty((steps * n, 2), np.float32)
        noise, gen = self.noise, r.gen
        for k in range(steps):  # the plain path's draws, one per step (TD3.act)
            torch.randn((n, env.action_dim), generator=gen, out=noise[k])
        algo = r.algo
        weights, biases = algo._numba_actor._weights()
        obs_p, obs_c = self._obs_arrays()
        done = self.kernel(steps, obs_p, obs_c, noise.numpy(), np.float32(algo.cfg.exploration_noise), weights, biases,
                           algo._numba_actor.codes[0], OUTPUT_CODES[algo.actor.output], buf._np, buf.pos,
                           r.ep_return.numpy(), r.ep_length.numpy(), self.finished,
                           float(r.cfg.off_policy.termination_reward), self.step.ctx, algo._numba_actor._scratch)
        buf.pos = (buf.pos + rows) % buf.capacity
        buf.size = min(buf.size + rows, buf.capacity)
        if done:
            r.recent["return"] += self.finished[:done, 0].tolist()
            r.recent["length"] += self.finished[:done, 1].tolist()
        r.env_steps += rows * r.world
