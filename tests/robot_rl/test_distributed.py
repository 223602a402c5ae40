"""Data-parallel training on 2 gloo ranks of this machine (``robot_rl.distributed``).

* the ranks' weights stay identical through training (PPO with normalisers, SAC, TD3, APG through the
  hand-written BPTT, diffusion BC), each rank on envs of its own seed, and only rank 0 writes files;
* a group stopped and resumed from rank 0's checkpoint ends bit-identical to an uninterrupted group;
* where the maths says so, the 2-rank step equals a single process's on the ranks' batches concatenated
  (to ~1e-6: float sums in another order). That holds when every term of the loss is a mean over equal-size
  halves and nothing else depends on how the batch is split: PPO with one minibatch per epoch (advantage
  normalisation and the empirical normalisers use all ranks' data; with several minibatches a single process
  would draw other minibatches), MSE-BC (a plain mean-squared error), and APG (the mean reward over all envs is
  the mean of the ranks' means; the norm clip acts on the averaged gradient). SAC/TD3 draw their batches and
  target noise from each rank's generator and diffusion BC its noise, so there only identity across ranks is
  checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robot_rl import distributed as D
from robot_rl.algorithms.apg import APG, APGConfig
from robot_rl.algorithms.ppo import PPO, PPOConfig
from robot_rl.checkpoint import load_checkpoint
from robot_rl.data import write_dataset
from robot_rl.distributed import DistInfo, average_gradients, rank_seed, select_rank_state, world_size_of
from robot_rl.policies.diffusion import DiffusionConfig
from robot_rl.runners.bc import BCRunner, BCTrainConfig
from robot_rl.runs import make_runner
from tests.robot_rl import ddp_workers as W
from tests.robot_rl.data.helpers import make_episodes

ROOT = Path(__file__).resolve().parents[2]


def ppo_algo_and_batch() -> tuple[PPO, dict[str, torch.Tensor]]:
    """PPO (normalised observations, a clip that bites) and a 64-row rollout, the same in every process."""
    torch.manual_seed(0)
    cfg = PPOConfig(actor_hidden=(16,), critic_hidden=(16,), epochs=3, minibatches=1, max_grad_norm=0.05,
                    empirical_normalization=True, entropy_coef=0.01)
    algo = PPO(cfg, 5, 7, 2, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    n = 64
    batch = {"policy_obs": torch.randn(n, 5, generator=g) * 3 + 1, "critic_obs": torch.randn(n, 7, generator=g),
             "action": torch.randn(n, 2, generator=g), "values": torch.randn(n, generator=g),
             "advantages": torch.randn(n, generator=g) * 2 + 0.5, "returns": torch.randn(n, generator=g)}
    batch["logp"] = torch.distributions.Normal(0.0, 0.5).log_prob(batch["action"]).sum(-1) + 0.1
    return algo, batch


def apg_algo_and_grads() -> tuple[APG, list[list[torch.Tensor]]]:
    """APG and two ranks' gradients of their mean reward (large enough that the norm clip acts)."""
    torch.manual_seed(0)
    algo = APG(APGConfig(actor_hidden=(8,), max_grad_norm=0.5), 6, 2)
    g = torch.Generator().manual_seed(3)
    grads = [[torch.randn(p.shape, generator=g) * (1 + 3 * r) for p in algo.actor.parameters()] for r in range(2)]
    return algo, grads


def bc_cfg(demos: str, policy: str = "diffusion") -> BCTrainConfig:
    small = DiffusionConfig(horizon=8, n_action_steps=4, down_dims=(16, 32), step_embed_dim=16)
    return BCTrainConfig(demos=demos, policy=policy, diffusion=small, steps=10, batch_size=8, warmup_steps=4,
                         log_every=3, checkpoint_every=0)


def mse_steps(demos: str, rank: int | None) -> dict[str, torch.Tensor]:
    """Three MSE-BC AdamW steps on fixed 32-window batches: rank ``r`` of a group takes half ``r`` of each,
    ``rank=None`` (one process) the whole."""
    runner = BCRunner(bc_cfg(demos, "mse"), Path(demos).parent / f"mse-{rank}")
    for step in range(3):
        idx = (torch.arange(32) * 3 + step) % len(runner.obs)
        obs, act = runner.obs[idx], runner.act[idx]
        if rank is not None:
            obs, act = obs.chunk(2)[rank], act.chunk(2)[rank]
        loss = runner.policy.compute_loss(obs, act, runner.gen)
        runner.opt.zero_grad()
        loss.backward()
        average_gradients(runner.policy.parameters())
        runner.opt.step()
    return runner.policy.state_tensors()


def _assert_all(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], exact: bool = True) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=2e-6, msg=k)


def test_rank_seeds_differ_and_keep_rank_zero():
    assert rank_seed(7, 0) == 7 and len({rank_seed(s, r) for s in range(50) for r in range(1, 8)}) == 350


def test_rl_runners_agree_across_ranks_and_resume_as_a_group(tmp_path):
    W.spawn(W.rl_runners, 2, tmp_path)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for alg in W.ALGORITHMS:
        assert r0[alg]["env_steps"] == r1[alg]["env_steps"] == W.TOTAL, alg
        assert r0[alg]["resumed_at"] == r1[alg]["resumed_at"] == W.STOP, alg
        _assert_all(r0[alg]["full"], r1[alg]["full"])  # the ranks' weights are the same
        _assert_all(r0[alg]["full"], r0[alg]["resumed"])  # a resumed group ends where an uninterrupted one does
        _assert_all(r1[alg]["full"], r1[alg]["resumed"])
        assert not torch.equal(r0[alg]["first_obs"], r1[alg]["first_obs"]), alg  # envs of their own seed
        base = tmp_path / alg
        assert {p.name for p in base.iterdir()} == {"full", "part"}, alg  # rank 1 wrote nothing of its own
        assert {"config.json", "metrics.csv", "checkpoint.json", "checkpoint.safetensors"} <= \
            {p.name for p in (base / "full").iterdir()}
        tensors, meta = load_checkpoint(base / "full" / "checkpoint")
        assert meta["world_size"] == 2 and world_size_of(tensors) == 2 and meta["env_steps"] == W.TOTAL
        assert not torch.equal(tensors["runner.gen"], tensors["rank1/runner.gen"])
        assert "rank1/obs.policy" in tensors and "rank1/obs.policy" not in select_rank_state(tensors, 0)
    # one process continues a group's run from rank 0's share of the checkpoint
    runner = make_runner(W.tiny_rl("ppo-normalized", 2 * W.TOTAL), tmp_path / "ppo-normalized" / "part")
    runner.load(tmp_path / "ppo-normalized" / "part" / "checkpoint")
    tensors, _ = load_checkpoint(tmp_path / "ppo-normalized" / "part" / "checkpoint")
    assert runner.env_steps == W.TOTAL and torch.equal(runner.obs["policy"], tensors["obs.policy"])
    _assert_all(W.module_tensors(runner.algo), r0["ppo-normalized"]["resumed"])
    runner.train()
    assert runner.env_steps == 2 * W.TOTAL


def test_two_rank_updates_equal_one_process_on_the_whole_batch(tmp_path):
    demos = str(write_dataset(tmp_path / "demos", make_episodes(4, first_length=12), fps=50, task="t"))
    W.spawn(W.updates_and_bc, 2, tmp_path, demos)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    # PPO: 3 epochs of one minibatch; normalisers and advantage statistics over both halves
    algo, batch = ppo_algo_and_batch()
    before = W.module_tensors(algo)
    algo.update_normalizers(batch["policy_obs"], batch["critic_obs"])
    algo.update(batch)
    want = W.module_tensors(algo)
    got = [r["ppo"] for r in ranks]
    _assert_all(got[0], got[1])
    _assert_all(got[0], want, exact=False)
    assert (got[0]["actor.net.linears.0.weight"] - before["actor.net.linears.0.weight"]).abs().max() > 1e-3
    # APG: the step of the averaged gradient (clipped after averaging)
    algo, grads = apg_algo_and_grads()
    algo.update(torch.tensor(0.0), [(a + b) / 2 for a, b in zip(*grads, strict=True)])
    got = [r["apg"] for r in ranks]
    _assert_all(got[0], got[1])
    _assert_all(got[0], W.module_tensors(algo), exact=False)
    # MSE-BC: a mean-squared error over the concatenated batch
    got = [r["mse"] for r in ranks]
    _assert_all(got[0], got[1])
    _assert_all(got[0], mse_steps(demos, None), exact=False)
    # average_gradients' flat buffer: the mean whether .grad are fresh tensors or its own views zeroed in place
    # (backward then accumulates into them); the averaged .grad are views into one buffer, kept across steps
    for r in ranks:
        views = r["grad_views"]
        for step, grads in enumerate(views["grads"]):
            c = [torch.arange(g.numel(), dtype=torch.float32).view_as(g) + 1 for g in grads]
            for g, ci in zip(grads, c, strict=True):
                assert torch.equal(g, 1.5 * (step + 1) * ci)
        assert all(s == views["storage"][0] and len(s) == 1 for s in views["storage"])
    # gloo sums waited for by polling, blocking, or a poll that gives up on a late rank: the same exact results
    for r in ranks:
        w = r["waits"]
        for k in range(3):
            x0, x1 = torch.full((7,), float(k + 1)) / 3, torch.full((7,), float(k + 2)) / 3
            assert torch.equal(w["poll"][2 * k], x0 + x1) and torch.equal(w["poll"][2 * k + 1], (x0 + x1) / 2)
        for mode in ("block", "late"):
            assert all(torch.equal(a, b) for a, b in zip(w["poll"], w[mode], strict=True))
    _assert_all(dict(enumerate(ranks[0]["waits"]["poll"])), dict(enumerate(ranks[1]["waits"]["poll"])))
    # diffusion BC: same weights on both ranks, a resumed group ends where an uninterrupted one does
    bc = [r["bc"] for r in ranks]
    _assert_all(bc[0]["full"], bc[1]["full"])
    _assert_all(bc[0]["full"], bc[0]["resumed"])
    _assert_all(bc[1]["full"], bc[1]["resumed"])
    assert (tmp_path / "bc-full" / "metrics.csv").is_file() and not (tmp_path / "bc-full-rank1").exists()


def test_torchrun_trains_from_the_cli(tmp_path):
    """``torchrun --nproc_per_node 2 -m robot_rl.cli train ...``: rank 0 writes, exports and prints the summary."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(W.free_port()), "-m", "robot_rl.cli", "train", "quadrotor-hover", "--algorithm", "ppo", "--out",
           str(out), "--task.num-envs", "4", "--on-policy.total-env-steps", "128", "--on-policy.steps-per-env",
           "8", "--ppo.actor-hidden", "8", "--ppo.critic-hidden", "8", "--evaluation.episodes", "8",
           "--evaluation.robustness", "--log-every", "32", "--checkpoint-every", "0"]
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "GLOO_SOCKET_IFNAME": "lo",
           "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["env_steps"] == 128 and proc.stdout.count("run directory") == 1
    assert (out / "export" / "policy.onnx").is_file() and (out / "report.md").is_file()
    assert load_checkpoint(out / "checkpoint")[1]["world_size"] == 2


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread names from /proc")
def test_leaving_the_group_joins_gloos_threads(tmp_path):
    """After training (whose optimisers import torch._dynamo) and ``shutdown``, no gloo thread is left to run
    into interpreter shutdown (with them alive, a rank exiting beside a busy peer once aborted in CI)."""
    W.spawn(W.threads_after_shutdown, 2, tmp_path)
    for rank in range(2):
        names = torch.load(tmp_path / f"threads{rank}.pt")
        assert not [n for n in names if "gloo" in n], names


def test_helpers_are_no_ops_without_a_group():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    average_gradients([p])
    assert torch.equal(p.grad, torch.full((3,), 2.0)) and D.info() == DistInfo() and not D.launched()


def test_gloo_poll_time_reads_milliseconds_and_names_a_bad_value(monkeypatch):
    monkeypatch.setenv("ROBOT_RL_GLOO_SPIN_MS", "2.5")
    assert D.spin_limit_s() == 0.0025
    monkeypatch.delenv("ROBOT_RL_GLOO_SPIN_MS")
    assert D.spin_limit_s() == 0.1
    monkeypatch.setenv("ROBOT_RL_GLOO_SPIN_MS", "0")
    assert D.spin_limit_s() == 0.0
    for bad in ("fast", "-5", "nan"):
        monkeypatch.setenv("ROBOT_RL_GLOO_SPIN_MS", bad)
        with pytest.raises(ValueError, match=f"ROBOT_RL_GLOO_SPIN_MS must be a number of milliseconds >= 0, "
                                             f"not '{bad}'"):
            D.spin_limit_s()


def test_pin_to_core_is_opt_in_and_names_bad_values():
    """In a child process (pinning would outlive the test in this one)."""
    code = ("import os; from robot_rl import distributed as D; cores = sorted(os.sched_getaffinity(0)); "
            "D.pin_to_core(0); assert sorted(os.sched_getaffinity(0)) == cores; "
            "os.environ['ROBOT_RL_PIN_CORES'] = '1'; D.pin_to_core(len(cores) - 1); "
            "assert os.sched_getaffinity(0) == {cores[-1]}; "
            "os.environ['ROBOT_RL_PIN_CORES'] = 'yes'; D.pin_to_core(0)")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert "ROBOT_RL_PIN_CORES must be 0 or 1, not 'yes'" in proc.stderr.splitlines()[-1]
