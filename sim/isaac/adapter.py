"""Any Isaac Lab ``ManagerBasedRLEnv`` / ``DirectRLEnv`` as a :class:`sim.core.BatchedEnv`.

How Isaac Lab's conventions map onto ours (read from isaaclab 3.0.0's ``envs/manager_based_rl_env.py`` and
``envs/direct_rl_env.py``):

* Observation groups: Isaac Lab's ``"policy"`` group is ours; its ``"critic"`` group (privileged) is ours, and a
  task without one gives the critic the policy observation (rsl_rl's convention). Groups must be concatenated
  (``concatenate_terms=True``: one ``[N, dim]`` tensor); other groups (e.g. images) are not passed on.
* Done signals: Isaac Lab returns ``terminated`` (failure terms) and ``truncated`` (``time_out=True`` terms); both
  can be set at once. Ours are exclusive: an env that terminated is not truncated (it is not bootstrapped).
* Auto-reset: Isaac Lab resets finished envs inside ``step`` (same-step autoreset) and, with the env config's
  ``compute_final_obs=True`` (the factory sets it), puts the observation every env had before that reset in
  ``extras["final_obs"]``; the adapter passes it on as ``info["final_obs"]`` for the envs that finished and the
  returned observation for the others (Isaac Lab leaves a stale ``final_obs`` in ``extras`` on steps without
  a reset, so it is read only when some env finished).
* Actions: our actors act in [-1, 1]; the adapter clips to it and Isaac Lab's action terms scale (e.g. the
  cart-pole's effort scale 100 N). Tensors stay on the Isaac Lab env's device (CPU or CUDA).
* Export: an Isaac Lab env that defines ``export_spec()`` (ours: :mod:`sim.isaac.crazyflie`) declares the
  ``policy.json`` contract of a task of ours, so ``robot-rl export`` and the runtime work on its runs; stock tasks
  refuse export in one line.
* ``info["success"]``: the task's own ``extras["success"]`` where it sets one (the reach: the TCP within its
  success distance at the step's end, before any reset), else the episode ended by a time-out and not by a
  termination (it survived), so the generic success-rate evaluation works on any task; ``info["isaac_log"]``:
  Isaac Lab's per-episode ``extras["log"]``.
"""

from __future__ import annotations

from typing import Any

import torch

from sim.core import BatchedEnv, Obs


class IsaacLabEnv(BatchedEnv):
    """Wraps an Isaac Lab RL env instance (``gym.make(id, cfg=...).unwrapped``) built with ``compute_final_obs``."""

    def __init__(self, env: Any) -> None:
        if not getattr(env.cfg, "compute_final_obs", False):
            raise ValueError("the Isaac Lab env must be built with cfg.compute_final_obs = True (the adapter needs "
                             "the observations before same-step auto-resets)")
        spaces = dict(env.single_observation_space.spaces)  # a gymnasium Dict: `in` would test a sample
        if "policy" not in spaces:
            raise ValueError(f"the Isaac Lab env has no 'policy' observation group (groups: {list(spaces)})")
        self.groups = {"policy": "policy", "critic": "critic" if "critic" in spaces else "policy"}
        self.obs_dims = {}
        for ours, theirs in self.groups.items():
            shape = getattr(spaces[theirs], "shape", None)
            if shape is None or len(shape) != 1:
                raise ValueError(f"Isaac Lab observation group {theirs!r} must be one flat vector "
                                 f"(concatenate_terms=True), got {spaces[theirs]}")
            self.obs_dims[ours] = int(shape[0])
        action_shape = env.single_action_space.shape
        if action_shape is None or len(action_shape) != 1:
            raise ValueError(f"only flat Box action spaces are supported, got {env.single_action_space}")
        self.env = env
        self.num_envs = int(env.num_envs)
        self.device = torch.device(env.device)
        self.action_dim = int(action_shape[0])
        self.max_episode_steps = int(env.max_episode_length)
        self.dt = float(env.step_dt)

    def _ours(self, obs: dict[str, torch.Tensor]) -> Obs:
        return {ours: obs[theirs] for ours, theirs in self.groups.items()}

    def reset(self, seed: int | None = None) -> Obs:
        """Reset every env; a seed re-seeds Isaac Lab (``env.seed``: torch, numpy, warp and the scene's RNG)."""
        obs, _ = self.env.reset(seed=seed)
        return self._ours(obs)

    def step(self, action: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        action = action.to(self.device, torch.float32).clamp(self.action_low, self.action_high)
        obs, reward, terminated, time_out, extras = self.env.step(action)
        obs = self._ours(obs)
        terminated = terminated.bool()
        truncated = time_out.bool() & ~terminated
        done = terminated | truncated
        if bool(done.any()):
            before = self._ours(extras["final_obs"])
            final = {k: torch.where(done[:, None], before[k], v) for k, v in obs.items()}
        else:
            final = obs
        success = extras.get("success")  # a task's own success flag (ours: the reach), else "survived"
        success = truncated if success is None else success.to(self.device).bool()
        info = {"final_obs": final, "done_mask": done, "success": success, "isaac_log": extras.get("log", {})}
        return obs, reward.float(), terminated, truncated, info

    def observation_names(self) -> dict[str, list[str]]:
        """Term names of manager-based tasks (``joint_pos_rel[0]``, ...); ``group[i]`` for direct tasks."""
        manager = getattr(self.env, "observation_manager", None)
        if manager is None:
            return super().observation_names()
        names = {}
        for ours, theirs in self.groups.items():
            terms = manager.active_terms[theirs]
            dims = manager.group_obs_term_dim[theirs]
            names[ours] = [f"{t}[{i}]" for t, d in zip(terms, dims, strict=True) for i in range(int(d[-1]))]
        return names

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Nothing: Isaac Lab cannot save its simulator state, so a checkpoint holds the trainer only (and
        :meth:`load_state_dict` refuses to resume rather than continue from a state it does not have)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        raise self.unsupported("resuming a run (Isaac Lab's simulator state is not checkpointed; the checkpoint's "
                               "actor still evaluates and exports)")

    def export_spec(self) -> dict[str, Any]:
        """The wrapped task's ``policy.json`` contract, where the Isaac Lab env declares one (``export_spec()``:
        our own tasks, whose observation and action code is a registered task's); a stock Isaac Lab task's
        observation and action terms have no deployment contract, so exporting it is refused in one line."""
        declared = getattr(self.env, "export_spec", None)
        if not callable(declared):
            raise self.unsupported("export: this Isaac Lab task declares no deployment contract (its observation "
                                   "and action terms have no policy.json mapping; a DirectRLEnv declares one "
                                   "with an export_spec() method)")
        return declared()

    def close(self) -> None:
        """Close the Isaac Lab env (it clears its simulation context, so another env can be built)."""
        if self.env is not None:
            self.env.close()
            self.env = None
