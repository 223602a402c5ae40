"""SAC's explicit update (hand-written forward/backward, numba kernels) against plain autograd."""

import copy

import numba
import pytest
import torch

from robot_rl.algorithms.sac import SAC, SACConfig
from tests.robot_rl.test_fused_updates import assert_same, batch, random_replay

DIMS = (5, 9, 3)  # policy obs, critic obs, actions


def make(explicit: bool, seed: int = 1, **kw) -> SAC:
    """A small SAC; the same ``seed`` gives the same initial weights and generator on both paths."""
    cfg = SACConfig(actor_hidden=(16, 16), critic_hidden=(24, 16), explicit=explicit, **kw)
    torch.manual_seed(seed)
    return SAC(cfg, *DIMS, torch.Generator().manual_seed(7))


def assert_opt_state(a: SAC, b: SAC, tol: float = 1e-6) -> None:
    for name, opt in a.optimizers().items():
        other = b.optimizers()[name]
        assert len(opt.state) == len(other.state), name
        for p, q in zip(opt.param_groups[0]["params"], other.param_groups[0]["params"], strict=True):
            assert (p in opt.state) == (q in other.state), name
            if p not in opt.state:  # (not stepped yet; indexing the defaultdict would create the entry)
                continue
            for k in ("exp_avg", "exp_avg_sq", "step"):
                torch.testing.assert_close(other.state[q][k], opt.state[p][k], rtol=tol, atol=tol,
                                           msg=f"{name}.{k}")


@pytest.mark.parametrize("correction", [True, False])
@pytest.mark.parametrize("activation", ["fast_tanh", "relu"])
@pytest.mark.parametrize(("delay", "critics"), [(1, 2), (2, 3)])
def test_explicit_update_matches_plain_over_20_updates(correction, activation, delay, critics):
    kw = {"squash_correction": correction, "activation": activation, "policy_delay": delay,
          "num_critics": critics, "init_alpha": 0.3, "target_entropy": -2.0}
    plain, explicit = make(False, **kw), make(True, **kw)
    assert not plain.critic_opt.defaults.get("fused") and explicit.critic_opt.defaults["fused"]
    assert_same(plain, explicit, tol=0.0)
    with torch.no_grad():  # spread the log-stds over the clamp's edges and the pre-activations wider
        for algo in (plain, explicit):
            algo.actor.net.linears[-1].bias[3:].copy_(torch.tensor([3.0, -25.0, 0.5]))
            algo.critic.weights[0].mul_(3.0)
    for i in range(20):  # critic-only and critic + actor updates on both paths; the draws on both
        b = batch(6, *DIMS, seed=i)
        out_p, out_e = plain.update(b, train_actor=i != 5), explicit.update(b, train_actor=i != 5)
        assert out_p.keys() == out_e.keys(), i
        for k in out_p:
            torch.testing.assert_close(out_e[k], out_p[k], rtol=1e-6, atol=1e-6, msg=f"{k} after {i + 1}")
        assert_same(plain, explicit)
        assert_opt_state(plain, explicit)
        assert torch.equal(plain.gen.get_state(), explicit.gen.get_state())
        if i == 10:  # a parameter's storage moves: the kernels' views (Adam's too) follow it
            w = explicit.critic.weights[0]
            w.data = w.data.clone()
            explicit.actor.net.linears[0].weight.data = explicit.actor.net.linears[0].weight.data.clone()
    assert "actor_loss" in out_p and explicit._explicit is not None
    assert not torch.equal(plain.log_alpha, torch.tensor(0.3).log())  # the temperature moved


def test_explicit_update_resumes_as_uninterrupted():
    """state_dict save/load mid-run then continue = the uninterrupted run, bit for bit."""
    kw = {"policy_delay": 2}
    ref = make(True, **kw)
    run = make(True, **kw)
    for i in range(5):
        ref.update(batch(8, *DIMS, seed=i))
        run.update(batch(8, *DIMS, seed=i))
    saved = copy.deepcopy({"modules": {k: m.state_dict() for k, m in run.modules().items()},
                           "opts": {k: o.state_dict() for k, o in run.optimizers().items()},
                           "gen": run.gen.get_state(), "updates": run.num_updates})
    resumed = make(True, seed=99, **kw)
    for k, m in resumed.modules().items():
        m.load_state_dict(saved["modules"][k])
    for k, o in resumed.optimizers().items():
        o.load_state_dict(saved["opts"][k])
    resumed.gen.set_state(saved["gen"])
    resumed.num_updates = saved["updates"]
    for i in range(5, 12):
        out_r, out_s = ref.update(batch(8, *DIMS, seed=i)), resumed.update(batch(8, *DIMS, seed=i))
        assert {k: float(v) for k, v in out_r.items()} == {k: float(v) for k, v in out_s.items()}
    assert_same(ref, resumed, tol=0.0)
    assert_opt_state(ref, resumed, tol=0.0)


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_explicit_update_matches_plain_adamw(weight_decay):
    """``make_optimizer`` builds AdamW (decoupled decay) with ``weight_decay``: the kernel's Adam follows it."""
    plain, explicit = make(False, weight_decay=weight_decay), make(True, weight_decay=weight_decay)
    assert isinstance(explicit.actor_opt, torch.optim.AdamW) == (weight_decay > 0)
    for i in range(6):
        b = batch(16, *DIMS, seed=i)
        plain.update(b)
        explicit.update(b)
        assert_same(plain, explicit)


def test_explicit_refuses_an_unsupported_configuration():
    algo = make(True, activation="elu")
    with pytest.raises(ValueError, match="sac.explicit: activation 'elu'"):
        algo.update(batch(8, *DIMS))


def test_explicit_is_opt_in_and_only_the_presets_measured_on_it_set_it():
    from robot_rl.config import get_preset

    assert not SACConfig().explicit
    for name in ("crazyflie-hover-sac", "crazyflie-hover-sac-settle", "panda-reach-sac"):
        assert not get_preset(name).sac.explicit
    for name in ("crazyflie-hover-sac-precise", "crazyflie-hover-sac-fast"):  # measured on it (benchmarks/README.md)
        assert get_preset(name).sac.explicit


def test_update_from_replay_is_sample_then_update_bit_for_bit():
    """The one-call update gathers the columns it reads from the table itself: same draws, same values."""
    buf = random_replay(400, 300)
    sampled, one_call, plain = make(True, policy_delay=2), make(True, policy_delay=2), make(False, policy_delay=2)
    for i in range(12):
        train_actor = i >= 3
        b = buf.sample(32, sampled.gen)
        expected = {k: float(v) for k, v in sampled.update(b, train_actor).items()}
        assert one_call.update_from_replay(buf, 32, train_actor) == expected
        assert plain.update_from_replay(buf, 32, train_actor).keys() == expected.keys()
        # the first critic and the first actor step build Adam's state through torch (sample + update)
        assert (one_call._explicit._gather._cache is not None) == (i > 0)
        assert_same(sampled, one_call, tol=0.0)
        assert_opt_state(sampled, one_call, tol=0.0)
        assert_same(sampled, plain)
        assert torch.equal(sampled.gen.get_state(), one_call.gen.get_state())
        assert torch.equal(plain.gen.get_state(), one_call.gen.get_state())
    assert "actor_loss" in expected


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has fewer than 2 threads here")
@pytest.mark.parametrize("critics", [2, 3])
def test_update_is_bit_for_bit_the_same_on_one_and_two_numba_threads(critics):
    """``sac.update_threads``: the critics' forward and backward and Adam's shares run on numba's threads; one or
    two, the same numbers (two critics: one each; three: a thread takes two). numba's count is restored after."""
    buf = random_replay(400, 300)
    runs = {}
    before = numba.get_num_threads()
    for threads in (1, 2):
        algo = make(True, policy_delay=2, num_critics=critics, update_threads=threads)
        runs[threads] = (algo, [algo.update_from_replay(buf, 32, i >= 2) for i in range(8)])
        assert algo._explicit.threads.n == threads and numba.get_num_threads() == before
    (one, outs_one), (two, outs_two) = runs[1], runs[2]
    assert outs_one == outs_two and "actor_loss" in outs_one[-1]
    assert_same(one, two, tol=0.0)
    assert_opt_state(one, two, tol=0.0)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has fewer than 2 threads here")
def test_update_threads_set_numba_inside_and_restore_it_after_nested_uses():
    from robot_rl.algorithms._explicit_common import UpdateThreads

    before = numba.get_num_threads()
    outer = UpdateThreads(1 if before != 1 else 2, "x")
    with outer:
        assert numba.get_num_threads() == outer.n
        with outer:
            assert numba.get_num_threads() == outer.n
        assert numba.get_num_threads() == outer.n
    assert numba.get_num_threads() == before


def test_update_threads_beyond_numba_are_refused():
    algo = make(True, update_threads=numba.config.NUMBA_NUM_THREADS + 1)
    with pytest.raises(ValueError, match="sac.update_threads: .* threads, but numba has 1 to"):
        algo.update(batch(8, *DIMS))
