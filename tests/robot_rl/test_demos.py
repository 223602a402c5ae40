"""``robot-rl demos``: scripted-expert rollouts written as a LeRobot v3.0 dataset."""

import json

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("pyarrow")

from robot_rl.cli import main  # noqa: E402
from robot_rl.commands.demos import rollout_expert  # noqa: E402
from robot_rl.data import load_dataset  # noqa: E402
from sim.registry import get_task  # noqa: E402
from tests.robot_rl.data.test_lerobot_compat import CHECK, VENV_PYTHON  # noqa: E402


def test_demos_round_trip_through_the_loader(tmp_path, capsys):
    out = tmp_path / "reach"
    main(["demos", "panda-reach-bimodal", "--episodes", "5", "--seed", "3", "--num-envs", "2", "--out", str(out)])
    text = capsys.readouterr().out
    summary = json.loads(text.splitlines()[-1])
    assert "expert success rate" in text and summary["episodes"] == 5 and summary["success_rate"] >= 0.8
    ds = load_dataset(out)
    env = get_task("panda-reach-bimodal").probe()
    assert ds.fps == 50 and ds.robot_type == "panda" and len(ds.episodes) == 5 and ds.num_frames == summary["frames"]
    assert ds.features["observation.state"]["shape"] == [env.obs_dims["policy"]]
    assert ds.features["privileged.state"]["shape"] == [env.obs_dims["critic"]]
    assert ds.features["action"]["names"] == ["ee_delta.x", "ee_delta.y", "ee_delta.z"]
    assert ds.features["observation.state"]["names"] == env.observation_names()["policy"]
    assert not any(k.startswith("observation.") for k in ds.features if k != "observation.state")
    for ep in ds.episodes:
        assert ep["next.done"][-1, 0] and not ep["next.done"][:-1].any()  # one episode, ending where it is done
        assert np.abs(ep["action"]).max() <= 1.0
    assert np.mean([ep["next.success"][-1, 0] for ep in ds.episodes]) == summary["success_rate"]
    # policy group = noisy measurement of the critic's exact joints (first 7 dims of both)
    state, priv = ds.concat("observation.state"), ds.concat("privileged.state")
    err = np.abs(state[:, :7] - priv[:, :7])
    assert 0 < err.mean() < 0.005

    with pytest.raises(SystemExit) as exc:  # never overwrites
        main(["demos", "panda-reach-bimodal", "--episodes", "1", "--out", str(out)])
    assert exc.value.code == 2 and "already exists" in capsys.readouterr().err
    assert len(load_dataset(out).episodes) == 5


def test_demos_are_deterministic_per_seed_and_labels_are_clean():
    a, _ = rollout_expert("panda-pick-cube", 3, seed=7, action_noise=0.2, num_envs=3)
    b, _ = rollout_expert("panda-pick-cube", 3, seed=7, action_noise=0.2, num_envs=3)
    c, _ = rollout_expert("panda-pick-cube", 3, seed=8, action_noise=0.2, num_envs=3)
    assert all(np.array_equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)
    assert not np.array_equal(a[0]["observation.state"][0], c[0]["observation.state"][0])
    # clean labels: the gripper channel is exactly open (+1) or closed (-1), never noisy
    grip = np.concatenate([e["action"][:, -1] for e in a])
    assert set(np.unique(grip)) <= {-1.0, 1.0}


def test_demos_need_an_expert(capsys):
    with pytest.raises(SystemExit):
        main(["demos", "quadrotor-hover", "--episodes", "1", "--out", "/nonexistent/x"])
    assert "has no scripted expert" in capsys.readouterr().err


def test_lerobot_reads_the_demos(tmp_path):
    """The real LeRobotDataset (``.venv-lerobot``, see tests/robot_rl/data) loads a ``robot-rl demos`` dataset."""
    import os
    import subprocess

    if not VENV_PYTHON.exists():
        reason = ".venv-lerobot missing: run bash tests/robot_rl/data/make_lerobot_venv.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    lerobot_python = VENV_PYTHON

    out = tmp_path / "demos"
    main(["demos", "panda-reach-bimodal", "--episodes", "3", "--num-envs", "3", "--out", str(out)])
    dump = tmp_path / "lerobot.npz"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([str(lerobot_python), str(CHECK), str(out), str(dump)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(dump)
    ours = load_dataset(out)
    assert json.loads(str(got["summary"]))["len"] == ours.num_frames
    for key in ("observation.state", "privileged.state", "action", "next.success"):
        np.testing.assert_array_equal(got[f"frame/{key}"].reshape(ours.num_frames, -1), ours.concat(key), err_msg=key)
