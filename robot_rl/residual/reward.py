"""The reward ResiP and EXPO learn from: the task's success (or its shaped reward), less a failure penalty.

One function for both learners, so that ``--reward`` and ``--fail-penalty`` mean the same thing in
``robot-rl resip`` and ``robot-rl expo``.
"""

from __future__ import annotations

from typing import Literal

import torch


def learner_reward(kind: Literal["sparse", "dense"], reward: torch.Tensor, terminated: torch.Tensor,
                   success: torch.Tensor, fail_penalty: float = 0.0) -> torch.Tensor:
    """The reward ``[N]`` (float32, CPU) of one vectorised env step.

    ``kind`` ``"sparse"``: 1 where the step succeeded, else 0; ``"dense"``: the task's shaped ``reward``. Then
    ``fail_penalty`` is subtracted where the episode ended as a failure in this step (``terminated`` and not
    ``success``); a truncation (time limit) is no failure. ``terminated`` and ``success`` are boolean (or 0/1)
    ``[N]`` tensors on any device.
    """
    r = success.cpu().float() if kind == "sparse" else reward.float().cpu()
    if fail_penalty:
        r = r - fail_penalty * (terminated.cpu().bool() & ~success.cpu().bool()).float()
    return r
