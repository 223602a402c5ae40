"""Bad demonstration data: one-line errors naming the file and episode; nothing half-written is left behind."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robot_rl.data import DatasetFormatError, load_dataset, write_dataset
from tests.robot_rl.data.helpers import make_episodes


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (lambda ep: ep["action"].__setitem__((2, 1), np.nan), "episode 1: feature 'action' is not finite"),
        (lambda ep: ep.update(action=ep["action"][:, :1]), "episode 1: feature 'action' has shape (6, 1), expected"),
        (lambda ep: ep.update({k: v[:0] for k, v in ep.items()}), "episode 1: empty episode"),
        (lambda ep: ep.pop("next.reward"), "episode 1: missing features ['next.reward']"),
        (lambda ep: ep.update(extra=np.zeros(6)), "episode 1: missing features [], unexpected keys ['extra']"),
        (lambda ep: ep.update(action=ep["action"][:-1]), "episode 1: feature 'action' has 5 frames, others have 6"),
    ],
)
def test_writer_rejects_bad_episodes_and_leaves_nothing(tmp_path, corrupt, expected):
    episodes = make_episodes(3)
    corrupt(episodes[1])
    out = tmp_path / "demos"
    with pytest.raises(DatasetFormatError) as err:
        write_dataset(out, episodes, fps=50, task="t")
    msg = _one_line(err)
    assert str(out) in msg and expected in msg
    if "not finite" in expected:
        assert "at frame 2" in msg
    assert list(tmp_path.iterdir()) == []  # no dataset, no temporary folder


def test_writer_refuses_to_overwrite_and_overwrite_is_atomic(tmp_path):
    out = write_dataset(tmp_path / "d", make_episodes(2), fps=50, task="first")
    with pytest.raises(DatasetFormatError, match="already exists"):
        write_dataset(out, make_episodes(2), fps=50, task="second")
    bad = make_episodes(2)
    bad[1]["next.reward"][0] = np.inf
    with pytest.raises(DatasetFormatError, match="episode 1"):
        write_dataset(out, bad, fps=50, task="second", overwrite=True)
    assert load_dataset(out).tasks == ["first"]  # the old dataset is intact
    write_dataset(out, make_episodes(4), fps=50, task="second", overwrite=True)
    assert load_dataset(out).tasks == ["second"] and len(load_dataset(out).episodes) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_writer_needs_episodes_action_and_task(tmp_path):
    with pytest.raises(DatasetFormatError, match="no episodes"):
        write_dataset(tmp_path / "a", [], fps=50, task="t")
    no_action = [{k: v for k, v in ep.items() if k != "action"} for ep in make_episodes(1)]
    with pytest.raises(DatasetFormatError, match="needs an 'action' feature"):
        write_dataset(tmp_path / "b", no_action, fps=50, task="t")
    with pytest.raises(DatasetFormatError, match="episode 0: no task description"):
        write_dataset(tmp_path / "c", make_episodes(1), fps=50)
    with pytest.raises(DatasetFormatError, match="2 names for shape"):
        write_dataset(tmp_path / "e", make_episodes(1), fps=50, task="t", names={"observation.state": ["a", "b"]})
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "d", make_episodes(3), fps=50, task="t")


def _rewrite_data(path, column, fn):
    table = pq.read_table(path)
    i = table.column_names.index(column)
    pq.write_table(table.set_column(i, column, fn(table.column(column).combine_chunks())), path)


def test_loader_names_file_and_episode_of_a_nan(dataset):
    path = dataset / "data/chunk-000/file-000.parquet"

    def nan_in_frame_7(col):  # global frame 7 = episode 1, frame 2
        values = col.flatten().to_numpy().reshape(-1, 2).copy()
        values[7, 0] = np.nan
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), 2)

    _rewrite_data(path, "action", nan_in_frame_7)
    with pytest.raises(DatasetFormatError) as err:
        load_dataset(dataset)
    assert _one_line(err) == f"{path}: episode 1: feature 'action' is not finite (NaN/inf) at frame 2"


def test_loader_rejects_wrong_dims(dataset):
    info_path = dataset / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["features"]["action"]["shape"] = [3]
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError) as err:
        load_dataset(dataset)
    assert "file-000.parquet: feature 'action' row 0 has 2 values, info.json says shape [3]" in _one_line(err)


def test_loader_names_missing_files(dataset):
    (dataset / "data/chunk-000/file-000.parquet").unlink()
    with pytest.raises(DatasetFormatError) as err:
        load_dataset(dataset)
    assert _one_line(err).startswith(f"{dataset / 'data/chunk-000/file-000.parquet'}: missing")
    (dataset / "meta/info.json").unlink()
    with pytest.raises(DatasetFormatError, match="meta/info.json: missing"):
        load_dataset(dataset)


def test_loader_rejects_an_empty_or_inconsistent_episode(dataset):
    path = dataset / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    lengths = table.column("length").to_pylist()
    lengths[2] = 0
    pq.write_table(table.set_column(table.column_names.index("length"), "length", pa.array(lengths)), path)
    with pytest.raises(DatasetFormatError) as err:
        load_dataset(dataset)
    assert "file-000.parquet: episode 2: 7 frames in the data file, metadata says 0" in _one_line(err)


def test_loader_rejects_other_versions(dataset):
    info_path = dataset / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["codebase_version"] = "v2.1"
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError, match="codebase_version 'v2.1'"):
        load_dataset(dataset)
