import math

import pytest
import torch
from torch import nn

from robot_rl.algorithms.ppo import clipped_surrogate, compute_gae
from robot_rl.algorithms.sac import SAC, SACConfig
from robot_rl.algorithms.td3 import TD3, TD3Config


class CrossingTwinQ(nn.Module):
    """Q1 = action[0], Q2 = action[1]: which twin is smaller depends on the action, so the twins cross."""

    def forward(self, x):
        return torch.stack((x[:, -2:-1], x[:, -1:]))


def test_td3_target_uses_clipped_noise_and_twin_min():
    cfg = TD3Config(actor_hidden=(8,), critic_hidden=(8,), gamma=0.9, target_noise=10.0, target_noise_clip=0.5)
    gen = torch.Generator().manual_seed(3)
    algo = TD3(cfg, policy_dim=3, critic_dim=2, action_dim=2, generator=gen)
    algo.critic_target = CrossingTwinQ()
    with torch.no_grad():
        for p in algo.actor_target.parameters():
            p.zero_()  # target actor outputs tanh(0) = 0
    n = 16
    reward = torch.linspace(-2.0, 2.0, n)
    terminated = (torch.arange(n) % 4 == 1).float()
    noise = torch.randn((n, 2), generator=torch.Generator().manual_seed(3)) * 10.0
    y = algo.target_q(reward, torch.zeros(n, 3), torch.zeros(n, 2), terminated)
    clipped = noise.clamp(-0.5, 0.5)
    assert (clipped.abs() == 0.5).sum() >= n  # large noise is clipped to the bound
    q1, q2 = clipped[:, 0], clipped[:, 1]
    live = terminated == 0
    # the twins cross on bootstrapped rows: neither twin alone (nor their mean) gives the target
    assert (q1 < q2)[live].any() and (q2 < q1)[live].any()
    expected = reward + 0.9 * (1 - terminated) * torch.minimum(q1, q2)
    torch.testing.assert_close(y, expected)
    for wrong in (q1, q2, (q1 + q2) / 2):
        assert not torch.allclose(y, reward + 0.9 * (1 - terminated) * wrong)
    torch.testing.assert_close(y[~live], reward[~live])  # terminal: no bootstrap


def test_td3_actor_is_delayed():
    cfg = TD3Config(actor_hidden=(8,), critic_hidden=(8,), policy_delay=2)
    algo = TD3(cfg, 3, 2, 2, torch.Generator().manual_seed(0))
    batch = {"policy_obs": torch.randn(16, 3), "critic_obs": torch.randn(16, 2), "action": torch.rand(16, 2),
             "reward": torch.randn(16), "next_policy_obs": torch.randn(16, 3), "next_critic_obs": torch.randn(16, 2),
             "terminated": torch.zeros(16)}
    w0 = algo.actor.linears[0].weight.clone()
    assert "actor_loss" not in algo.update(batch)
    assert torch.equal(algo.actor.linears[0].weight, w0)
    assert "actor_loss" in algo.update(batch)
    assert not torch.equal(algo.actor.linears[0].weight, w0)


def test_sac_temperature_update_matches_hand_computation():
    cfg = SACConfig(actor_hidden=(8,), critic_hidden=(8,), init_alpha=0.5, alpha_lr=0.01, target_entropy=-4.0)
    algo = SAC(cfg, 3, 2, 4, torch.Generator().manual_seed(0))
    logp = torch.tensor([1.0, 3.0])  # mean 2 -> logp + target = -2 -> d loss / d log_alpha = +2
    loss = algo.temperature_loss(logp)
    assert loss.item() == pytest.approx(-math.log(0.5) * (2.0 - 4.0))
    algo.alpha_opt.zero_grad()
    loss.backward()
    assert algo.log_alpha.grad.item() == pytest.approx(2.0)
    algo.alpha_opt.step()  # Adam's first step moves by lr * sign(grad)
    assert algo.log_alpha.item() == pytest.approx(math.log(0.5) - 0.01, abs=1e-6)


def test_sac_log_prob_includes_tanh_correction():
    algo = SAC(SACConfig(actor_hidden=(8,)), 3, 2, 1, torch.Generator().manual_seed(0))
    obs = torch.randn(20000, 3) * 0 + 0.3
    a, logp = algo.actor.sample(obs, torch.Generator().manual_seed(1))
    mean, log_std = algo.actor.net(obs[:1]).split(1, dim=-1)
    u = torch.atanh(a.clamp(-0.999999, 0.999999))
    base = torch.distributions.Normal(mean, log_std.clamp(-20, 2).exp()).log_prob(u).squeeze(-1)
    expected = base - torch.log(1 - a.squeeze(-1) ** 2)
    ok = a.abs().squeeze(-1) < 0.99
    torch.testing.assert_close(logp[ok], expected[ok], atol=2e-3, rtol=1e-3)


def test_ppo_clipped_objective_by_hand():
    logp = torch.log(torch.tensor([1.5, 0.5, 1.1]))
    old = torch.zeros(3)
    adv = torch.tensor([1.0, -1.0, 2.0])
    # ratio 1.5, A=+1 -> min(1.5, 1.2) = 1.2; ratio 0.5, A=-1 -> min(-0.5, -0.8) = -0.8; ratio 1.1 -> 2.2
    assert clipped_surrogate(logp, old, adv, 0.2).item() == pytest.approx(-(1.2 - 0.8 + 2.2) / 3)


def test_gae_by_hand():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    last = torch.tensor([2.0])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    bootstrap = torch.tensor([[0.0], [4.0], [0.0]])  # step 1 was a time-out with V(final) = 4
    g, lam = 0.9, 0.8
    d2 = 3 + g * 2.0 - 1.5
    d1 = 2 + g * 4.0 - 1.0  # episode ends: bootstrapped from the final observation, nothing from step 2
    d0 = 1 + g * 1.0 - 0.5
    a2, a1 = d2, d1
    a0 = d0 + g * lam * a1
    adv, ret = compute_gae(rewards, values, last, dones, bootstrap, g, lam)
    torch.testing.assert_close(adv.squeeze(-1), torch.tensor([a0, a1, a2]))
    torch.testing.assert_close(ret, adv + values)


def _batch(n: int, pdim: int = 3, cdim: int = 2, adim: int = 2) -> dict[str, torch.Tensor]:
    return {"policy_obs": torch.randn(n, pdim), "critic_obs": torch.randn(n, cdim), "action": torch.rand(n, adim),
            "reward": torch.randn(n), "next_policy_obs": torch.randn(n, pdim), "next_critic_obs": torch.randn(n, cdim),
            "terminated": torch.zeros(n)}


def test_td3_critic_targets_follow_every_critic_update_before_the_actor_starts():
    """RLtools (the paper) polyak-updates the critic targets after every critic update from the first one on,
    also while the actor is not trained yet; the actor target moves only with the (delayed) actor."""
    cfg = TD3Config(actor_hidden=(8,), critic_hidden=(8,), policy_delay=2, tau=0.5)
    algo = TD3(cfg, 3, 2, 2, torch.Generator().manual_seed(0))
    c0 = [p.clone() for p in algo.critic_target.parameters()]
    a0 = [p.clone() for p in algo.actor_target.parameters()]
    algo.update(_batch(32), train_actor=False)
    assert all(not torch.equal(p, q) for p, q in zip(algo.critic_target.parameters(), c0, strict=True))
    torch.testing.assert_close(list(algo.critic_target.parameters())[0],
                               0.5 * c0[0] + 0.5 * list(algo.critic.parameters())[0])
    algo.update(_batch(32), train_actor=False)
    assert all(torch.equal(p, q) for p, q in zip(algo.actor_target.parameters(), a0, strict=True))


def test_td3_independent_batches_give_each_critic_its_own_rows():
    cfg = TD3Config(actor_hidden=(8,), critic_hidden=(8,), independent_batches=True)
    algo = TD3(cfg, 3, 2, 2, torch.Generator().manual_seed(0))
    assert algo.batch_rows(16) == 32
    batch = _batch(32)
    for k in ("critic_obs", "action"):
        batch[k][16:] = float("nan")  # rows of critic 2 only: critic 1 must not see them
    algo.update(batch, train_actor=False)
    assert torch.isfinite(algo.critic.weights[0][0]).all()
    assert torch.isnan(algo.critic.weights[0][1]).any()


def test_rltools_weight_decay_shrinks_weights_not_biases_independent_of_lr():
    """RLtools' Adam: w <- w - lr * adam_step - w * weight_decay / 2 on weight matrices only."""
    from robot_rl.algorithms.common import make_rltools_adam

    lin = nn.Linear(3, 2)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    opt = make_rltools_adam(lin.named_parameters(), lr=1e-3, weight_decay=0.1)
    lin.weight.grad, lin.bias.grad = torch.zeros_like(lin.weight), torch.zeros_like(lin.bias)
    opt.step()  # zero gradients: the Adam step is 0, only the decay acts
    torch.testing.assert_close(lin.weight.detach(), w0 * (1 - 0.05))
    torch.testing.assert_close(lin.bias.detach(), b0)


@pytest.mark.parametrize("fused", [False, True])
def test_sac_without_the_squash_correction_the_log_prob_is_the_gaussians_and_free_of_the_mean(fused):
    cfg = SACConfig(actor_hidden=(8,), squash_correction=False, fused=fused)
    algo = SAC(cfg, 3, 2, 2, torch.Generator().manual_seed(0))
    obs = torch.full((500, 3), 0.3)
    with torch.no_grad():
        algo.actor.net.linears[-1].bias[:2] += 0.8  # means far from 0: the correction would pull on them
    a, logp = algo.actor.sample(obs, torch.Generator().manual_seed(1))
    mean, log_std = algo.actor.net(obs[:1]).split(2, dim=-1)
    u = torch.atanh(a.clamp(-0.999999, 0.999999))
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1)
    ok = a.abs().max(-1).values < 0.99
    torch.testing.assert_close(logp[ok], expected[ok], atol=2e-3, rtol=1e-3)
    # the entropy term's gradient reaches the log-std outputs only, not the means
    logp.mean().backward()
    grad_b = algo.actor.net.linears[-1].bias.grad
    assert grad_b[:2].abs().max() < 1e-6 < grad_b[2:].abs().min()
