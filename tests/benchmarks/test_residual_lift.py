"""benchmarks/residual_lift.py: the robustness rows the issue asks for, each on a fresh policy, and env steps to a
target success read off a training curve."""

import json

import pytest
import torch

from benchmarks.residual_lift import combine, robustness, steps_to, summary


def test_steps_to_is_the_first_evaluation_at_the_target():
    curve = [(10_000, 0.5), (20_000, 0.79), (30_000, 0.8), (40_000, 0.7)]
    assert steps_to(curve, 0.8) == 30_000
    assert steps_to(curve, 0.5) == 10_000
    assert steps_to(curve, 0.81) is None
    # EXPO's passes_in_a_row: the evaluation that closes the run of passes, a broken run starting over
    curve = [(1, 0.9), (2, 0.6), (3, 0.85), (4, 0.9), (5, 0.95)]
    assert steps_to(curve, 0.8, 2) == 4 and steps_to(curve, 0.8, 3) == 5 and steps_to(curve, 0.8, 4) is None


def test_robustness_rows_are_nominal_mass_friction_and_latency_each_on_a_fresh_policy():
    made = []

    def make_policy():
        def still(obs):  # holds the arm where it is: never lifts the cube
            return torch.zeros(len(obs), 5)
        made.append(still)
        return still

    rows = robustness("panda-pick-cube", make_policy, episodes=2)
    assert list(rows) == ["nominal", "object_mass ×0.8", "object_mass ×1.2", "object_friction ×0.8",
                          "object_friction ×1.2", "action_latency +10 ms"]
    assert rows == dict.fromkeys(rows, 0.0)
    assert len(made) == 6 and len({id(p) for p in made}) == 6


def _summary_log(path, task, episodes, seeds, **fields):
    rows = [{"seed": s, "base_success": 0.5 + 0.1 * s, "resip_success": 0.9, "expo_success": None,
             "rerank_success": 0.6, "resip_env_steps": 1000 * (s + 1), "expo_env_steps": None} | fields
            for s in seeds]
    path.write_text("progress line\n" + json.dumps(summary(task, episodes, rows)) + "\n")
    return path


def test_combine_merges_one_seeds_methods_from_runs_on_the_same_base(tmp_path):
    first = _summary_log(tmp_path / "a.log", "panda-peg-insert", 200, [0, 1], rerank_success=None,
                         resip_curve=[[40_000, 0.9], [80_000, 0.96]], robustness={"base": {"nominal": 0.5}})
    later = _summary_log(tmp_path / "b.log", "panda-peg-insert", 200, [0, 1], resip_success=None,
                         resip_env_steps=None, expo_success=0.97, expo_env_steps=24_000, expo_target=0.95,
                         robustness={"expo": {"nominal": 0.98}})
    out = combine([first, later])
    assert out["seeds"] == [0, 1] and out["resip_success"] == pytest.approx(0.9)
    assert out["expo_success"] == pytest.approx(0.97) and out["rerank_success"] == pytest.approx(0.6)
    row = out["per_seed"][0]
    assert row["resip_env_steps"] == 1000 and row["expo_env_steps"] == 24_000
    assert row["resip_env_steps_to_expo_target"] == 80_000 and set(row["robustness"]) == {"base", "expo"}


def test_combine_reads_resips_steps_to_the_target_by_expos_stop_rule(tmp_path):
    first = _summary_log(tmp_path / "a.log", "panda-peg-insert", 200, [0], rerank_success=None,
                         resip_curve=[[40_000, 0.96], [80_000, 0.9], [120_000, 0.95], [160_000, 0.97]])
    later = _summary_log(tmp_path / "b.log", "panda-peg-insert", 200, [0], resip_success=None, resip_env_steps=None,
                         expo_success=0.96, expo_env_steps=96_000, expo_target=0.95, expo_passes_in_a_row=2)
    assert combine([first, later])["per_seed"][0]["resip_env_steps_to_expo_target"] == 160_000


def test_combine_averages_the_seeds_of_separate_runs_and_keeps_none_where_a_method_is_missing(tmp_path):
    logs = [_summary_log(tmp_path / "b.log", "panda-peg-insert", 200, [2]),
            _summary_log(tmp_path / "a.log", "panda-peg-insert", 200, [0, 1])]
    out = combine(logs)
    assert out["seeds"] == [0, 1, 2] and out["episodes"] == 200 and out["task"] == "panda-peg-insert"
    assert out["base_success"] == pytest.approx(0.6) and out["resip_env_steps"] == pytest.approx(2000)
    assert out["expo_success"] is None and out["resip_success"] == pytest.approx(0.9)


@pytest.mark.parametrize("second, message", [
    (("panda-pick-cube", 200, [1]), "disagree on task"),
    (("panda-peg-insert", 100, [1]), "disagree on episodes"),
    (("panda-peg-insert", 200, [0]), "seed 0 has a resip figure in two logs"),
])
def test_combine_refuses_logs_that_do_not_belong_together(tmp_path, second, message):
    logs = [_summary_log(tmp_path / "a.log", "panda-peg-insert", 200, [0]), _summary_log(tmp_path / "b.log", *second)]
    with pytest.raises(SystemExit, match=message):
        combine(logs)


def test_combine_refuses_one_seed_on_two_bases(tmp_path):
    logs = [_summary_log(tmp_path / "a.log", "panda-peg-insert", 200, [0]),
            _summary_log(tmp_path / "b.log", "panda-peg-insert", 200, [0], base_success=0.7, resip_success=None)]
    with pytest.raises(SystemExit, match="seed 0 has base success 0.5 in one log and 0.7 in another"):
        combine(logs)


def test_combine_refuses_a_log_without_a_summary_line(tmp_path):
    (tmp_path / "cut.log").write_text('{"seed": 0, "base_success": 0.7}\n')
    with pytest.raises(SystemExit, match="does not end with this script's summary line"):
        combine([tmp_path / "cut.log"])
