"""Pieces shared by the explicit (hand-written forward/backward, numba) updates of TD3 and SAC: numpy views of
the networks and their gradients, the optimizer step on the optimizer's own state, the critic's input, the
replay table's column map and gathered-row buffers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from robot_rl.algorithms import _td3_kernels as K
from robot_rl.algorithms.common import fused_adam_step
from robot_rl.distributed import average_gradients, optimizer_params
from robot_rl.models.mlp import MLP

if TYPE_CHECKING:
    from robot_rl.storage.replay import ReplayBuffer


def arr(t: torch.Tensor) -> np.ndarray:
    """A numpy view of a CPU float32 tensor whose rows may be strided (a copy if its last dimension is)."""
    return (t if t.dim() < 2 or t.stride(-1) == 1 else t.contiguous()).numpy()


def flat(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().reshape(-1)


def mlp_views(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]) -> tuple[tuple, tuple]:
    """numpy views ``(weights, biases)`` of an MLP's layers (or of their gradients), ``nn.Linear`` layout."""
    return tuple(w.detach().numpy() for w in weights), tuple(b.detach().numpy() for b in biases)


def mlp_params(mlp: MLP) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """An MLP's layer weights and biases."""
    return [layer.weight for layer in mlp.linears], [layer.bias for layer in mlp.linears]


def ensemble_views(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]) -> tuple[tuple, tuple]:
    """numpy views of an ``EnsembleMLP``'s weights ``[n, in, out]`` and biases as ``[n, out]`` (or gradients)."""
    return (tuple(w.detach().numpy() for w in weights),
            tuple(b.detach().numpy().reshape(b.shape[0], -1) for b in biases))


def critic_input(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """``cat((obs, action), -1)``; a view when the two are neighbouring columns of one table (the replay's
    sampled rows), a copy otherwise."""
    if (obs.dim() == 2 and obs.stride() == action.stride() and obs.stride(1) == 1
            and obs.shape[0] == action.shape[0] and obs.shape[1] + action.shape[1] <= obs.stride(0)
            and obs.untyped_storage().data_ptr() == action.untyped_storage().data_ptr()
            and action.data_ptr() == obs.data_ptr() + obs.shape[1] * obs.element_size()):
        return obs.as_strided((obs.shape[0], obs.shape[1] + action.shape[1]), obs.stride())
    return torch.cat((obs, action), dim=-1)


def average_into(grads: dict[torch.Tensor, torch.Tensor], params: list[torch.Tensor]) -> None:
    """A distributed run's gradient mean over the ranks, back in the buffers ``grads`` (parameter -> its
    ``.grad``, which the kernels read)."""
    average_gradients(params)
    for p in params:
        if p.grad is not grads[p]:
            grads[p].copy_(p.grad)
            p.grad = grads[p]


class UpdateThreads:
    """numba's thread count while an explicit update (or a fused cycles call) runs: its critics run one per thread
    (``prange`` over the ensemble) and Adam in two shares; the count before is restored after. Threads that must
    share a core with another busy process stall every update (one measured ~40x slower), so the configs default to
    one."""

    def __init__(self, n: int, name: str) -> None:
        import numba

        if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"{name}: {n} threads, but numba has 1 to {numba.config.NUMBA_NUM_THREADS} here "
                             "(NUMBA_NUM_THREADS, default: the cores)")
        self.n = n
        self._numba = numba
        self._before: list[int] = []  # one entry per nested ``with``

    def __enter__(self) -> None:
        before = self._numba.get_num_threads()
        self._before.append(before)
        if before != self.n:
            self._numba.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        before = self._before.pop()
        if before != self.n:
            self._numba.set_num_threads(before)


class NumbaAdam:
    """The optimizer's step as :func:`~robot_rl.algorithms._td3_kernels.adam_` on flat views of its own state
    (rebuilt when the state object changes: ``load_state_dict`` replaces it) and of the ``.grad`` tensors of that
    moment (the explicit update writes its gradients into them in place). The first step goes through torch
    (``fused_adam_step``), which creates the state."""

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        if any(g["weight_decay"] and not isinstance(opt, torch.optim.AdamW) for g in opt.param_groups):
            raise ValueError("the explicit update takes Adam without weight decay or AdamW")
        self.opt = opt
        self.state: object = None
        self.groups: list[tuple] = []

    def _ready(self) -> bool:
        """Views of the optimizer's state as it is now; False while the state does not exist yet."""
        opt = self.opt
        if opt.state is self.state:
            return True
        if any(p not in opt.state for p in optimizer_params(opt)):  # the first step builds the state
            return False
        self.groups = []
        for g in opt.param_groups:
            st = [opt.state[p] for p in g["params"]]
            if any(x["step"].dtype != torch.float32 or x["step"].numel() != 1 for x in st):
                raise ValueError("the explicit update needs fused Adam's float32 step counters")
            self.groups.append((tuple(flat(p) for p in g["params"]),
                                tuple(flat(p.grad) for p in g["params"]),
                                tuple(flat(x["exp_avg"]) for x in st), tuple(flat(x["exp_avg_sq"]) for x in st),
                                tuple(x["step"].numpy().reshape(1) for x in st),
                                np.full(len(st), g["weight_decay"], np.float64), g))
        self.state = opt.state
        return True

    def __call__(self) -> None:
        if not self._ready():
            fused_adam_step(self.opt)
            return
        for params, grads, m, v, steps, decay, g in self.groups:
            beta1, beta2 = g["betas"]
            K.adam_(params, grads, m, v, steps, decay, float(g["lr"]), float(beta1), float(beta2), float(g["eps"]))

    def kernel_args(self) -> tuple[tuple, np.ndarray] | None:
        """The groups ``(params, grads, exp_avg, exp_avg_sq, steps, decay)`` and their ``[lr, beta1, beta2, eps]``
        rows for :func:`~robot_rl.algorithms._td3_kernels.update_from_replay`; None until the state exists."""
        if not self._ready():
            return None
        hyper = np.array([[g["lr"], *g["betas"], g["eps"]] for *_, g in self.groups], np.float64)
        return tuple(grp[:6] for grp in self.groups), hyper


class ReplayGather:
    """The replay kernels' column map of a buffer's table and their gathered-row buffers (critic step: the table's
    columns from ``critic_obs`` on; actor step: ``policy_obs`` and ``critic_obs``), kept between calls and rebuilt
    for another buffer or more rows."""

    def __init__(self) -> None:
        self._cache: tuple[ReplayBuffer, np.ndarray, np.ndarray, np.ndarray] | None = None

    def __call__(self, buffer: ReplayBuffer, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(columns, critic rows, actor rows)`` for up to ``rows`` rows of ``buffer``."""
        if self._cache is None or self._cache[0] is not buffer or self._cache[2].shape[0] < rows:
            col, c0 = buffer.columns, buffer.columns["critic_obs"].start
            cols = np.array([c0, col["critic_obs"].stop, col["reward"].start - c0, col["next_policy_obs"].start - c0,
                             col["next_critic_obs"].start - c0, col["terminated"].start - c0,
                             col["policy_obs"].stop - col["policy_obs"].start,
                             col["critic_obs"].stop - c0, col["action"].stop - col["action"].start], np.int64)
            # torch allocates the row buffers (64-byte aligned, as ``index_select``'s output)
            critic_rows = torch.empty(rows, buffer.table.shape[1] - c0).numpy()
            self._cache = (buffer, cols, critic_rows, torch.empty(rows, col["critic_obs"].stop).numpy())
        return self._cache[1:]
