"""A recurrent actor for in-context adaptation (issue 14): a dense layer into a GRU cell, the action from both.

The state is what the policy carries between control steps; it is zero at the start of every episode (in the
env rollout, the evaluation, the runtime and the export's test vector). RAPTOR (Eschmann et al.) adapts across
quadrotors with a GRU policy of this kind; here it sits on top of the same inputs as the MLP actor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robot_rl.models.mlp import ACTIVATIONS


@dataclass
class RecurrentGraph:
    """What an exporter needs to write a :class:`GRUActor` (float32 numpy copies, torch's gate order r, z, n)."""

    w_in: np.ndarray  # [hidden, obs]
    b_in: np.ndarray  # [hidden]
    w_ih: np.ndarray  # [3 state, hidden]
    b_ih: np.ndarray  # [3 state]
    w_hh: np.ndarray  # [3 state, state]
    b_hh: np.ndarray  # [3 state]
    w_out: np.ndarray  # [act, hidden + state]
    b_out: np.ndarray  # [act]
    activation: str
    output: str

    @property
    def state_size(self) -> int:
        return self.w_hh.shape[1]


class GRUActor(nn.Module):
    """``(obs, state) -> (action, state')``: ``x = act(W_in obs + b_in)``, ``state' = GRUCell(x, state)``,
    ``action = tanh(W_out [x, state'] + b_out)``.

    The action reads ``x`` as well as the state, so the memory adds to what a feed-forward layer gives.
    """

    def __init__(self, in_dim: int, hidden: int, state: int, out_dim: int, activation: str = "fast_tanh") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        if hidden < 1 or state < 1:
            raise ValueError(f"GRUActor needs hidden >= 1 and state >= 1, got {hidden} and {state}")
        self.inp = nn.Linear(in_dim, hidden)
        self.act = ACTIVATIONS[activation]()
        self.cell = nn.GRUCell(hidden, state)
        self.out = nn.Linear(hidden + state, out_dim)
        self.activation_name = activation
        self.output = "tanh"

    @property
    def state_size(self) -> int:
        return self.cell.hidden_size

    def initial_state(self, n: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The state at the start of an episode: zeros ``[n, state]``."""
        return torch.zeros(n, self.state_size, device=device if device is not None else self.out.weight.device)

    def forward(self, obs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.act(self.inp(obs))
        state = self.cell(x, state)
        return torch.tanh(self.out(torch.cat((x, state), -1))), state

    def graph(self) -> RecurrentGraph:
        """Export description (float32 numpy copies)."""

        def np32(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().to(torch.float32).numpy().copy()

        c = self.cell
        return RecurrentGraph(np32(self.inp.weight), np32(self.inp.bias), np32(c.weight_ih), np32(c.bias_ih),
                              np32(c.weight_hh), np32(c.bias_hh), np32(self.out.weight), np32(self.out.bias),
                              self.activation_name, self.output)


class StatefulPolicy:
    """A :class:`GRUActor` as an ``obs -> action`` function with memory: ``begin_episodes(n)`` (which every
    evaluator calls before a batch of ``n`` episodes that start together) zeroes the state, and each call carries
    it to the next."""

    def __init__(self, actor: GRUActor) -> None:
        self.actor, self.state = actor, None

    def begin_episodes(self, n: int) -> None:
        self.state = self.actor.initial_state(n)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        if self.state is None or self.state.shape[0] != obs.shape[0]:
            raise ValueError(f"a recurrent policy needs begin_episodes({obs.shape[0]}) before its first step "
                             f"(state for {None if self.state is None else self.state.shape[0]} episodes)")
        with torch.no_grad():
            action, self.state = self.actor(obs.to(self.state.device), self.state)
        return action.cpu()
