"""Data-parallel training over ``torch.distributed`` (launched by ``torchrun``).

Every rank steps its own envs (seeded :func:`rank_seed`) and computes gradients on its own data; before each
optimiser step :func:`average_gradients` all-reduces them into their mean (one flattened buffer per step), so
every rank takes the same step and the weights stay identical without a ``DistributedDataParallel`` wrapper.
On the CPU (gloo) those sums are waited for by polling (:func:`_wait`, ``ROBOT_RL_GLOO_SPIN_MS``).
An explicit all-reduce rather than DDP because the update rules drive their modules in ways DDP's autograd
hooks do not follow: the APG gradient of the fused CPU env is written by hand (``apg_bptt``), TD3/SAC freeze the
critic while the actor's loss runs through it, and PPO clips the gradient norm, which must act on the averaged
gradient (clip-then-average would differ from a single process on the whole batch).

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) nothing here communicates: every helper returns its
input, so single-process runs and their numbers are unchanged. Only rank 0 logs, checkpoints and exports.
"""

from __future__ import annotations

import importlib
import os
import re
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

_ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
_RANK_KEY = re.compile(r"^rank(\d+)/")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the group (``rank 0 of 1`` when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process logs, checkpoints and exports."""
        return self.rank == 0


def launched() -> bool:
    """Whether ``torchrun`` (or a launcher setting the same variables) started this process."""
    return "WORLD_SIZE" in os.environ


def info() -> DistInfo:
    """Rank, world size and local rank of this process (``DistInfo()`` outside a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def active() -> bool:
    """Whether there is a process group with more than one rank (else every collective here is a no-op)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init(device: str) -> str:
    """Join the process group that ``torchrun`` set up (gloo for a CPU ``device``, NCCL for CUDA) and return the
    device this rank trains on (``cuda`` becomes ``cuda:LOCAL_RANK``). Without ``torchrun``: ``device`` as is."""
    if not launched():
        return device
    missing = [v for v in (*_ENV_VARS, "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE is set but {', '.join(missing)} are not: launch with torchrun")
    local = int(os.environ["LOCAL_RANK"])
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda under torchrun, but this machine has no CUDA device")
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA devices: "
                               "--nproc_per_node must not exceed the GPUs of a node")
        device = f"cuda:{local}"
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
        spin_limit_s()  # a bad ROBOT_RL_GLOO_SPIN_MS fails here, not inside the first collective
        pin_to_core(local)
        _one_numba_thread()
    if not dist.is_initialized():
        # torch._dynamo (the optimisers import it) imported after the group exists keeps the group alive past
        # destroy_process_group: gloo's worker threads then live into interpreter shutdown, where a rank that
        # exits while its peer still works was seen to abort ("terminate called without an active exception").
        # Imported first, the group is freed, and its threads joined, in :func:`shutdown`.
        importlib.import_module("torch._dynamo")

        kwargs = {"device_id": torch.device(device)} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=timedelta(minutes=30), **kwargs)
    return device


def pin_to_core(local_rank: int) -> None:
    """With ``ROBOT_RL_PIN_CORES=1``: run this process (and the gloo and numba threads it starts later) on the
    ``local_rank``-th core it may use. Opt-in: on cores the ranks have to themselves, pinned ranks with polled
    sums ran 2-rank PPO as fast as two independent processes (benchmarks/README.md); on cores shared with other
    jobs, fixed cores can make the ranks wait for them."""
    raw = os.environ.get("ROBOT_RL_PIN_CORES", "0")
    if raw not in ("0", "1"):
        raise ValueError(f"ROBOT_RL_PIN_CORES must be 0 or 1, not {raw!r}")
    if raw == "0":
        return
    cores = sorted(os.sched_getaffinity(0))
    if local_rank >= len(cores):
        raise RuntimeError(f"ROBOT_RL_PIN_CORES=1 but LOCAL_RANK {local_rank} >= the {len(cores)} usable cores")
    os.sched_setaffinity(0, {cores[local_rank]})


def _one_numba_thread() -> None:
    """One numba thread per CPU rank (as ``torchrun`` gives each rank ``OMP_NUM_THREADS=1``) unless
    ``NUMBA_NUM_THREADS`` says otherwise: the idle workers of numba's OpenMP pool spin after every parallel
    kernel (the fused envs'), and on cores shared by several ranks that spinning slowed a PPO update ~10x."""
    if "NUMBA_NUM_THREADS" not in os.environ:
        import numba

        numba.set_num_threads(1)


def shutdown() -> None:
    """Leave the process group (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """The env/sampling seed of ``rank``: ``seed`` itself on rank 0 (a single process is rank 0), else a
    value mixed from both (``numpy.random.SeedSequence``), so no two (seed, rank) pairs of a run share envs."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(1)[0] & 0x7FFFFFFF)


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Replace every ``param.grad`` by its mean over the ranks (one all-reduce of a flat buffer).

    Parameters without a gradient are skipped; every rank runs the same code path, so they agree on which.
    The flat buffer is kept per parameter list and the averaged ``.grad`` become views into it, so a step
    costs one copy in (none when the ``.grad`` already are those views: zeroed in place, not set to None) and
    no copy out or allocation."""
    if not active():
        return
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    flat = _flat_buffer(params)
    offset, views = 0, []
    for p in params:
        n = p.numel()
        views.append(flat[offset:offset + n].view_as(p))
        offset += n
    if not all(p.grad.data_ptr() == v.data_ptr() and p.grad.stride() == v.stride()
               for p, v in zip(params, views, strict=True)):
        torch.cat([p.grad.reshape(-1) for p in params], out=flat)
    _all_reduce(flat)
    flat.div_(dist.get_world_size())
    for p, v in zip(params, views, strict=True):
        if p.grad is not v:
            p.grad = v


_FLAT: dict[tuple[int, ...], torch.Tensor] = {}


def _flat_buffer(params: list[nn.Parameter]) -> torch.Tensor:
    """The flat gradient buffer of this parameter list (dropped when the list's first parameter is)."""
    key = tuple(id(p) for p in params)
    flat = _FLAT.get(key)
    if flat is None or flat.numel() != sum(p.numel() for p in params):
        if len({(p.grad.dtype, p.grad.device) for p in params}) > 1:
            raise ValueError("average_gradients: the gradients must share one dtype and device")
        flat = _FLAT[key] = torch.empty(sum(p.numel() for p in params), dtype=params[0].grad.dtype,
                                        device=params[0].grad.device)
        weakref.finalize(params[0], _FLAT.pop, key, None)
    return flat


def optimizer_params(opt: torch.optim.Optimizer) -> list[nn.Parameter]:
    """Every parameter an optimiser steps."""
    return [p for group in opt.param_groups for p in group["params"]]


def all_gather_cat(x: torch.Tensor) -> torch.Tensor:
    """The ranks' ``x`` (same shape on every rank) concatenated along dim 0 in rank order; ``x`` alone."""
    if not active():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    work = dist.all_gather(parts, x.contiguous(), async_op=True)
    if dist.get_backend() == "gloo":
        _wait(work)
    work.wait()
    return torch.cat(parts)


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over the ranks (a new tensor; ``x`` itself when not distributed)."""
    if not active():
        return x
    if dist.get_backend() == "nccl" and x.device.type != "cuda":  # NCCL reduces CUDA tensors only
        out = x.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(out)
        return out.to(x.device)
    out = x.clone()
    _all_reduce(out)
    return out


def _all_reduce(t: torch.Tensor) -> None:
    """Sum ``t`` in place over the ranks; with gloo, wait by polling (see :func:`_wait`)."""
    work = dist.all_reduce(t, async_op=True)
    if dist.get_backend() == "gloo":
        _wait(work)
    work.wait()


def _wait(work: dist.Work) -> None:
    """Poll ``work`` (yielding the core at every poll) for up to ``ROBOT_RL_GLOO_SPIN_MS`` ms (default 100; 0:
    gloo's blocking wait) before blocking on it.

    A gloo sum is a chain of thread hand-offs in both processes (caller -> gloo worker -> socket thread -> the
    peer's socket thread -> ...); a rank that blocks in ``wait`` lets its core go idle, and on a VM an idle
    vCPU halts, so every later hand-off to that core waits for the hypervisor to wake it. Polling keeps the
    core running for the hand-offs; ``sched_yield`` hands it to gloo's threads (or another job) at once."""
    limit = spin_limit_s()
    if not limit > 0:
        return
    end = time.perf_counter() + limit
    while not work.is_completed() and time.perf_counter() < end:
        os.sched_yield()


def spin_limit_s() -> float:
    """How long a gloo wait polls, in seconds (``ROBOT_RL_GLOO_SPIN_MS``; 0.1 when unset)."""
    raw = os.environ.get("ROBOT_RL_GLOO_SPIN_MS", "100")
    try:
        ms = float(raw)
    except ValueError:
        ms = float("nan")
    if not ms >= 0:
        raise ValueError(f"ROBOT_RL_GLOO_SPIN_MS must be a number of milliseconds >= 0, not {raw!r}")
    return ms / 1e3


def broadcast_modules(modules: Iterable[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers into every rank's modules (a resume or a seed mismatch can no
    longer leave the ranks apart)."""
    if not active():
        return
    for module in modules:
        for t in module.state_dict().values():
            dist.broadcast(t, src=0)


def barrier() -> None:
    """Wait until every rank gets here (no-op when not distributed)."""
    if active():
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` when not distributed)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` in rank order on rank 0 (None elsewhere); ``[obj]`` when not distributed."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def rank_prefix(rank: int) -> str:
    """Key prefix of rank ``rank``'s own state in a group checkpoint (rank 0's keys carry none)."""
    return "" if rank == 0 else f"rank{rank}/"


def gather_rank_state(local: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """Merge the ranks' own state (envs, observations, generators, replay buffers) for rank 0's checkpoint:
    rank 0's keys as a single process writes them, rank r's under ``rank{r}/``. None on the other ranks."""
    # as safetensors bytes: pickled tensors do not survive gather_object's unpickler in torch 2.13
    parts = gather_objects(st_save({k: v.detach().cpu().contiguous() for k, v in local.items()}))
    if parts is None:
        return None
    return {rank_prefix(r) + k: v for r, part in enumerate(parts) for k, v in st_load(part).items()}


def select_rank_state(tensors: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor] | None:
    """Rank ``rank``'s own state from a checkpoint's tensors, or None when the checkpoint holds none for it
    (it was written by a smaller group: that rank keeps its freshly seeded envs)."""
    if rank == 0:
        return {k: v for k, v in tensors.items() if not _RANK_KEY.match(k)}
    prefix = rank_prefix(rank)
    own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return own or None


def world_size_of(tensors: dict[str, torch.Tensor]) -> int:
    """How many ranks' state a checkpoint holds (1 for a single-process checkpoint)."""
    ranks = {int(m.group(1)) for m in map(_RANK_KEY.match, tensors) if m}
    return max(ranks, default=0) + 1
