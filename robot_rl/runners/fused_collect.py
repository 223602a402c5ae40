"""Fused off-policy collection: the env steps between two updates in one numba call (``td3.fused``,
``sac.fused_collect``).

With one env (the L2F paper's TD3) a plain collection step is ~20 Python-level calls (act, the env's step and
its info dict, the replay write, the episode counters, the observation copies) around ~2 us of arithmetic.
:class:`FusedCollector` runs the steps up to the next update (or the next log, evaluation, checkpoint or
curriculum boundary) as one :func:`robot_rl.runners._collect_kernels.collector` call, with the env stepped by
its own kernel (``BatchedEnv.compiled_step``, the env contract: no task is named here).

Equivalence with the plain loop: the exploration noise is drawn with torch from the runner's generator, one
``randn`` per step as ``TD3.act`` draws it, all before the chunk's updates as in the plain loop (a chunk never
spans an update); the env continues its own random streams; replay rows, stored rewards, episode counters and
observations are the plain loop's values (the actor's output up to float rounding, as ``TD3.act``'s fused path).
SAC (``sac.fused_collect``) draws its sample's noise as ``SquashedGaussianActor.sample`` does (one ``randn`` per
step) and stores the precision bonus too; its ``exp``/``tanh`` are numba's (float rounding apart from torch's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from robot_rl.algorithms.sac import SAC
from robot_rl.algorithms.td3 import TD3
from robot_rl.models.mlp_act import ACTIVATION_CODES, OUTPUT_CODES, SQUASHED_GAUSSIAN, NumbaActor
from robot_rl.runners._collect_kernels import collector
from robot_rl.storage.replay import FIELDS
from sim.core import Unsupported

if TYPE_CHECKING:
    from robot_rl.runners.off_policy import OffPolicyRunner


def unfused_reason(runner: OffPolicyRunner) -> str | None:
    """Why ``runner`` collects step by step (one line), or None when :class:`FusedCollector` runs it."""
    algo, env, buf = runner.algo, runner.env, runner.buffer
    sac = isinstance(algo, SAC) and algo.cfg.fused_collect
    if not sac and (not isinstance(algo, TD3) or not algo.cfg.fused):
        return "only the fused TD3 (td3.fused) and SAC with sac.fused_collect collect in fused chunks"
    if sac and not algo.cfg.explicit:
        return "sac.fused_collect needs sac.explicit (its cycles run the explicit update)"
    actor = _numba_actor(algo)
    if actor is None or not actor.ready():
        return "the actor does not run as a numba kernel (activation, device or torch's BLAS)"
    if runner.precision_index >= 0 and not sac:
        return "off_policy.precision_bonus is applied by the plain loop only (with TD3)"
    if buf._np is None or buf.fields != list(FIELDS):
        return "the replay buffer is not a CPU table in FIELDS order"
    if any(runner.obs[k].dtype != torch.float32 for k in ("policy", "critic")) or env.device.type != "cpu":
        return "the env's observations are not float32 on the CPU"
    try:
        env.compiled_step()
    except Unsupported as e:
        return str(e)
    return None


def _numba_actor(algo: TD3 | SAC) -> NumbaActor | None:
    """The actor's numba kernel: TD3's own (``td3.fused``), or one over SAC's actor network."""
    if isinstance(algo, TD3):
        return algo._numba_actor
    return NumbaActor(algo.actor.net) if algo.cfg.activation in ACTIVATION_CODES else None


class FusedCollector:
    """Collection of one :class:`OffPolicyRunner` in chunks (see the module docstring)."""

    def __init__(self, runner: OffPolicyRunner) -> None:
        reason = unfused_reason(runner)
        if reason is not None:
            raise ValueError(reason)
        self.runner = runner
        self.step = runner.env.compiled_step()
        self.kernel = collector(self.step.kernel)
        env, algo, oc = runner.env, runner.algo, runner.cfg.off_policy
        self.actor = _numba_actor(algo)
        if isinstance(algo, SAC):  # the squashed Gaussian sample; the stored reward with the precision bonus
            self.out_code, self.scale = SQUASHED_GAUSSIAN, np.float32(0.0)
            bonus = oc.precision_bonus if runner.precision_index >= 0 else 0.0
            self.precision = np.array([runner.precision_index, bonus,
                                       -1.0 / oc.precision_width ** 2 if bonus else 0.0], np.float64)
        else:
            self.out_code, self.scale = OUTPUT_CODES[algo.actor.output], np.float32(algo.cfg.exploration_noise)
            self.precision = np.array([-1.0, 0.0, 0.0])
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
        weights, biases = self.actor._weights()
        obs_p, obs_c = self._obs_arrays()
        done = self.kernel(steps, obs_p, obs_c, noise.numpy(), self.scale, weights, biases, self.actor.codes[0],
                           self.out_code, buf._np, buf.pos, r.ep_return.numpy(), r.ep_length.numpy(), self.finished,
                           float(r.cfg.off_policy.termination_reward), self.precision, self.step.ctx,
                           self.actor._scratch)
        buf.pos = (buf.pos + rows) % buf.capacity
        buf.size = min(buf.size + rows, buf.capacity)
        if done:
            r.recent["return"] += self.finished[:done, 0].tolist()
            r.recent["length"] += self.finished[:done, 1].tolist()
        r.env_steps += rows * r.world
