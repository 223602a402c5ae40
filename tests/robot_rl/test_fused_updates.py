"""The fused off-policy updates (one autograd node per network, fused Adam) against the plain autograd path."""

import copy

import pytest
import torch

from robot_rl.algorithms.common import make_optimizer, make_rltools_adam, step
from robot_rl.algorithms.sac import SAC, SACConfig
from robot_rl.algorithms.td3 import TD3, TD3Config
from robot_rl.models.critic import EnsembleMLP
from robot_rl.models.ensemble_function import actor_apply, ensemble_apply
from robot_rl.models.mlp import MLP


@pytest.mark.parametrize("activation", ["fast_tanh", "tanh", "relu"])
@pytest.mark.parametrize(("shape", "members"), [((32, 7), None), ((2, 32, 7), None), ((32, 7), 1)])
def test_ensemble_apply_matches_autograd(activation, shape, members):
    torch.manual_seed(0)
    critic = EnsembleMLP(2, 7, (16, 16), 1, activation)
    with torch.no_grad():  # spread the pre-activations over the fast tanh's clamp too
        critic.weights[0].mul_(6.0)
    x = torch.randn(shape, requires_grad=True)
    g = torch.randn(members or 2, 32, 1)
    ref = critic(x, members=members)
    gx_ref, *gp_ref = torch.autograd.grad(ref, [x, *critic.parameters()], g, allow_unused=True)
    out = ensemble_apply(critic, x, members=members)
    assert torch.equal(out, ref)  # the same ops forward
    gx, *gp = torch.autograd.grad(out, [x, *critic.parameters()], g, allow_unused=True)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-6, atol=1e-6)
    for a, b in zip(gp, gp_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    if members == 1:  # the second twin takes no part
        assert gp[0][1].abs().max() == 0 and gp_ref[0][1].abs().max() == 0


@pytest.mark.parametrize("activation", ["fast_tanh", "tanh", "relu"])
@pytest.mark.parametrize("output", ["tanh", "identity"])
def test_actor_apply_matches_autograd(activation, output):
    torch.manual_seed(0)
    actor = MLP(5, (16, 16), 3, activation, output)
    with torch.no_grad():
        actor.linears[0].weight.mul_(6.0)
    x = torch.randn(32, 5, requires_grad=True)
    g = torch.randn(32, 3)
    ref = actor(x)
    want = torch.autograd.grad(ref, [x, *actor.parameters()], g)
    out = actor_apply(actor, x)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    for a, b in zip(torch.autograd.grad(out, [x, *actor.parameters()], g), want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    with torch.no_grad():  # acting: the module's values bit for bit
        assert torch.equal(actor_apply(actor, x), actor(x))


def batch(n: int, pdim: int = 5, cdim: int = 9, adim: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"policy_obs": torch.randn(n, pdim, generator=g), "critic_obs": torch.randn(n, cdim, generator=g),
            "action": torch.rand(n, adim, generator=g) * 2 - 1, "reward": torch.randn(n, generator=g),
            "next_policy_obs": torch.randn(n, pdim, generator=g), "next_critic_obs": torch.randn(n, cdim, generator=g),
            "terminated": (torch.rand(n, generator=g) < 0.2).float()}


def random_replay(capacity: int, rows: int, terminated: bool = True):
    """A 5/9/3-wide replay buffer (2 reward terms) holding ``rows`` random transitions (20 % terminal when
    ``terminated``), seed 0."""
    from robot_rl.storage.replay import ReplayBuffer

    buf = ReplayBuffer.for_env(capacity, 5, 9, 3, 2)
    g = torch.Generator().manual_seed(0)
    buf.add(**{k: torch.randn(rows, *([w] if w else []), generator=g) for k, w in
               [("policy_obs", 5), ("critic_obs", 9), ("action", 3), ("reward_terms", 2), ("reward", 0),
                ("next_policy_obs", 5), ("next_critic_obs", 9), ("terminated", 0)]})
    if terminated:
        buf.data["terminated"][:rows] = (torch.rand(rows, generator=g) < 0.2).float()
    return buf


def pair(make):
    """The same algorithm (same initial weights) on the plain and on the fused path."""
    torch.manual_seed(1)
    plain = make(False)
    torch.manual_seed(1)
    fused = make(True)
    for name, m in plain.modules().items():
        for (k, a), b in zip(m.state_dict().items(), fused.modules()[name].state_dict().values(), strict=True):
            assert torch.equal(a, b), (name, k)
    return plain, fused


def assert_same(plain, fused, tol=1e-6):
    for name, m in plain.modules().items():
        for (k, a), b in zip(m.state_dict().items(), fused.modules()[name].state_dict().values(), strict=True):
            torch.testing.assert_close(b, a, rtol=tol, atol=tol, msg=f"{name}.{k}")


@pytest.mark.parametrize("activation", ["fast_tanh", "relu"])
@pytest.mark.parametrize("independent", [True, False])
def test_td3_fused_update_matches_plain(activation, independent):
    def make(fused):
        cfg = TD3Config(actor_hidden=(32, 32), critic_hidden=(32, 32), activation=activation, fused=fused,
                        independent_batches=independent, policy_delay=2)
        return TD3(cfg, 5, 9, 3, torch.Generator().manual_seed(7))

    plain, fused = pair(make)
    assert fused.critic_opt.defaults["fused"] and not plain.critic_opt.defaults["fused"]
    for i in range(4):  # critic-only and critic + actor updates, each on the same batch for both paths
        b, ab = batch(plain.batch_rows(64), seed=i), batch(64, seed=100 + i)
        out_p = plain.update(b, actor_batch=ab)
        out_f = fused.update(b, actor_batch=ab)
        assert out_p.keys() == out_f.keys()
        for k in out_p:
            torch.testing.assert_close(out_f[k], out_p[k], rtol=1e-6, atol=1e-6)
        assert_same(plain, fused)
    assert "actor_loss" in out_p


@pytest.mark.parametrize("shape", ["default", "panda-reach-sac"])
def test_sac_fused_update_matches_plain(shape):
    """Also on the reach preset's shapes (policy 20, critic 25, 3 actions; 128-128 ReLU, gamma 0.97, target
    entropy -3) over 20 updates: there the two paths differ only by the Adam kernel's rounding (1-2 ulp in a few
    numbers per update, ``benchmarks/fused_divergence.py``)."""
    dims, updates = ((5, 9, 3), 3) if shape == "default" else ((20, 25, 3), 20)

    def make(fused):
        if shape == "default":
            cfg = SACConfig(actor_hidden=(32, 32), critic_hidden=(32, 32), fused=fused)
        else:
            cfg = SACConfig(actor_hidden=(128, 128), critic_hidden=(128, 128), activation="relu", gamma=0.97,
                            target_entropy=-3.0, fused=fused)
        return SAC(cfg, *dims, torch.Generator().manual_seed(7))

    plain, fused = pair(make)
    for i in range(updates):
        b = batch(64, *dims, seed=i)
        out_p, out_f = plain.update(b), fused.update(b)
        for k in out_p:
            torch.testing.assert_close(out_f[k], out_p[k], rtol=1e-6, atol=1e-6)
        assert_same(plain, fused)
    torch.testing.assert_close(fused.log_alpha, plain.log_alpha, rtol=1e-6, atol=1e-6)


def test_fused_path_trains_something():
    """The comparisons above are not vacuous: an update moves every trained parameter."""
    cfg = TD3Config(actor_hidden=(16,), critic_hidden=(16,), policy_delay=1)
    algo = TD3(cfg, 5, 9, 3, torch.Generator().manual_seed(0))
    before = copy.deepcopy(algo.modules())
    algo.update(batch(algo.batch_rows(32)), actor_batch=batch(32, seed=5))
    for name in ("actor", "critic"):
        for a, b in zip(before[name].parameters(), algo.modules()[name].parameters(), strict=True):
            assert not torch.equal(a, b)


@pytest.mark.parametrize("kind", ["adam", "rltools"])
def test_fused_adam_step_equals_optimizer_step(kind):
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    w0 = nets[0][0].weight.detach().clone()
    if kind == "adam":
        opts = [make_optimizer(n.parameters(), 1e-2, 0.0, fused=True) for n in nets]
    else:  # AdamW with a decayed and an undecayed group
        opts = [make_rltools_adam(n.named_parameters(), 1e-2, 1e-2, fused=True) for n in nets]
    for i in range(4):
        x = torch.randn(16, 4, generator=torch.Generator().manual_seed(i))
        for net, opt, fast in ((nets[0], opts[0], False), (nets[1], opts[1], True)):
            loss = net(x).square().mean()
            if fast:
                step(opt, loss)  # the direct kernel call (after the first step has built the state)
            else:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
            assert torch.equal(a, b)
    assert not torch.equal(nets[0][0].weight, w0)


def test_fast_path_is_opt_in_and_the_sac_hover_preset_uses_it():
    """Opt-in (``test_training.py`` resumes both paths): as the default it turned the panda-reach-sac learning
    check from 1.00 to 0.60 held-out success."""
    from robot_rl.config import get_preset

    assert not TD3Config().fused and not SACConfig().fused
    assert get_preset("crazyflie-hover-sac").sac.fused


def test_sac_hover_preset_critic_reads_the_privileged_group_actor_the_policy_group(tmp_path):
    """Asymmetric: Q on the privileged state (+ action), the actor on what the exports and runtime feed it."""
    from robot_rl.config import get_preset
    from robot_rl.runs import make_runner

    cfg = get_preset("crazyflie-hover-sac")
    apg = get_preset("crazyflie-hover")  # the actor shape the runtime, ONNX and C exports already serve
    cfg.task.num_envs = 2
    runner = make_runner(cfg, tmp_path)
    dims = runner.env.obs_dims
    assert dims["critic"] == 28 and runner.algo.critic.weights[0].shape[1] == 28 + 4
    assert runner.algo.actor.net.linears[0].in_features == dims["policy"]
    graph = runner.algo.actor.graph()
    assert graph.weights[0].shape[1] == dims["policy"] == 18 + 4 * apg.task.action_history
    assert graph.weights[-1].shape[0] == 4 and graph.output == "tanh"
    runner._iteration()
    assert runner.obs["critic"].shape == (2, 28) and runner.obs["policy"].shape == (2, dims["policy"])
