"""A learned value at the end of each APG window (short-horizon actor-critic, SHAC: Xu et al. 2022).

APG back-propagates only the rewards inside its window: a crash ends the episode, and neither it nor the
reward it loses has a gradient. A value ``V(s)`` of the state where the window ends (or where an episode inside
it is cut by the time limit) adds the return the policy would collect from there, so the actor's loss sees the
state it leaves behind, and ``dV/ds`` points away from states the policy crashes from. The critic is
privileged: it reads the noise-free state (differentiable through the simulator) and the env's critic
observation (vehicle, disturbance; a constant to the gradient). It is fitted to TD(lambda) returns of the
window's own rollout, under a slowly moving target copy.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from robot_rl.models.mlp import MLP


def value_state(env) -> torch.Tensor:
    """``[N, 17]`` noise-free position - target, quaternion, velocity, angular velocity and rotor speeds / 1e4
    after the last step, carrying the graph of the window's steps (fused env: its differentiable link; torch env:
    its state)."""
    links = getattr(env, "_links", None)
    if links is not None:
        s = links[0][:, :17]
    elif hasattr(env, "carried_state"):  # the fused env between windows (no graph yet)
        s = torch.from_numpy(env.carried_state()[:, :17])
    else:
        s = env.state[:, :17]
    return torch.cat((env.position_error(), s[:, 3:13], s[:, 13:17] * 1e-4), -1)


class WindowValue:
    """The critic, its target copy and optimiser; ``value(x)`` for the actor's loss, ``fit(...)`` after it."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], gamma: float, lam: float, lr: float,
                 iterations: int, minibatches: int, target_alpha: float, device: str) -> None:
        self.net = MLP(in_dim, hidden, 1, "elu").to(device)
        self.target = copy.deepcopy(self.net)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.gamma, self.lam, self.iterations, self.minibatches = gamma, lam, iterations, minibatches
        self.alpha = target_alpha
        self.scale = 1.0 / (1.0 - gamma)  # returns are O(1 / (1 - gamma)): the net predicts them over this

    def value(self, x: torch.Tensor, target: bool = False) -> torch.Tensor:
        return (self.target if target else self.net)(x).squeeze(-1) * self.scale

    @torch.no_grad()
    def returns(self, xs: torch.Tensor, rewards: torch.Tensor, terminated: torch.Tensor,
                truncated: torch.Tensor) -> torch.Tensor:
        """TD(lambda) returns ``[h, N]`` of the window's states ``xs[:h]`` (``xs``: ``[h + 1, N, D]``, the state
        before each step and after the last; after a reset, the new episode's). A terminated step ends its
        return; a truncated one bootstraps with the value of the state it left (its final state is not kept)."""
        v = self.value(xs, target=True)
        h = rewards.shape[0]
        out = torch.empty_like(rewards)
        g = v[h]
        for t in range(h - 1, -1, -1):
            boot = torch.where(truncated[t], v[t], (1.0 - self.lam) * v[t + 1] + self.lam * g)
            g = rewards[t] + self.gamma * (~terminated[t]) * boot
            out[t] = g
        return out

    def lambda_objective(self, xs: torch.Tensor, rewards: torch.Tensor, terminated: torch.Tensor,
                         truncated: torch.Tensor) -> torch.Tensor:
        """Mean over steps and envs of the TD(lambda) returns of :meth:`returns`, differentiable in the rewards
        and the states (the critic's weights are not trained by it): the actor's objective with a value at
        every step (Dreamer), so a state the policy crashes from is a gradient wherever it occurs."""
        for p in self.net.parameters():
            p.requires_grad_(False)
        try:
            v = self.value(xs)
        finally:
            for p in self.net.parameters():
                p.requires_grad_(True)
        h = rewards.shape[0]
        g, total = v[h], 0.0
        for t in range(h - 1, -1, -1):
            boot = torch.where(truncated[t], v[t], (1.0 - self.lam) * v[t + 1] + self.lam * g)
            g = rewards[t] + self.gamma * (~terminated[t]) * boot
            total = total + g.mean()
        return total / h

    def fit(self, xs: torch.Tensor, returns: torch.Tensor) -> float:
        """Regress the critic on ``(xs, returns)`` (flattened) for ``iterations`` passes of ``minibatches``
        shuffled minibatches, then move the target copy; the last pass's mean loss (in units of ``scale``)."""
        x, y = xs.reshape(-1, xs.shape[-1]), returns.reshape(-1) / self.scale
        n = x.shape[0]
        size = (n + self.minibatches - 1) // self.minibatches
        last = 0.0
        for _ in range(self.iterations):
            perm = torch.randperm(n, device=x.device)
            total = 0.0
            for i in range(0, n, size):
                idx = perm[i:i + size]
                loss = (self.net(x[idx]).squeeze(-1) - y[idx]).square().mean()
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
                self.opt.step()
                total += loss.item() * len(idx)
            last = total / n
        with torch.no_grad():
            for p, q in zip(self.target.parameters(), self.net.parameters(), strict=True):
                p.mul_(self.alpha).add_(q, alpha=1.0 - self.alpha)
        return last
