"""benchmarks/hover_curve.py's choice of the kept evaluation is keep_best's rule, on the selection figures only."""

from benchmarks.hover_curve import best_index
from sim.quadrotor.evaluation import HoverEvalConfig


def _row(sel_survival, sel_settle, survival=0.0, settle=0.0):
    return {"sel_survival": sel_survival, "sel_settle": sel_settle, "survival": survival, "settle": settle}


def test_passing_first_then_the_highest_lowest_rate_then_the_earliest():
    bar = HoverEvalConfig()
    rows = [_row(0.90, 0.60, 1.0, 1.0), _row(0.96, 0.91), _row(0.99, 0.95), _row(0.99, 0.95)]
    assert best_index(rows, bar) == 2  # the held-out figures (row 0's 100 %) play no part
    assert best_index(rows[:2], bar) == 1  # the only one that passes
    assert best_index([_row(0.80, 0.70), _row(0.96, 0.50), _row(0.97, 0.65)], bar) == 0
    assert best_index([_row(0.90, 0.95), _row(0.95, 0.90)], bar) == 1  # the first misses survival, the second passes
    assert best_index([_row(0.0, 0.0), _row(0.96, 0.0), _row(0.80, 0.0)], bar) == 1  # settle 0 throughout


def test_resume_continues_the_run_and_saves_every_evaluated_actor(tmp_path, monkeypatch, capsys):
    import json
    import sys

    from benchmarks import hover_curve

    flown = []  # the held-out flights: faked (the selection ones fly 2 real episodes)
    monkeypatch.setattr(hover_curve, "evaluate", lambda *a, **k: flown.append(k["seed"]) or
                        {"survival": 0.0, "settle": 0.0, "median_final_error_m": float("nan")})
    run = tmp_path / "run"
    # small and quick: 5k random steps, so no updates
    small = ["--off-policy.buffer-capacity", "4096", "--eval-every", "512", "--eval-episodes-during-training", "2",
             "--checkpoint-every", "0", "--task.episode-length", "20", "--sac.no-fused", "--env-impl", "torch"]
    monkeypatch.setattr(sys, "argv", ["hover_curve.py", "crazyflie-hover-sac-precise", "--seed", "0", "--out",
                                      str(run), "--off-policy.total-env-steps", "1024", *small])
    hover_curve.main()
    monkeypatch.setattr(sys, "argv", ["hover_curve.py", "--resume", str(run), "--off-policy.total-env-steps", "2048"])
    hover_curve.main()
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"env_steps"')]
    assert [r["env_steps"] for r in rows] == [512, 1024, 1536, 2048]  # the second call went on from 1024
    assert sorted(int(p.stem) for p in (run / "actors").glob("*.pt")) == [512, 1024, 1536, 2048]
    assert flown == [HoverEvalConfig().seed] * 4
    assert json.loads((run / "config.json").read_text())["off_policy"]["total_env_steps"] == 2048


def test_with_an_average_the_learning_actor_is_flown_beside_it_and_saved(tmp_path, monkeypatch, capsys):
    import json
    import sys

    import torch

    from benchmarks import hover_curve

    flown = []  # every flight is faked; the seeds tell held-out (the average) from selection (the raw actor)
    monkeypatch.setattr(hover_curve, "evaluate", lambda *a, **k: flown.append(k["seed"]) or
                        {"survival": 0.5, "settle": 0.25, "median_final_error_m": 0.2})
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", [
        "hover_curve.py", "crazyflie-hover-sac-precise", "--seed", "0", "--out", str(run),
        "--off-policy.total-env-steps", "1024", "--off-policy.buffer-capacity", "4096", "--eval-every", "512",
        "--eval-episodes-during-training", "2", "--checkpoint-every", "0", "--task.episode-length", "20",
        "--sac.no-fused", "--env-impl", "torch", "--actor-average-halflife", "256"])
    hover_curve.main()
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"env_steps"')]
    assert [(r["raw_sel_survival"], r["raw_sel_settle"]) for r in rows] == [(0.5, 0.25)] * 2
    ecfg = HoverEvalConfig()
    assert flown == [ecfg.seed, ecfg.selection_seed] * 2
    for kind in ("actors", "actors_raw"):
        assert sorted(int(p.stem) for p in (run / kind).glob("*.pt")) == [512, 1024]
    # both hold a whole actor state dict
    saved = torch.load(run / "actors" / "1024.pt", weights_only=True)
    assert set(saved) == set(torch.load(run / "actors_raw" / "1024.pt", weights_only=True))
