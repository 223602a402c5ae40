"""Headless MuJoCo rendering (EGL) of a falling red box, written to MP4 and GIF and read back."""

import os

import numpy as np
import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("mujoco", reason="mujoco not installed (pip install -e '.[arm]')")
import mujoco  # noqa: E402

from sim.render import RenderError, render_episode, render_frames  # noqa: E402
from sim.video import read_video, write_video  # noqa: E402

FALLING_BOX = """
<mujoco>
  <visual><global offwidth="160" offheight="120"/></visual>
  <worldbody>
    <light pos="0 -1 3" dir="0 0.3 -1"/>
    <camera name="side" pos="0 -2.5 0.6" xyaxes="1 0 0 0 0 1"/>
    <geom type="plane" size="2 2 0.1" rgba="0.3 0.3 0.35 1"/>
    <body name="box" pos="0 0 1.2">
      <freejoint/>
      <geom type="box" size="0.12 0.12 0.12" rgba="1 0 0 1"/>
    </body>
  </worldbody>
</mujoco>
"""


@pytest.fixture(scope="module")
def falling():
    model = mujoco.MjModel.from_xml_string(FALLING_BOX)
    data = mujoco.MjData(model)
    qpos = []
    for _ in range(12):
        qpos.append(data.qpos.copy())
        for _ in range(40):
            mujoco.mj_step(model, data)
    return model, np.array(qpos)


def _red_rows(frames):
    """Mean image row of the red box's pixels per frame (row grows downwards)."""
    f = frames.astype(int)
    red = (f[..., 0] > 120) & (f[..., 1] < 60) & (f[..., 2] < 60)
    assert red.sum(axis=(1, 2)).min() > 10, "the box is not visible in every frame"
    rows = np.arange(frames.shape[1])[None, :, None]
    return (red * rows).sum(axis=(1, 2)) / red.sum(axis=(1, 2))


@pytest.fixture(scope="module")
def frames(falling):
    model, qpos = falling
    try:
        return render_frames(model, qpos, width=80, height=60, camera="side")
    except RenderError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(str(err))
        pytest.skip(str(err))


def test_frames_show_the_box_falling(falling, frames):
    model, qpos = falling
    assert frames.shape == (12, 60, 80, 3) and frames.dtype == np.uint8
    assert frames.reshape(12, -1).std(axis=1).min() > 10  # not blank
    rows = _red_rows(frames)
    assert rows[-1] - rows[0] > 8  # it falls by many pixels
    assert np.all(np.diff(rows[:6]) > 0)  # monotonically while in free fall
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 1


def test_mp4_and_gif_hold_the_frames(tmp_path, falling, frames):
    model, qpos = falling
    mp4 = render_episode(model, qpos, tmp_path / "fall.mp4", fps=10, width=80, height=60, camera="side")
    back = read_video(mp4)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 6  # lossy H.264 at CRF 18
    np.testing.assert_allclose(_red_rows(back), _red_rows(frames), atol=1.0)
    gif = write_video(tmp_path / "fall.gif", frames[::2], fps=5)
    assert read_video(gif).shape == (6, 60, 80, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fall.gif", "fall.mp4"]  # no temporary files left


def test_video_odd_size_is_padded_and_every_subsamples(tmp_path, falling, frames):
    model, qpos = falling
    odd = write_video(tmp_path / "odd.mp4", frames[:, :59, :79], fps=10)
    assert read_video(odd).shape == (12, 60, 80, 3)
    out = render_episode(model, qpos, tmp_path / "sub.gif", fps=5, width=80, height=60, camera="side", every=3)
    assert len(read_video(out)) == 4


def test_bad_inputs_are_one_line_errors(tmp_path, falling):
    model, qpos = falling
    with pytest.raises(RenderError, match=r"must be \[T>0, nq=7\], got shape \(12, 6\)"):
        render_frames(model, qpos[:, :6])
    bad = qpos.copy()
    bad[4, 2] = np.nan
    with pytest.raises(RenderError, match="not finite .* at frame 4"):
        render_frames(model, bad)
    with pytest.raises(RenderError, match="no camera named 'top'"):
        render_frames(model, qpos, camera="top")
    with pytest.raises(RenderError, match="exceeds the model's offscreen buffer 160x120"):
        render_frames(model, qpos, width=320, height=240)
    with pytest.raises(ValueError, match="video format must be one of"):
        write_video(tmp_path / "x.avi", np.zeros((2, 4, 4, 3), np.uint8), fps=10)
