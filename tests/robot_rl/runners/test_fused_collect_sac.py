"""SAC's fused collection and collect + update cycles (``sac.fused_collect``) against the step-by-step loop."""

import pytest
import torch

from robot_rl.algorithms.sac import SAC, SACConfig
from robot_rl.models.mlp_act import SQUASHED_GAUSSIAN, NumbaActor, _act
from robot_rl.runners import fused_cycles_sac, off_policy
from robot_rl.runners.off_policy import OffPolicyRunner
from robot_rl.runs import make_runner
from sim.quadrotor.vehicles import VehicleDistribution
from tests.robot_rl.runners.test_fused_collect import assert_same_run, metrics
from tests.robot_rl.test_training import tiny


def fused_sac(steps=640, decay=True):
    cfg = tiny("sac", steps)
    cfg.sac.explicit = cfg.sac.fused_collect = True
    cfg.sac.policy_delay = 2
    o = cfg.off_policy
    o.updates_per_step = 1 / 16  # an update every other step of the 8 envs
    o.termination_reward = -5.0
    o.precision_bonus, o.precision_width = 2.0, 0.3  # stored by the kernel
    if decay:
        o.lr_decay_start = 320  # the learning rates change between cycles of one call
    cfg.eval_every, cfg.eval_episodes_during_training = 400, 8  # a boundary a call must stop at
    return cfg


@pytest.mark.parametrize("activation", ["fast_tanh", "relu"])
def test_numba_squashed_gaussian_sample_matches_the_actor(activation):
    torch.manual_seed(0)
    algo = SAC(SACConfig(actor_hidden=(16, 8), activation=activation), 23, 9, 3, torch.Generator().manual_seed(5))
    with torch.no_grad():  # log-stds below, inside and above the clamp
        algo.actor.net.linears[-1].bias[3:].copy_(torch.tensor([-30.0, 0.2, 5.0]))
    x = torch.randn(6, 23)
    act = NumbaActor(algo.actor.net)
    noise_gen = torch.Generator().manual_seed(9)
    noise = torch.randn((6, 3), generator=noise_gen)
    expected, _ = algo.actor.sample(x, torch.Generator().manual_seed(9))  # draws the same noise
    out = torch.empty(6, 3)
    w, b = act._weights()
    _act(x.numpy(), w, b, act.codes[0], SQUASHED_GAUSSIAN, noise.numpy(), 0.0, True, out.numpy(), act._scratch)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    _act(x.numpy(), w, b, act.codes[0], SQUASHED_GAUSSIAN, noise.numpy(), 0.0, False, out.numpy(), act._scratch)
    with torch.no_grad():
        torch.testing.assert_close(out, algo.actor(x), rtol=1e-6, atol=1e-6)


def test_sac_cycles_in_one_call_are_the_step_by_step_fused_loop_bit_for_bit(tmp_path, monkeypatch):
    cycled, stepped = make_runner(fused_sac(), tmp_path / "a"), make_runner(fused_sac(), tmp_path / "b")
    assert cycled.collector is not None
    spans, calls = [], []

    def run_sac_cycles(collector):
        if collector.runner is stepped:
            return None
        out = fused_cycles_sac.run_sac_cycles(collector)
        spans.append(None if out is None else len(out["critic_loss"]))
        return out

    monkeypatch.setattr(off_policy, "run_sac_cycles", run_sac_cycles)
    collect = stepped.collector.collect
    stepped.collector.collect = lambda steps: (calls.append(steps), collect(steps))
    for r in (cycled, stepped):
        r.train()
    assert_same_run(cycled, stepped)
    for a, b in zip(cycled.algo.optimizers().values(), stepped.algo.optimizers().values(), strict=True):
        assert [g["lr"] for g in a.param_groups] == [g["lr"] for g in b.param_groups]
        for sa, sb in zip(a.state.values(), b.state.values(), strict=True):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert cycled.algo.actor_opt.param_groups[0]["lr"] < 1e-3  # the decay ran
    logged = [metrics(tmp_path / d) for d in "ab"]
    assert logged[0] == logged[1] and {"actor_loss", "entropy", "alpha"} <= logged[0][-1].keys()
    # the step-by-step run collected in fused chunks (after the random steps), the cycled one several cycles per
    # call from the actor's first step on; the cycle that reaches a curriculum stage runs step by step
    assert sum(calls) > 40 and max(calls) >= 2
    done = [n for n in spans if n is not None]
    assert max(done) >= 2 and sum(done) > len(done) and None in spans
    stored = cycled.buffer.data["reward"][: cycled.buffer.size]
    assert cycled.buffer.data["terminated"][: cycled.buffer.size].sum() > 0 and stored.max() > 0


def test_fused_sac_collection_matches_the_plain_collection(tmp_path):
    """Before the first update the numba collection (sample, precision bonus, termination reward) stores what the
    torch loop stores, up to float rounding, from the same random draws."""
    cfgs = [fused_sac(), fused_sac()]
    cfgs[1].sac.fused_collect = False
    fused, plain = (make_runner(c, tmp_path / str(i)) for i, c in enumerate(cfgs))
    assert plain.collector is None and fused.collector is not None
    for r in (fused, plain):
        r.train(stop_at=152)  # 19 steps of 8 envs, before critic_starts
    n = fused.buffer.size
    assert n == plain.buffer.size == 152
    f, p = fused.buffer.data, plain.buffer.data
    for key in ("action", "reward"):  # an ulp of the actions grows in the flown states over the steps
        torch.testing.assert_close(f[key][:n], p[key][:n], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused.buffer.table[:n], plain.buffer.table[:n], rtol=1e-4, atol=1e-4)
    assert torch.equal(fused.gen.get_state(), plain.gen.get_state())


def test_resume_of_a_fused_sac_run(tmp_path):
    full = make_runner(fused_sac(), tmp_path / "a")
    full.train()
    part = make_runner(fused_sac(), tmp_path / "b")
    part.train(stop_at=328)
    resumed = make_runner(fused_sac(), tmp_path / "b")
    resumed.load(tmp_path / "b" / "checkpoint")
    assert resumed.env_steps == 328
    resumed.train()
    assert_same_run(full, resumed)


@pytest.mark.parametrize("change", ["not explicit", "vehicles"])
def test_fused_collect_refuses_what_it_cannot_run(tmp_path, change):
    cfg = fused_sac()
    if change == "not explicit":
        cfg.sac.explicit = False
    else:
        cfg.task.vehicles = VehicleDistribution().widened(0.1)
    expected = {"not explicit": "needs sac.explicit", "vehicles": "does not support a compiled step"}[change]
    with pytest.raises(ValueError, match=f"sac.fused_collect: .*{expected}"):
        OffPolicyRunner(cfg, tmp_path)
