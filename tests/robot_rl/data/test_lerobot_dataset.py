"""LeRobot v3.0 writer and loader: round trip, the layout LeRobot reads, statistics, file roll-over."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robot_rl.data import CODEBASE_VERSION, load_dataset, write_dataset
from robot_rl.data.stats import feature_stats
from tests.robot_rl.data.helpers import NAMES, make_episodes

KEYS = ["observation.state", "privileged.state", "action", "next.reward", "next.done", "next.success"]


@pytest.fixture
def written(tmp_path):
    episodes = make_episodes(3)
    out = write_dataset(tmp_path / "demos", iter(episodes), fps=50, task="lift the cube", names=NAMES,
                        robot_type="panda")
    return out, episodes


def test_round_trip_gives_back_the_same_arrays(written):
    out, episodes = written
    ds = load_dataset(out)
    assert ds.fps == 50 and ds.robot_type == "panda" and ds.tasks == ["lift the cube"]
    assert ds.episode_tasks == ["lift the cube"] * 3
    assert len(ds.episodes) == 3 and ds.num_frames == 5 + 6 + 7
    start = 0
    for i, (got, want) in enumerate(zip(ds.episodes, episodes, strict=True)):
        t = len(want["action"])
        for key in KEYS:
            expected = want[key].reshape(t, -1)
            assert got[key].dtype == expected.dtype, key
            np.testing.assert_array_equal(got[key], expected, err_msg=key)
        np.testing.assert_array_equal(got["frame_index"][:, 0], np.arange(t))
        np.testing.assert_array_equal(got["episode_index"][:, 0], np.full(t, i))
        np.testing.assert_array_equal(got["index"][:, 0], start + np.arange(t))
        np.testing.assert_allclose(got["timestamp"][:, 0], np.arange(t) / 50, atol=1e-7)
        start += t
    np.testing.assert_array_equal(ds.concat("action"), np.concatenate([e["action"] for e in episodes]))


def test_info_episodes_and_tasks_follow_lerobot_v3(written):
    out, _ = written
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == CODEBASE_VERSION == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 18, 1)
    assert info["splits"] == {"train": "0:3"} and info["video_path"] is None
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["features"]["observation.state"] == {"dtype": "float32", "shape": [3], "names": NAMES[
        "observation.state"]}
    assert info["features"]["next.done"] == {"dtype": "bool", "shape": [1], "names": None}
    assert list(info["features"])[-5:] == ["timestamp", "frame_index", "episode_index", "index", "task_index"]

    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    state_type = data.schema.field("observation.state").type
    assert pa.types.is_fixed_size_list(state_type) and state_type.list_size == 3
    assert state_type.value_type == pa.float32()
    assert data.schema.field("next.reward").type == pa.float32()  # shape (1,) is a scalar column
    assert data.column_names == [*KEYS, "timestamp", "frame_index", "episode_index", "index", "task_index"]

    eps = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(e["episode_index"], e["length"], e["dataset_from_index"], e["dataset_to_index"]) for e in eps] == [
        (0, 5, 0, 5), (1, 6, 5, 11), (2, 7, 11, 18)]
    assert eps[0]["tasks"] == ["lift the cube"] and eps[0]["data/file_index"] == 0
    assert eps[1]["stats/action/count"] == [6] and len(eps[1]["stats/action/q50"]) == 2

    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert tasks.to_pylist() == [{"task_index": 0, "__index_level_0__": "lift the cube"}]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["__index_level_0__"]


def test_stats_are_those_of_all_frames_and_lerobots_quantile_average(written):
    out, episodes = written
    stats = load_dataset(out).stats
    assert set(stats) == {*KEYS, "timestamp", "frame_index", "episode_index", "index", "task_index"}
    for key in KEYS:
        frames = [e[key].reshape(len(e[key]), -1).astype(np.float64) for e in episodes]
        allf = np.concatenate(frames)
        s = stats[key]
        np.testing.assert_allclose(s["min"], allf.min(0), err_msg=key)
        np.testing.assert_allclose(s["max"], allf.max(0), err_msg=key)
        np.testing.assert_allclose(s["mean"], allf.mean(0), rtol=1e-12, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(s["std"], allf.std(0), rtol=1e-10, atol=1e-12, err_msg=key)
        assert s["count"].tolist() == [18]
        # quantiles: count-weighted mean of each episode's inverse-CDF quantile (LeRobot's aggregation)
        counts = np.array([len(f) for f in frames], dtype=float)
        per_ep = np.stack([np.quantile(f, 0.9, axis=0, method="inverted_cdf") for f in frames])
        np.testing.assert_allclose(s["q90"], (per_ep * counts[:, None]).sum(0) / counts.sum(), err_msg=key)
    np.testing.assert_allclose(stats["episode_index"]["mean"], [(5 * 0 + 6 * 1 + 7 * 2) / 18])


def test_feature_stats_quantiles_by_hand():
    s = feature_stats(np.array([[4.0], [1.0], [3.0], [2.0], [5.0]]))
    assert (s["min"], s["max"], s["mean"], s["count"].tolist()) == (1.0, 5.0, 3.0, [5])
    np.testing.assert_allclose(s["std"], [np.sqrt(2.0)])
    # inverse CDF: the smallest value whose empirical CDF reaches q
    assert [float(s[k][0]) for k in ("q01", "q10", "q50", "q90", "q99")] == [1.0, 1.0, 3.0, 5.0, 5.0]


def test_tasks_per_episode_and_int_features(tmp_path):
    episodes = make_episodes(3)
    for i, ep in enumerate(episodes):
        ep["task"] = "go left" if i != 1 else "go right"
        ep["observation.mode"] = np.full(len(ep["action"]), i, dtype=np.int64)
    ds = load_dataset(write_dataset(tmp_path / "d", episodes, fps=10))
    assert ds.tasks == ["go left", "go right"] and ds.episode_tasks == ["go left", "go right", "go left"]
    assert [int(e["task_index"][0, 0]) for e in ds.episodes] == [0, 1, 0]
    assert ds.features["observation.mode"]["dtype"] == "int64"
    np.testing.assert_array_equal(ds.episodes[2]["observation.mode"][:, 0], [2] * 7)


def test_data_files_roll_over_and_load_across_files(tmp_path):
    episodes = make_episodes(6, first_length=40)
    # 78 bytes a frame (10 float32 + 2 bool + timestamp + 4 int64), episodes of 40..45 frames: two fit in 8190
    out = write_dataset(tmp_path / "d", episodes, fps=20, task="t", data_file_size_mb=8190 / 2**20)
    files = sorted(p.relative_to(out).as_posix() for p in (out / "data").rglob("*.parquet"))
    assert files == ["data/chunk-000/file-000.parquet", "data/chunk-000/file-001.parquet",
                     "data/chunk-000/file-002.parquet"]
    meta = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [m["data/file_index"] for m in meta] == [0, 0, 1, 1, 2, 2]
    ds = load_dataset(out)
    for got, want in zip(ds.episodes, episodes, strict=True):
        np.testing.assert_array_equal(got["privileged.state"], want["privileged.state"])
    np.testing.assert_array_equal(ds.concat("index")[:, 0], np.arange(ds.num_frames))


def test_load_selected_keys_only(written):
    out, _ = written
    ds = load_dataset(out, keys=["action"])
    assert set(ds.episodes[0]) == {"action", "timestamp", "frame_index", "episode_index", "index", "task_index"}
