"""RAPTOR's published foundation policy (Eschmann et al., ``pip install foundation-policy==1.0.1``) as a policy
our hover evaluation can fly, so that issue 14's robust presets are measured beside it on the same vehicles.

The checkpoint was trained in the L2F simulator (rl-tools' ``l2f``), whose frames, rotor order and action
mapping ours copies: the observation is position, rotation matrix (row-major), linear velocity, angular velocity
and the previous action (``meta``: ``Position.OrientationRotationMatrix.LinearVelocity.AngularVelocityDelayed(0)
.ActionHistory(1)``), 22 values; the action is one value in [-1, 1] per rotor in the order of
``QuadrotorParams.rotor_positions`` ((+x, -y), (-x, -y), (-x, +y), (+x, +y)), rotor speed
``(a + 1) / 2 * rpm_max`` as our vehicles map it. It is a Dense(16)-GRU(16)-Dense(4) network carried step by step
in NumPy by the package itself; nothing of it is copied here.
"""

from __future__ import annotations

import numpy as np
import torch

RAPTOR_PACKAGE = "foundation-policy==1.0.1"
RAPTOR_MIN_TW = 1.5  # l2f's domain randomisation refuses thrust-to-weight below 1.5 ("to maintain maneuverability")
STATE_OBS = 18  # position, rotation matrix, linear and angular velocity: the head of our actor observation


class RaptorPolicy:
    """``obs -> action`` for our motor-level hover tasks: RAPTOR sees the state part of our actor observation
    (noise and latency included) and the last entry of its action history, and carries its GRU state between
    calls; :meth:`begin_episodes` restarts it (the evaluation calls it before its episodes)."""

    def __init__(self) -> None:
        try:
            from foundation_policy import QuadrotorPolicy
        except ImportError as e:  # an optional benchmark dependency
            raise SystemExit(f"RAPTOR's policy is not installed: pip install {RAPTOR_PACKAGE} ({e})") from e
        self.model = QuadrotorPolicy()
        meta = self.model.meta["environment"]
        if meta["name"] != "l2f" or not meta["observation"].endswith("ActionHistory(1)"):
            raise SystemExit(f"unexpected RAPTOR checkpoint: {meta}")
        self.model.reset()

    def begin_episodes(self, n: int) -> None:
        """Zero (the checkpoint's initial) recurrent state for ``n`` new episodes."""
        del n  # the package tiles its initial state to the batch on the next call
        self.model.reset()

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.shape[-1] < STATE_OBS + 4:
            raise ValueError(f"RAPTOR needs the state and an action history in the observation, got {obs.shape}")
        x = torch.cat((obs[:, :STATE_OBS], obs[:, -4:]), dim=-1).detach().cpu().numpy().astype(np.float64)
        action = np.clip(self.model.evaluate_step(x), -1.0, 1.0)
        return torch.from_numpy(action).to(torch.float32)
