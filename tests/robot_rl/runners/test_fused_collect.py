"""TD3's fused collection chunks (``runners/fused_collect.py``) against the runner's step-by-step loop."""

import csv

import pytest
import torch

from robot_rl.runners import fused_cycles, off_policy
from robot_rl.runners.off_policy import OffPolicyRunner
from robot_rl.runs import make_runner
from sim.quadrotor.vehicles import VehicleDistribution
from tests.robot_rl.test_training import tiny


def fused_td3(steps=640):
    cfg = tiny("td3", steps)
    cfg.td3.fused = True
    cfg.off_policy.updates_per_step = 1 / 32  # a critic update every 4th step of the 8 envs
    cfg.off_policy.termination_reward = -5.0  # the kernel's stored reward: reward + termination_reward * term
    cfg.eval_every, cfg.eval_episodes_during_training = 400, 8  # a boundary a chunk must stop at
    return cfg


def count_calls(runner):
    calls = []
    collect = runner.collector.collect
    runner.collector.collect = lambda steps: (calls.append(steps), collect(steps))
    return calls


def metrics(run_dir):
    """The logged rows without the wall times."""
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    return [{k: v for k, v in row.items() if not k.endswith("time_s")} for row in rows]


def assert_same_run(a, b):
    assert a.env_steps == b.env_steps and a.algo.num_updates == b.algo.num_updates
    assert a.update_credit == b.update_credit
    assert torch.equal(a.buffer.table, b.buffer.table)
    assert (a.buffer.pos, a.buffer.size) == (b.buffer.pos, b.buffer.size)
    for name, m in a.algo.modules().items():
        for (k, x), (_, y) in zip(m.state_dict().items(), b.algo.modules()[name].state_dict().items(), strict=True):
            assert torch.equal(x, y), f"{name}.{k}"
    sa, sb = a.env.state_dict(), b.env.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert all(torch.equal(a.obs[k], b.obs[k]) for k in ("policy", "critic"))
    assert torch.equal(a.gen.get_state(), b.gen.get_state())
    assert torch.equal(a.ep_return, b.ep_return) and torch.equal(a.ep_length, b.ep_length)


def test_fused_chunks_are_the_step_by_step_loop_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setattr(off_policy, "run_cycles", lambda collector: None)  # one chunk per iteration (tested below)
    chunked, stepped = make_runner(fused_td3(), tmp_path / "a"), make_runner(fused_td3(), tmp_path / "b")
    assert chunked.collector is not None, chunked.unfused_reason
    calls = count_calls(chunked)
    stepped.collector = None
    for r in (chunked, stepped):
        r.train()
    assert_same_run(chunked, stepped)
    # one call per update (every 4th step past critic_starts 160 = 20 steps of 8 envs, each chunk stopping at
    # the log, evaluation and curriculum boundaries too), longer before
    assert sum(calls) == 80 and len(calls) < 40 and max(calls) == 20 and 4 in calls
    logged = [metrics(tmp_path / d) for d in "ab"]
    assert logged[0] == logged[1] and "episode_return" in logged[0][0] and "survival" in str(logged[0])
    assert chunked.env.reward_weights == chunked.curriculum.weights_at(3)
    terminated = chunked.buffer.data["terminated"][: chunked.buffer.size]
    assert terminated.sum() > 0  # episodes ended inside chunks: final observations and the termination reward


def test_cycles_in_one_call_are_the_step_by_step_loop_bit_for_bit(tmp_path, monkeypatch):
    """``fused_cycles.run_cycles``: every collect + update cycle up to the next boundary in one call."""
    cycled, stepped = make_runner(fused_td3(), tmp_path / "a"), make_runner(fused_td3(), tmp_path / "b")
    stepped.collector = None
    spans = []

    def run_cycles(collector):
        out = fused_cycles.run_cycles(collector)
        spans.append(None if out is None else len(out["critic_loss"]))
        return out

    monkeypatch.setattr(off_policy, "run_cycles", run_cycles)
    for r in (cycled, stepped):
        r.train()
    assert_same_run(cycled, stepped)
    for a, b in zip(cycled.algo.optimizers().values(), stepped.algo.optimizers().values(), strict=True):
        for sa, sb in zip(a.state.values(), b.state.values(), strict=True):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
    logged = [metrics(tmp_path / d) for d in "ab"]
    assert logged[0] == logged[1] and "actor_loss" in logged[0][-1]
    # from the first actor step on (Adam's state exists), several cycles per call between the boundaries; the
    # cycle that reaches a curriculum stage runs as a chunk (its rewards are rewritten before its update)
    done = [n for n in spans if n is not None]
    assert max(done) >= 2 and sum(done) > len(done) and None in spans


def test_fused_chunk_matches_plain_td3_collection(tmp_path):
    """Before the first update the fused chunk and the plain (autograd, torch-acting) TD3 collect the same
    transitions up to the actor's float rounding."""
    cfgs = [fused_td3(), fused_td3()]
    cfgs[1].td3.fused = False
    fused, plain = (make_runner(c, tmp_path / str(i)) for i, c in enumerate(cfgs))
    assert plain.collector is None and fused.collector is not None
    for r in (fused, plain):
        r.train(stop_at=48)  # 6 steps of 8 envs
    n = fused.buffer.size
    assert n == plain.buffer.size == 48
    torch.testing.assert_close(fused.buffer.table[:n], plain.buffer.table[:n], rtol=1e-6, atol=1e-6)
    assert torch.equal(fused.gen.get_state(), plain.gen.get_state())


def test_resume_across_the_step_by_step_and_the_chunked_loop(tmp_path):
    full = make_runner(fused_td3(), tmp_path / "a")
    full.train()
    part = make_runner(fused_td3(), tmp_path / "b")
    part.collector = None  # the first half step by step, the rest in chunks from its checkpoint
    part.train(stop_at=328)
    resumed = make_runner(fused_td3(), tmp_path / "b")
    resumed.load(tmp_path / "b" / "checkpoint")
    assert resumed.collector is not None and resumed.env_steps == 328
    resumed.train()
    assert_same_run(full, resumed)


@pytest.mark.parametrize("change", ["precision_bonus", "sac", "plain", "vehicles"])
def test_where_the_loop_steps_one_by_one(tmp_path, change):
    cfg = fused_td3()
    if change == "precision_bonus":
        cfg.off_policy.precision_bonus = 1.0
    elif change == "sac":
        cfg.algorithm, cfg.sac.fused = "sac", True
    elif change == "plain":
        cfg.td3.fused = False
    else:
        cfg.task.vehicles = VehicleDistribution().widened(0.1)
    runner = OffPolicyRunner(cfg, tmp_path)
    assert runner.collector is None
    expected = {"precision_bonus": "precision_bonus", "sac": "fused TD3", "plain": "fused TD3",
                "vehicles": "does not support a compiled step"}[change]
    assert expected in runner.unfused_reason
    runner.train(stop_at=40)
    assert runner.buffer.size == 40
