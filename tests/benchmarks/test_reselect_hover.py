"""benchmarks/reselect_hover.py applies stop_when_passed's rule to saved actors on the selection episodes only,
and confirms its choice on the held-out episodes."""

import json

import pytest
import torch

from benchmarks import reselect_hover
from robot_rl.config import get_preset
from robot_rl.runs import build_actor


def _run_dir(tmp_path, marks: dict[int, float]):
    """A run directory with one saved actor per evaluation; each actor's first bias holds its mark."""
    cfg = get_preset("crazyflie-hover-sac-precise")
    (tmp_path / "config.json").write_text(cfg.to_json())
    (tmp_path / "actors").mkdir()
    actor = build_actor(cfg)
    rows = ["env_steps,train_time_s,eval_survival"]
    for steps, mark in marks.items():
        state = actor.state_dict()
        first_bias = next(k for k in state if k.endswith("bias"))
        state[first_bias][0] = mark
        torch.save(state, tmp_path / "actors" / f"{steps}.pt")
        rows += [f"{steps - 5},{steps / 100 - 1},", f"{steps},{steps / 100},0.5"]
    (tmp_path / "metrics.csv").write_text("\n".join(rows) + "\n")
    return cfg, tmp_path


@pytest.fixture
def fake_evaluate(monkeypatch):
    """Selection figures from the actor's mark (held-out ones its mark minus 0.02); records what was flown."""
    flown = []

    def evaluate(policy, task, episodes, settle_radius, seed):
        mark = float(next(v for k, v in policy.state_dict().items() if k.endswith("bias"))[0])
        flown.append((seed, episodes, mark))
        rate = mark if seed == 2_000_003 else mark - 0.02
        return {"survival": min(1.0, rate + 0.05), "settle": rate, "median_final_error_m": 0.05}

    monkeypatch.setattr(reselect_hover, "evaluate", evaluate)
    return flown


def test_first_selection_pass_is_confirmed_held_out(tmp_path, fake_evaluate):
    _, run = _run_dir(tmp_path, {20_000: 0.5, 40_000: 0.91, 60_000: 0.99})
    row = reselect_hover.reselect(run, episodes=1024)
    # 40k passes its selection evaluation (settle 0.91) and fails held out (0.89): the rule stops there all the same
    assert (row["env_steps"], row["selection_passed"], row["passed"]) == (40_000, True, False)
    assert row["time_to_hover_s"] == 400.0
    assert row["settle"] == pytest.approx(0.89)
    # the selection seed for every choice, on 1024 episodes; the held-out seed once, for the chosen actor only
    assert fake_evaluate == [(2_000_003, 1024, 0.5), (2_000_003, 1024, pytest.approx(0.91)),
                             (1_000_003, 256, pytest.approx(0.91))]
    assert json.dumps(row)


def test_without_a_pass_keep_best_choice_and_no_time(tmp_path, fake_evaluate):
    _, run = _run_dir(tmp_path, {20_000: 0.3, 40_000: 0.8, 60_000: 0.6})
    row = reselect_hover.reselect(run, episodes=256, from_steps=30_000)
    assert (row["env_steps"], row["selection_passed"], row["passed"], row["time_to_hover_s"]) == (40_000, False,
                                                                                                 False, None)
    assert [e["env_steps"] for e in row["evaluations"]] == [40_000, 60_000]


def test_in_a_row_stops_at_the_second_pass_and_keeps_the_best_passing(tmp_path, fake_evaluate):
    _, run = _run_dir(tmp_path, {20_000: 0.95, 40_000: 0.5, 60_000: 0.93, 80_000: 0.91, 100_000: 0.99})
    row = reselect_hover.reselect(run, episodes=256, in_a_row=2)
    assert (row["stop_env_steps"], row["env_steps"], row["time_to_hover_s"]) == (80_000, 20_000, 800.0)
    assert row["passed"] and row["settle"] == pytest.approx(0.93)  # the best passing (20k) held out: 0.95 - 0.02
    assert len(row["evaluations"]) == 4
