"""``robot-rl eval RUN --sim ...``: one export flown in our simulator, MuJoCo and PyBullet, with a transfer table."""

import json

import pytest

from robot_rl.cli import main
from tests.sim.test_engine_backends import require


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer") / "run"
    main(["train", "crazyflie-hover-td3", "--seed", "1", "--out", str(out), "--task.num-envs", "4",
          "--off-policy.total-env-steps", "200", "--off-policy.critic-starts", "100", "--off-policy.actor-starts",
          "100", "--off-policy.batch-size", "16", "--td3.actor-hidden", "8", "--td3.critic-hidden", "8",
          "--task.episode-length", "10", "--evaluation.episodes", "8", "--eval-every", "0", "--checkpoint-every", "0",
          "--log-every", "50"])
    return out


def test_eval_in_every_simulator_writes_the_transfer_table(tiny_run, capsys):
    require("mujoco")
    require("pybullet")
    main(["eval", str(tiny_run), "--episodes", "6", "--no-sweep"])
    plain = json.loads((tiny_run / "eval.json").read_text())
    capsys.readouterr()
    main(["eval", str(tiny_run), "--episodes", "6", "--sim", "ours", "mujoco", "pybullet"])
    assert "report_transfer.md" in capsys.readouterr().out
    summary = json.loads((tiny_run / "eval_transfer.json").read_text())
    assert list(summary["transfer"]) == ["ours", "mujoco", "pybullet"]
    # ours is the plain evaluation, the same held-out episodes
    assert summary["transfer"]["ours"]["survival"] == plain["survival"] == summary["survival"]
    for name in ("mujoco", "pybullet"):
        t = summary["transfer"][name]
        assert t["backend"] == name and t["episodes"] == 6 and 0 <= t["settle"] <= t["survival"] <= 1
        assert len(t["robustness"]) == 12 and {r["parameter"] for r in t["robustness"]} == {
            "mass", "thrust_coefficient", "motor_time_constant"}
    report = (tiny_run / "report_transfer.md").read_text()
    assert "## Sim-to-sim transfer" in report
    assert "| mujoco | mujoco |" in report and "| pybullet | pybullet |" in report
    assert report.count("| mujoco | mass |") == 1
    assert (tiny_run / "transfer_trajectories_transfer.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_in_one_engine_and_unknown_simulator(tiny_run, capsys):
    require("mujoco")
    main(["eval", str(tiny_run), "--episodes", "4", "--no-sweep", "--sim", "mujoco"])
    assert "simulator mujoco" in (tiny_run / "report_mujoco.md").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(tiny_run), "--sim", "isaac"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("robot-rl: error: task 'quadrotor-hover' has no simulator backend 'isaac'; choose from ours")
