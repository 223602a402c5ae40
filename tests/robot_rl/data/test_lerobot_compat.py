"""The real `lerobot` package (in .venv-lerobot) loads our datasets and returns the same numbers.

.venv-lerobot is made by tests/robot_rl/data/make_lerobot_venv.sh (lerobot 0.4.4: the newest release that runs
on this project's Python 3.11; it reads the same codebase v3.0 format as 0.6.1). Without it the test skips,
except under CI=true, where it fails.
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from robot_rl.data import load_dataset, write_dataset
from robot_rl.data.lerobot_format import QUANTILE_KEYS
from tests.robot_rl.data.helpers import NAMES, make_episodes

ROOT = Path(__file__).resolve().parents[3]
VENV_PYTHON = ROOT / ".venv-lerobot" / "bin" / "python"
CHECK = Path(__file__).with_name("lerobot_check.py")


@pytest.fixture(scope="module")
def lerobot_python() -> Path:
    if not VENV_PYTHON.exists():
        reason = ".venv-lerobot missing: run bash tests/robot_rl/data/make_lerobot_venv.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return VENV_PYTHON


def test_lerobot_dataset_loads_what_we_wrote(tmp_path, lerobot_python):
    episodes = make_episodes(4, seed=3)
    for i, ep in enumerate(episodes):
        ep["task"] = "reach left" if i % 2 == 0 else "reach right"
    out = write_dataset(tmp_path / "demos", episodes, fps=50, names=NAMES, robot_type="panda")
    dump = tmp_path / "lerobot.npz"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")  # LeRobot's arrow cache; never the network
    proc = subprocess.run([str(lerobot_python), str(CHECK), str(out), str(dump)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(dump)
    summary = json.loads(str(got["summary"]))

    ours = load_dataset(out)
    assert (summary["len"], summary["num_episodes"], summary["fps"]) == (ours.num_frames, 4, 50)
    assert summary["episode_lengths"] == [len(e["action"]) for e in episodes]
    assert summary["tasks"] == {"reach left": 0, "reach right": 1}
    assert summary["tasks_per_frame"] == [ep["task"] for ep in episodes for _ in range(len(ep["action"]))]
    assert summary["features"]["observation.state"] == {"dtype": "float32", "shape": [3]}

    for key in ours.features:  # what LeRobot returns per frame is what we were given
        want = (np.concatenate([ep[key].reshape(len(ep[key]), -1) for ep in episodes]) if key in episodes[0]
                else ours.concat(key))
        np.testing.assert_array_equal(got[f"frame/{key}"].reshape(ours.num_frames, -1), want, err_msg=key)

    stats = json.loads((out / "meta/stats.json").read_text())
    for key, st in stats.items():
        for name, value in st.items():
            # meta.stats is our stats.json as LeRobot reads it
            np.testing.assert_array_equal(got[f"meta_stats/{key}/{name}"], np.asarray(value, float))
            # and LeRobot's own computation over the frames it loaded agrees with it
            theirs = got[f"lerobot_stats/{key}/{name}"].reshape(-1)
            mine = np.asarray(value, float).reshape(-1)
            if name in ("min", "max", "count"):
                np.testing.assert_array_equal(theirs, mine, err_msg=f"{key} {name}")
            elif name in ("mean", "std"):  # LeRobot sums float32 data in float32
                np.testing.assert_allclose(theirs, mine, rtol=1e-5, atol=1e-6, err_msg=f"{key} {name}")
            else:
                assert name in QUANTILE_KEYS
                one_bin = (np.asarray(st["max"], float) - np.asarray(st["min"], float)) / 5000
                np.testing.assert_allclose(theirs, mine, rtol=0, atol=float(one_bin.max()) + 1e-9,
                                           err_msg=f"{key} {name}")
