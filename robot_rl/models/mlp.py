"""Multi-layer perceptrons with the activations our exporters support (incl. the paper's fast tanh)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class FastTanh(nn.Module):
    """RLtools' rational tanh approximation: ``x <- clamp(x, -3, 3); x (27 + x^2) / (27 + 9 x^2)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clamp(-3.0, 3.0)
        x2 = x * x
        return x * (x2 + 27.0) / (x2 * 9.0 + 27.0)


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "fast_tanh": FastTanh}
OUTPUTS = ("identity", "tanh", "clip")


@dataclass
class PolicyGraph:
    """What an exporter needs to write a deterministic policy: affine layers, activation, output squashing.

    ``output`` is ``identity``, ``tanh`` or ``clip`` (to ``[-1, 1]``). ``obs_mean``/``obs_std`` (optional)
    are folded into the first layer by exporters.
    """

    weights: list[np.ndarray]  # [out, in] float32 each
    biases: list[np.ndarray]  # [out] float32 each
    activation: str
    output: str
    obs_mean: np.ndarray | None = None
    obs_std: np.ndarray | None = None

    def folded(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Weights and biases with the observation normalisation folded into the first layer."""
        w, b = [x.astype(np.float32) for x in self.weights], [x.astype(np.float32) for x in self.biases]
        if self.obs_mean is not None and self.obs_std is not None:
            w0 = self.weights[0].astype(np.float64) / self.obs_std.astype(np.float64)[None, :]
            b0 = self.biases[0].astype(np.float64) - w0 @ self.obs_mean.astype(np.float64)
            w[0], b[0] = w0.astype(np.float32), b0.astype(np.float32)
        return w, b


class MLP(nn.Module):
    """``in_dim -> hidden... -> out_dim`` with one activation between layers and an optional output squash."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, activation: str = "relu",
                 output: str = "identity") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; choose from {OUTPUTS}")
        dims = [in_dim, *hidden, out_dim]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.activation_name = activation
        self.act = ACTIVATIONS[activation]()
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.linears[:-1]:
            x = self.act(layer(x))
        return self.squash(self.linears[-1](x))

    def squash(self, x: torch.Tensor) -> torch.Tensor:
        """The output squash applied to the last layer's values."""
        if self.output == "tanh":
            return torch.tanh(x)
        if self.output == "clip":
            return x.clamp(-1.0, 1.0)
        return x

    def graph(self, obs_mean: torch.Tensor | None = None, obs_std: torch.Tensor | None = None) -> PolicyGraph:
        """Export description of this network (float32 numpy copies)."""

        def np32(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().to(torch.float32).numpy().copy()

        return PolicyGraph(
            weights=[np32(layer.weight) for layer in self.linears],
            biases=[np32(layer.bias) for layer in self.linears],
            activation=self.activation_name,
            output=self.output,
            obs_mean=None if obs_mean is None else np32(obs_mean),
            obs_std=None if obs_std is None else np32(obs_std),
        )
