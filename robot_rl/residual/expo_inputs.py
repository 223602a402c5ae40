"""What EXPO's Q ensemble and edit policy read: the base's observation history, optionally followed by the wrist
force/torque reading (the env's ``wrench`` group, :mod:`sim.arm.wrench`).

The wrench enters with a fixed scale (:data:`WRENCH_SPAN`) rather than running statistics: the scale is stored in
the networks' normalisation buffers like the observation's, so a checkpoint or an export carries it, and the
inputs of a stored transition mean the same thing for the whole run (a replayed transition is scored by the
networks of many later updates).
"""

from __future__ import annotations

import torch

#: Width of the ``wrench`` group: force x y z (N), torque x y z (N m) in the sensor frame.
WRENCH_DIM = 6

#: Scale of each wrench component (N, N m) for Q and the edit policy: on ``panda-peg-insert`` a peg pressed on the
#: ring top reads ~180-200 N along z and an inserting one ~90 N (``benchmarks/README.md``), so 100 N puts contact
#: forces near 1; torques are those forces on a lever of ~5 cm.
WRENCH_SPAN = (100.0, 100.0, 100.0, 5.0, 5.0, 5.0)


def agent_obs(history: torch.Tensor, wrench: torch.Tensor | None) -> torch.Tensor:
    """``[N, n_obs_steps * obs_dim (+ 6)]``: the flattened observation history ``[N, n_obs_steps, obs_dim]``, then
    the raw wrench ``[N, 6]`` where the agent reads it (None: it does not)."""
    flat = history.flatten(1)
    if wrench is None:
        return flat
    if wrench.shape != (len(flat), WRENCH_DIM):
        raise ValueError(f"the wrench reading must be [{len(flat)}, {WRENCH_DIM}], got {list(wrench.shape)}")
    return torch.cat((flat, wrench.float()), dim=1)


def agent_obs_norm(mid: torch.Tensor, span: torch.Tensor, n_obs_steps: int,
                   wrench: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalisation ``(mid, span)`` of :func:`agent_obs`'s input: the base's per-observation ``mid``/``span``
    tiled over the history, then zero / :data:`WRENCH_SPAN` for the wrench."""
    mids, spans = [mid.repeat(n_obs_steps)], [span.repeat(n_obs_steps)]
    if wrench:
        mids.append(torch.zeros(WRENCH_DIM))
        spans.append(torch.tensor(WRENCH_SPAN))
    return torch.cat(mids), torch.cat(spans)
