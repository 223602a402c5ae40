"""Behaviour-cloning policies that output action chunks (diffusion policy, MSE baseline).

Each policy follows LeRobot's configuration / model / processor split: a dataclass config, an ``nn.Module``
and a normaliser shared by training and export. Every policy maps an observation history
``[batch, n_obs_steps, obs_dim]`` to an action chunk ``[batch, horizon, act_dim]`` (:class:`ChunkPolicy`).
"""

from robot_rl.policies.base import ChunkPolicy

__all__ = ["ChunkPolicy"]
