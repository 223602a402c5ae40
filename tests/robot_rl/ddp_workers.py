"""Process-group workers of ``test_distributed.py`` (module-level, so ``torch.multiprocessing.spawn`` can pickle
them): each rank joins a gloo group the way ``torchrun`` sets one up, runs, and saves what it ends with to
``out/rank{r}.pt`` for the test to compare."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from robot_rl import distributed
from robot_rl.config import TrainConfig
from robot_rl.curriculum import CurriculumConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn: Any, world: int, *args: Any) -> None:
    """Run ``fn(rank, *args)`` on ``world`` fresh processes of one gloo group (torchrun's environment)."""
    mp.spawn(_entry, args=(world, free_port(), fn, args), nprocs=world, join=True)


def _entry(rank: int, world: int, port: int, fn: Any, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only, whatever the host name resolves to
    torch.set_num_threads(1)
    assert distributed.init("cpu") == "cpu"
    try:
        fn(rank, *args)
    finally:
        distributed.shutdown()


def tiny_rl(algorithm: str, steps: int) -> TrainConfig:
    """A few iterations of ``algorithm`` on 4 quadrotor-hover envs per rank with small networks."""
    normalized = algorithm == "ppo-normalized"
    cfg = TrainConfig(preset="test", algorithm="ppo" if normalized else algorithm, seed=5)
    cfg.task.num_envs = 4
    for c in (cfg.td3, cfg.sac, cfg.ppo):
        c.actor_hidden, c.critic_hidden = (16,), (16,)
    cfg.ppo.empirical_normalization = normalized
    o = cfg.off_policy
    o.total_env_steps, o.buffer_capacity, o.critic_starts, o.actor_starts = steps, 1024, 32, 48
    o.updates_per_step, o.batch_size = 0.5, 16
    cfg.on_policy.total_env_steps, cfg.on_policy.steps_per_env = steps, 8
    cfg.apg.actor_hidden, cfg.apg.horizon = (16,), 8
    cfg.curriculum = CurriculumConfig(every=64)
    cfg.log_every, cfg.checkpoint_every = 32, 0
    return cfg


def threads_after_shutdown(rank: int, out: Path) -> None:
    """Train a few PPO iterations, leave the group, and record the names of this process's threads."""
    from robot_rl.runs import make_runner

    make_runner(tiny_rl("ppo", 32), out / f"run{rank}").train()
    distributed.shutdown()
    names = sorted(Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task"))
    torch.save(names, out / f"threads{rank}.pt")


def module_tensors(algo: Any) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.detach().clone() for n, m in algo.modules().items() for k, v in m.state_dict().items()}


ALGORITHMS = ("ppo-normalized", "sac", "td3", "apg")
TOTAL, STOP = 128, 64


def rl_runners(rank: int, out: Path) -> None:
    """Per algorithm: an uninterrupted run of ``TOTAL`` env steps (rank 1 is handed a directory of its own,
    which must stay unwritten) and one stopped at ``STOP`` and resumed by fresh runners of the group."""
    from robot_rl.runs import make_runner

    result: dict[str, Any] = {}
    for algorithm in ALGORITHMS:
        cfg = tiny_rl(algorithm, TOTAL)
        full_dir = out / algorithm / ("full" if rank == 0 else "full-rank1")
        full = make_runner(cfg, full_dir)
        full.train()
        part_dir = out / algorithm / "part"
        make_runner(cfg, part_dir).train(stop_at=STOP)
        resumed = make_runner(cfg, part_dir)
        resumed.load(part_dir / "checkpoint")
        resumed_at = resumed.env_steps
        resumed.train()
        result[algorithm] = {"full": module_tensors(full.algo), "resumed": module_tensors(resumed.algo),
                             "env_steps": full.env_steps, "resumed_at": resumed_at,
                             "first_obs": full.obs["policy"].clone()}
    torch.save(result, out / f"rank{rank}.pt")


def updates_and_bc(rank: int, out: Path, demos: str) -> None:
    """On this rank's half of fixed data: one PPO update (several epochs of one minibatch), one APG step from
    a precomputed gradient (as the hand-written BPTT hands it over), three MSE-BC steps; then a diffusion BC
    run and its stopped-and-resumed twin."""
    from robot_rl.runners.bc import BCRunner
    from tests.robot_rl.test_distributed import apg_algo_and_grads, bc_cfg, mse_steps, ppo_algo_and_batch

    algo, batch = ppo_algo_and_batch()
    half = {k: v.chunk(2)[rank] for k, v in batch.items()}
    algo.update_normalizers(half["policy_obs"], half["critic_obs"])
    algo.update(half)
    result = {"ppo": module_tensors(algo)}
    algo, grads = apg_algo_and_grads()
    algo.update(torch.tensor(0.0), grads[rank])
    result["apg"] = module_tensors(algo)
    result["mse"] = mse_steps(demos, rank)
    result["grad_views"] = grad_views(rank)
    result["waits"] = waits(rank)
    cfg = bc_cfg(demos)
    full = BCRunner(cfg, out / ("bc-full" if rank == 0 else "bc-full-rank1"))
    full.train()
    part = BCRunner(cfg, out / "bc-part")
    part.train(stop_at=5)
    resumed = BCRunner(cfg, out / "bc-part")
    resumed.load(out / "bc-part" / "checkpoint")
    resumed.train()
    result["bc"] = {"full": full.policy.state_tensors(), "resumed": resumed.policy.state_tensors()}
    torch.save(result, out / f"rank{rank}.pt")


def waits(rank: int) -> dict[str, list[torch.Tensor]]:
    """The same three sums (ranks' values 1+r, 2+r, 3+r) waited for by polling (the default), by gloo's blocking
    wait (``ROBOT_RL_GLOO_SPIN_MS=0``), and with a 1 ms poll while rank 1 arrives 50 ms late (the poll gives up
    and blocks). Each sum also goes through ``average_gradients`` (fresh ``.grad``)."""
    out: dict[str, list[torch.Tensor]] = {}
    for mode, limit in (("poll", None), ("block", "0"), ("late", "1")):
        if limit is not None:
            os.environ["ROBOT_RL_GLOO_SPIN_MS"] = limit
        sums = []
        for k in range(3):
            if mode == "late" and rank == 1:
                time.sleep(0.05)
            x = torch.full((7,), float(k + 1 + rank)) / 3
            p = torch.nn.Parameter(torch.zeros(7))
            p.grad = x.clone()
            distributed.average_gradients([p])
            sums += [distributed.all_sum(x), p.grad.clone()]
        out[mode] = sums
        os.environ.pop("ROBOT_RL_GLOO_SPIN_MS", None)
    return out


def grad_views(rank: int) -> dict[str, Any]:
    """``average_gradients`` over three steps of one parameter list: gradients handed over as fresh tensors,
    then accumulated by ``backward`` into the previous step's views after zeroing them in place, then fresh
    again after ``set_to_none``. Rank r's gradient of step s is ``(1 + r) * (s + 1) * c`` (c per parameter)."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))]
    c = [torch.arange(p.numel(), dtype=torch.float32).view_as(p) + 1 for p in params]
    out: dict[str, Any] = {"grads": [], "storage": []}
    for step in range(3):
        scale = (1 + rank) * (step + 1)
        if step == 1:
            for p in params:
                p.grad.zero_()
            sum((p * (scale * ci)).sum() for p, ci in zip(params, c, strict=True)).backward()
        else:
            for p, ci in zip(params, c, strict=True):
                p.grad = None
                p.grad = scale * ci
        distributed.average_gradients(params)
        out["grads"].append([p.grad.clone() for p in params])
        out["storage"].append({p.grad.untyped_storage().data_ptr() for p in params})
    return out
