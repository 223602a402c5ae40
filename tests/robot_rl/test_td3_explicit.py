"""TD3's explicit update (hand-written forward/backward, numba elementwise kernels) against plain autograd."""

import numba
import pytest
import torch

from robot_rl.algorithms import td3_explicit
from robot_rl.algorithms.td3 import TD3, TD3Config
from tests.robot_rl.test_fused_updates import assert_same, batch, pair, random_replay


@pytest.mark.parametrize("activation", ["fast_tanh", "tanh", "relu"])
@pytest.mark.parametrize(("independent", "hidden", "critics"), [(True, (32, 32), 2), (False, (16, 24, 8), 3)])
def test_explicit_update_matches_plain_over_20_updates(activation, independent, hidden, critics):
    def make(fused):
        cfg = TD3Config(actor_hidden=hidden, critic_hidden=hidden[::-1], activation=activation, fused=fused,
                        independent_batches=independent, num_critics=critics, policy_delay=2)
        return TD3(cfg, 5, 9, 3, torch.Generator().manual_seed(7))

    plain, fused = pair(make)
    assert td3_explicit.applies(fused)
    for i in range(20):  # critic-only and critic + actor updates; the target noise drawn on both paths
        b, ab = batch(plain.batch_rows(64), seed=i), batch(64, seed=100 + i)
        out_p, out_f = plain.update(b, actor_batch=ab), fused.update(b, actor_batch=ab)
        assert out_p.keys() == out_f.keys()
        for k in out_p:
            torch.testing.assert_close(out_f[k], out_p[k], rtol=1e-6, atol=1e-6)
        assert_same(plain, fused)
        if i == 10:  # a parameter's storage moves: the kernels' views (Adam's too) follow it
            w = fused.critic.weights[0]
            w.data = w.data.clone()
            fused.actor.linears[0].weight.data = fused.actor.linears[0].weight.data.clone()
    assert fused._explicit is not None and "actor_loss" in out_p
    assert torch.equal(fused.gen.get_state(), plain.gen.get_state())


def test_explicit_update_without_actor_and_elu_falls_back():
    algo = TD3(TD3Config(actor_hidden=(8,), critic_hidden=(8,), fused=True), 5, 9, 3, torch.Generator())
    actor = [p.detach().clone() for p in algo.actor.parameters()]
    out = algo.update(batch(algo.batch_rows(16)), train_actor=False)
    out = algo.update(batch(algo.batch_rows(16)), train_actor=False)
    assert "actor_loss" not in out and algo.num_updates == 2
    assert all(torch.equal(a, b) for a, b in zip(actor, algo.actor.parameters(), strict=True))
    elu = TD3(TD3Config(actor_hidden=(8,), critic_hidden=(8,), activation="elu", fused=True), 5, 9, 3)
    assert not td3_explicit.applies(elu)
    elu.update(batch(elu.batch_rows(16)))
    assert elu._explicit is None


def test_explicit_update_on_replay_samples_reads_the_critic_input_in_place():
    """Sampled rows hold critic_obs and action side by side: the critic's input is a view, same results."""
    from robot_rl.algorithms.td3_explicit import ExplicitTD3

    buf, g = random_replay(256, 200, terminated=False), torch.Generator().manual_seed(1)

    def make(fused):
        return TD3(TD3Config(actor_hidden=(16, 16), critic_hidden=(16, 16), fused=fused), 5, 9, 3,
                   torch.Generator().manual_seed(7))

    plain, fused = pair(make)
    for _ in range(6):
        b, ab = buf.sample(plain.batch_rows(32), g), buf.sample(32, g)
        x = ExplicitTD3._critic_input(b["critic_obs"], b["action"])
        assert x.data_ptr() == b["critic_obs"].data_ptr()
        assert torch.equal(x, torch.cat((b["critic_obs"], b["action"]), -1))
        plain.update(b, actor_batch=ab)
        fused.update(b, actor_batch=ab)
        assert_same(plain, fused)


@pytest.mark.parametrize(("ta", "tb"), [(False, False), (False, True), (True, False), (True, True)])
def test_blas_mm_is_torch_gemm(ta, tb):
    """The kernels' GEMM is torch's own: bit-identical products into a contiguous output; into a strided one (rows
    written in place) within one rounding, since MKL may pick another kernel for it (1 ulp on an AMD EPYC with
    torch 2.13's MKL, bit-identical on the Intel machines before)."""
    import numpy as np

    from robot_rl.models import _blas

    g = torch.Generator().manual_seed(0)
    table = torch.randn(40, 30, generator=g)
    a = table[:, 3:20] if not ta else torch.randn(17, 40, generator=g)  # strided rows / a transposed operand
    b = torch.randn(9, 17, generator=g) if tb else torch.randn(17, 9, generator=g)
    want = (a.t() if ta else a) @ (b.t() if tb else b)
    dense = torch.zeros(40, 9)
    _blas.mm(a.numpy(), ta, b.numpy(), tb, dense.numpy(), np.float32(0.0), _blas.scratch())
    assert torch.equal(dense, want)
    out = torch.full((40, 14), 7.0)
    c = out[:, 2:11]
    _blas.mm(a.numpy(), ta, b.numpy(), tb, c.numpy(), np.float32(0.0), _blas.scratch())
    torch.testing.assert_close(c, want, rtol=1e-6, atol=1e-6)
    assert (out[:, :2] == 7).all() and (out[:, 11:] == 7).all()
    _blas.mm(a.numpy(), ta, b.numpy(), tb, c.numpy(), np.float32(1.0), _blas.scratch())  # beta: accumulate
    torch.testing.assert_close(c, 2 * want)


def test_numba_adam_matches_torch_fused_adamw():
    from robot_rl.algorithms.common import make_rltools_adam
    from robot_rl.algorithms.td3_explicit import _NumbaAdam
    from robot_rl.models.mlp import MLP

    nets = [MLP(6, (8,), 3, "tanh") for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    opts = [make_rltools_adam(n.named_parameters(), 1e-2, 1e-2, fused=True) for n in nets]
    numba_adam = _NumbaAdam(opts[1])
    g = torch.Generator().manual_seed(0)
    for net in nets:
        for p in net.parameters():
            p.grad = torch.zeros_like(p)  # written in place, as ExplicitTD3 does
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=g) for p in nets[0].parameters()]
        for net in nets:
            for p, gr in zip(net.parameters(), grads, strict=True):
                p.grad.copy_(gr)
        opts[0].step()
        numba_adam()  # the first call is torch's (it builds the state), then the numba kernel
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert all(float(opts[1].state[p]["step"]) == 5 for p in nets[1].parameters())


@pytest.mark.parametrize(("independent", "hidden", "critics"), [(True, (32, 32), 2), (False, (16, 24, 8), 3)])
def test_update_from_replay_is_sample_then_update_bit_for_bit(independent, hidden, critics):
    """The one-call update gathers the columns it reads from the table itself: same draws, same values."""
    buf = random_replay(400, 300)

    def make(fused):
        cfg = TD3Config(actor_hidden=hidden, critic_hidden=hidden[::-1], independent_batches=independent,
                        num_critics=critics, fused=fused)
        return TD3(cfg, 5, 9, 3, torch.Generator().manual_seed(7))

    torch.manual_seed(1)
    sampled = make(True)
    torch.manual_seed(1)
    one_call = make(True)
    torch.manual_seed(1)
    plain = make(False)  # the plain autograd path, from the same weights and generator: to 1e-6
    for i in range(12):
        train_actor = i >= 3
        b = buf.sample(sampled.batch_rows(32), sampled.gen)
        ab = buf.sample(32, sampled.gen) if independent and sampled.actor_due(train_actor) else None
        expected = {k: float(v) for k, v in sampled.update(b, train_actor, ab).items()}
        assert one_call.update_from_replay(buf, 32, train_actor) == expected
        assert plain.update_from_replay(buf, 32, train_actor).keys() == expected.keys()
        # the first critic and the first actor step build Adam's state through torch (sample + update)
        assert (one_call._explicit._gather._cache is not None) == (i > 0)
        for name, m in sampled.modules().items():
            for (k, x), (_, y), (_, z) in zip(m.state_dict().items(), one_call.modules()[name].state_dict().items(),
                                              plain.modules()[name].state_dict().items(), strict=True):
                assert torch.equal(x, y), f"{name}.{k} after {i + 1} updates"
                torch.testing.assert_close(z, x, rtol=1e-6, atol=1e-6)
        assert torch.equal(sampled.gen.get_state(), one_call.gen.get_state())
        assert torch.equal(plain.gen.get_state(), one_call.gen.get_state())
    for a, b in zip(sampled.optimizers().values(), one_call.optimizers().values(), strict=True):
        for sa, sb in zip(a.state.values(), b.state.values(), strict=True):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has fewer than 2 threads here")
@pytest.mark.parametrize(("independent", "critics"), [(True, 2), (False, 3)])
def test_update_is_bit_for_bit_the_same_on_one_and_two_numba_threads(independent, critics):
    """``td3.update_threads``: the critics' forward and backward and Adam's shares run on numba's threads; one or
    two, the same numbers. numba's count is restored after."""
    buf = random_replay(400, 300)
    runs = []
    before = numba.get_num_threads()
    for threads in (1, 2):
        torch.manual_seed(1)
        cfg = TD3Config(actor_hidden=(16, 16), critic_hidden=(24, 16), independent_batches=independent,
                        num_critics=critics, fused=True, update_threads=threads)
        algo = TD3(cfg, 5, 9, 3, torch.Generator().manual_seed(7))
        runs.append((algo, [algo.update_from_replay(buf, 32, i >= 2) for i in range(8)]))
        assert algo._explicit.threads.n == threads and numba.get_num_threads() == before
    (one, outs_one), (two, outs_two) = runs
    assert outs_one == outs_two and "actor_loss" in outs_one[-1]
    for name, m in one.modules().items():
        for (k, x), (_, y) in zip(m.state_dict().items(), two.modules()[name].state_dict().items(), strict=True):
            assert torch.equal(x, y), f"{name}.{k}"
    for a, b in zip(one.optimizers().values(), two.optimizers().values(), strict=True):
        for sa, sb in zip(a.state.values(), b.state.values(), strict=True):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
