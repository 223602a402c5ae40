"""BC runner: trains from a written dataset, resumes to the numbers of an uninterrupted run, names bad data."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from robot_rl.data import DatasetFormatError, write_dataset
from robot_rl.logging import read_metrics
from robot_rl.policies.diffusion import DiffusionConfig
from robot_rl.runners.bc import BCRunner, BCTrainConfig, load_policy
from tests.robot_rl.data.helpers import make_episodes


@pytest.fixture
def demos(tmp_path):
    return write_dataset(tmp_path / "demos", make_episodes(4, first_length=12), fps=50, task="t")


def _cfg(demos, policy="diffusion", **kw):
    small = DiffusionConfig(horizon=8, n_action_steps=4, down_dims=(16, 32), step_embed_dim=16)
    return BCTrainConfig(demos=str(demos), policy=policy, diffusion=small, steps=12, batch_size=16,
                         warmup_steps=4, log_every=3, checkpoint_every=5, **kw)


@pytest.mark.parametrize("policy", ["diffusion", "mse"])
def test_resume_equals_an_uninterrupted_run(demos, tmp_path, policy):
    full = BCRunner(_cfg(demos, policy), tmp_path / "full")
    full.train()
    part = BCRunner(_cfg(demos, policy), tmp_path / "part")
    part.train(stop_at=7)
    resumed = BCRunner(_cfg(demos, policy), tmp_path / "part")
    resumed.load(tmp_path / "part" / "checkpoint")
    assert resumed.step == 7
    resumed.train()
    a, b = full.policy.state_tensors(), resumed.policy.state_tensors()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ma, mb = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "part")
    assert ma["env_steps"] == mb["env_steps"] == [3, 6, 9, 12]
    assert ma["loss"] == mb["loss"]
    # the saved policy reproduces the runner's chunks (EMA weights, normalisers)
    policy_back, meta = load_policy(tmp_path / "full")
    assert meta["step"] == 12 and json.loads((tmp_path / "full/config.json").read_text())["policy"] == policy
    obs = torch.randn(3, 2, 3)
    want = full.policy.eval().predict_chunk(obs, torch.Generator().manual_seed(0))
    got = policy_back.predict_chunk(obs, torch.Generator().manual_seed(0))
    assert got.shape == (3, 8 if policy == "diffusion" else 16, 2) and torch.equal(got, want)


def test_normalisers_come_from_the_dataset(demos, tmp_path):
    runner = BCRunner(_cfg(demos), tmp_path / "run")
    acts = runner.act.reshape(-1, 2)
    norm = runner.policy.act_norm.normalize(acts)
    assert norm.min().item() == pytest.approx(-1, abs=1e-5) and norm.max().item() == pytest.approx(1, abs=1e-5)


def test_windows_pad_with_the_episode_ends(demos, tmp_path):
    runner = BCRunner(_cfg(demos, success_only=False), tmp_path / "run")  # all four episodes
    # first window: both history entries are frame 0; the last window repeats the final action
    assert torch.equal(runner.obs[0, 0], runner.obs[0, 1])
    last = 12 - 1  # last frame of episode 0
    assert torch.equal(runner.act[last, 0], runner.act[last, -1])
    assert len(runner.obs) == 12 + 13 + 14 + 15


def test_bad_demo_data_is_one_line_naming_file_and_episode(demos, tmp_path):
    path = demos / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    values = table.column("observation.state").combine_chunks().flatten().to_numpy().reshape(-1, 3).copy()
    values[14, 1] = np.nan  # episode 1 (12 frames in episode 0), frame 2
    col = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), 3)
    pq.write_table(table.set_column(table.column_names.index("observation.state"), "observation.state", col), path)
    with pytest.raises(DatasetFormatError) as err:
        BCRunner(_cfg(demos), tmp_path / "run")
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "episode 1" in msg and "observation.state" in msg


def test_missing_feature_and_missing_demos(demos, tmp_path):
    with pytest.raises(DatasetFormatError, match="no feature 'observation.joints'"):
        BCRunner(_cfg(demos, obs_key="observation.joints"), tmp_path / "run")
    with pytest.raises(ValueError, match="demos"):
        BCRunner(BCTrainConfig(), tmp_path / "run")


def test_presets():
    from robot_rl.policies.presets import bc_preset, bc_presets

    assert "dp-panda-pick-cube" in bc_presets() and "mse-panda-reach-bimodal" in bc_presets()
    cfg = bc_preset("dp-panda-pick-cube", "/d", seed=3)
    assert cfg.policy == "diffusion" and cfg.demos == "/d" and cfg.seed == 3
    assert cfg.diffusion.prediction_type == "sample"
    assert BCTrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(KeyError, match="unknown behaviour-cloning preset"):
        bc_preset("dp-crazyflie-hover")


def test_only_successful_demonstrations_are_imitated_by_default(demos, tmp_path):
    # make_episodes: episodes 1 and 3 succeed, 0 and 2 fail
    runner = BCRunner(_cfg(demos), tmp_path / "ok")
    assert runner.episodes == 2 and runner.demos_total == 4
    assert BCRunner(_cfg(demos, success_only=False), tmp_path / "all").episodes == 4
    failed = write_dataset(tmp_path / "failed", [dict(ep, **{"next.success": np.zeros(len(ep["action"]), bool)})
                                                 for ep in make_episodes(2)], fps=50, task="t")
    with pytest.raises(DatasetFormatError, match="no episode has next.success set"):
        BCRunner(_cfg(failed), tmp_path / "none")
