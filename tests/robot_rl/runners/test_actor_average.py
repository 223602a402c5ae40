"""actor_average_halflife: an exponential moving average of the actor's weights is the run's policy (evaluated,
kept, checkpointed, exported) while the acting and learning actor, and so training, is unchanged."""

import pytest
import torch

from robot_rl.checkpoint import load_checkpoint
from robot_rl.runs import load_actor, make_runner
from sim.registry import TaskSpec
from tests.robot_rl.runners.test_fused_collect import fused_td3
from tests.robot_rl.test_training import tiny


def _config(algorithm: str, halflife: int, steps: int = 640):
    cfg = fused_td3(steps) if algorithm == "fused-td3" else tiny(algorithm, steps=steps)
    cfg.actor_average_halflife, cfg.checkpoint_every = halflife, 0
    return cfg


def _checkpoint(run_dir) -> dict[str, torch.Tensor]:
    tensors, _ = load_checkpoint(run_dir / "checkpoint")
    return tensors


def _fill(module: torch.nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in module.state_dict().values():
            p.fill_(value)


def test_the_average_follows_the_half_life_in_env_steps(tmp_path):
    runner = make_runner(_config("sac", 100), tmp_path / "run")
    _fill(runner.actor, 1.0)
    runner._start_average()
    _fill(runner.actor, 3.0)
    runner._update_average(100)  # one half-life: half way
    assert all(bool((v == 2.0).all()) for v in runner.actor_average.state_dict().values())
    _fill(runner.actor, 6.0)
    runner._update_average(200)  # two half-lives: a quarter of the old average remains
    assert all(bool((v == 5.0).all()) for v in runner.actor_average.state_dict().values())
    runner._update_average(0)
    assert all(bool((v == 5.0).all()) for v in runner.actor_average.state_dict().values())
    assert all(bool((v == 6.0).all()) for v in runner.actor.state_dict().values())  # the actor is not touched


def test_after_training_the_average_is_the_formula_over_the_iterations(tmp_path):
    runner = make_runner(_config("sac", 96), tmp_path / "run")
    start = {k: v.clone() for k, v in runner.actor.state_dict().items()}
    seen: list[tuple[int, dict[str, torch.Tensor]]] = []
    iteration = runner._iteration

    def recorded():
        before = runner.env_steps
        out = iteration()
        seen.append((runner.env_steps - before, {k: v.clone() for k, v in runner.actor.state_dict().items()}))
        return out

    runner._iteration = recorded
    runner.train()
    assert sum(s for s, _ in seen) == 640 and len(seen) == 80  # 8 envs: one iteration per step of all of them
    want = {k: v.double() for k, v in start.items()}
    for steps, actor in seen:
        d = 0.5 ** (steps / 96)
        want = {k: d * want[k] + (1 - d) * actor[k].double() for k in want}
    got = runner.actor_average.state_dict()
    for k, v in want.items():
        torch.testing.assert_close(got[k].double(), v, rtol=0, atol=1e-6)
    assert not torch.allclose(got["net.linears.0.weight"], runner.actor.state_dict()["net.linears.0.weight"])


@pytest.mark.parametrize("algorithm", ["sac", "td3", "fused-td3"])
def test_training_is_bit_identical_with_and_without_the_average(tmp_path, algorithm):
    runs = {}
    for halflife in (0, 50):
        runner = make_runner(_config(algorithm, halflife), tmp_path / str(halflife))
        runner.train()
        runs[halflife] = _checkpoint(tmp_path / str(halflife))
    off, on = runs[0], runs[50]
    assert not any(k.startswith("actor_average.") for k in off)  # off: nothing new in the checkpoint
    averaged = {k for k in on if k.startswith("actor_average.")}
    assert averaged and set(on) - averaged == set(off)
    for k, v in off.items():  # networks, optimisers, replay, envs, generators, counters
        assert torch.equal(v, on[k]), k
    if algorithm == "fused-td3":
        assert runner.collector is not None, runner.unfused_reason


def test_off_leaves_the_runner_as_it_was(tmp_path):
    runner = make_runner(_config("sac", 0), tmp_path / "run")
    runner.train()
    assert runner.actor_average is None and runner.policy_actor is runner.actor


def test_resume_continues_the_average_exactly(tmp_path):
    straight = make_runner(_config("sac", 64), tmp_path / "straight")
    straight.train()
    first = make_runner(_config("sac", 64), tmp_path / "first")
    first.train(stop_at=320)
    resumed = make_runner(_config("sac", 64), tmp_path / "resumed")
    resumed.load(tmp_path / "first" / "checkpoint")
    for k, v in first.actor_average.state_dict().items():
        assert torch.equal(resumed.actor_average.state_dict()[k], v), k
    resumed.train()
    want, got = _checkpoint(tmp_path / "straight"), _checkpoint(tmp_path / "resumed")
    assert set(want) == set(got)
    for k, v in want.items():
        assert torch.equal(v, got[k]), k


def test_resuming_a_run_without_an_average_with_one_is_refused(tmp_path):
    make_runner(_config("sac", 0), tmp_path / "plain").train(stop_at=320)
    runner = make_runner(_config("sac", 64), tmp_path / "on")
    with pytest.raises(ValueError, match="holds no actor average"):
        runner.load(tmp_path / "plain" / "checkpoint")
    with pytest.raises(ValueError, match="actor_average_halflife"):
        make_runner(_config("sac", -1), tmp_path / "bad")


def test_resuming_an_averaged_run_without_its_average_is_refused(tmp_path):
    make_runner(_config("sac", 64), tmp_path / "on").train(stop_at=320)
    runner = make_runner(_config("sac", 0), tmp_path / "off")
    with pytest.raises(ValueError, match="holds an actor average"):
        runner.load(tmp_path / "on" / "checkpoint")


@pytest.mark.parametrize("keep_best", [True, False])
def test_the_evaluated_kept_and_exported_actor_is_the_average(tmp_path, monkeypatch, keep_best):
    cfg = _config("sac", 64)
    cfg.eval_every, cfg.keep_best = 160, keep_best
    cfg.evaluation.survival_bar, cfg.evaluation.settle_bar = 0.95, 0.3
    script = [(0.5, 0.1), (0.96, 0.6), (0.9, 0.3), (0.5, 0.2)]  # the second evaluation is the best
    runner = make_runner(cfg, tmp_path / "run")
    probe = torch.linspace(-1, 1, 8 * runner.env.obs_dims["policy"]).reshape(8, -1)
    seen, averaged, raw = [], [], []

    def fake(self, policy, *args, **kwargs):
        survival, settle = script[len(seen)]
        seen.append(policy(probe))
        with torch.no_grad():
            averaged.append(runner.actor_average(probe))
            raw.append(runner.actor(probe))
        return {"survival": survival, "settle": settle, "median_final_error_m": 0.1, "episodes": 4, "seed": 0}

    monkeypatch.setattr(TaskSpec, "evaluate", fake)
    runner.train()
    assert len(seen) == 4
    for s, a in zip(seen, averaged, strict=True):
        torch.testing.assert_close(s, a, rtol=0, atol=0)
    assert not torch.allclose(seen[-1], raw[-1])  # the average is not the learning actor
    _, actor, _ = load_actor(tmp_path / "run")
    with torch.no_grad():
        exported = actor(probe)
    if keep_best:
        assert runner.best["env_steps"] == 320
        torch.testing.assert_close(runner.policy_fn(best=True)(probe), seen[1], rtol=0, atol=0)
        torch.testing.assert_close(exported, seen[1], rtol=0, atol=0)
    else:
        torch.testing.assert_close(exported, seen[3], rtol=0, atol=0)  # the final average, not the actor
    torch.testing.assert_close(runner.policy_fn()(probe), seen[3], rtol=0, atol=0)
