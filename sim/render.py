"""Headless MuJoCo rendering: replay joint positions offscreen and write a video.

MuJoCo picks its OpenGL backend from ``MUJOCO_GL`` when ``mujoco`` is first imported. This module defaults it
to ``egl`` (Mesa's software EGL on a machine without a GPU: Debian ``libegl1 libegl-mesa0 libgl1-mesa-dri``),
so import it before anything imports ``mujoco``, or set ``MUJOCO_GL=egl`` in the environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_IMPORTED_LATE = "mujoco" in sys.modules and "MUJOCO_GL" not in os.environ
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from sim.video import write_video  # noqa: E402

# MuJoCo's default 4096² shadow map makes Mesa's software rasteriser ~10x slower per frame; 2048² looks the same
# at video sizes.
SHADOW_SIZE = 2048


class RenderError(RuntimeError):
    """Offscreen rendering is unavailable or its input is wrong (one line, with the fix)."""


def _renderer(model: mujoco.MjModel, width: int, height: int) -> mujoco.Renderer:
    backend = os.environ.get("MUJOCO_GL", "")
    if _IMPORTED_LATE and not os.environ.get("DISPLAY"):
        raise RenderError("mujoco was imported before sim.render chose a headless GL backend: set MUJOCO_GL=egl "
                          "in the environment (or import sim.render first)")
    if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
        raise RenderError(f"frame {width}x{height} exceeds the model's offscreen buffer "
                          f"{model.vis.global_.offwidth}x{model.vis.global_.offheight} (<visual><global "
                          "offwidth=.. offheight=..> in the MJCF)")
    shadow = model.vis.quality.shadowsize
    model.vis.quality.shadowsize = min(shadow, SHADOW_SIZE)
    try:
        return mujoco.Renderer(model, height=height, width=width)
    except Exception as err:  # the GL backend's own errors are long and varied
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RenderError(f"cannot create an offscreen GL context with MUJOCO_GL={backend!r} ({msg}); on Debian "
                          "install libegl1 libegl-mesa0 libgl1-mesa-dri") from None
    finally:
        model.vis.quality.shadowsize = shadow


def render_frames(
    model: mujoco.MjModel,
    qpos_sequence: np.ndarray,
    *,
    width: int = 320,
    height: int = 240,
    camera: str | int | mujoco.MjvCamera | None = None,
) -> np.ndarray:
    """Render one RGB frame per row of ``qpos_sequence`` (``[T, model.nq]``): ``[T, height, width, 3]`` uint8.

    Each frame is a kinematic replay (``mj_forward`` at that qpos; free joints carry object poses), so any
    recorded trajectory renders the same way. ``camera`` is a camera name or id from the model, an
    ``MjvCamera``, or None for MuJoCo's default free camera framing the whole model.
    """
    qpos = np.asarray(qpos_sequence, dtype=np.float64)
    if qpos.ndim != 2 or qpos.shape[1] != model.nq or len(qpos) == 0:
        raise RenderError(f"qpos_sequence must be [T>0, nq={model.nq}], got shape {qpos.shape}")
    bad = ~np.isfinite(qpos)
    if bad.any():
        raise RenderError(f"qpos_sequence is not finite (NaN/inf) at frame {int(np.argwhere(bad)[0][0])}")
    if isinstance(camera, str) and mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
        raise RenderError(f"no camera named '{camera}' in the model")
    data = mujoco.MjData(model)
    frames = np.empty((len(qpos), height, width, 3), dtype=np.uint8)
    renderer = _renderer(model, width, height)
    try:
        for t, q in enumerate(qpos):
            data.qpos[:] = q
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=-1 if camera is None else camera)
            renderer.render(out=frames[t])
    finally:
        renderer.close()
    return frames


def render_episode(
    model: mujoco.MjModel,
    qpos_sequence: np.ndarray,
    out_path: str | Path,
    *,
    fps: float,
    width: int = 320,
    height: int = 240,
    camera: str | int | mujoco.MjvCamera | None = None,
    every: int = 1,
) -> Path:
    """Render ``qpos_sequence`` (every ``every``-th row) and write it to ``out_path`` (.mp4 or .gif) at ``fps``
    frames per second. Several episodes go into one video by concatenating their qpos rows."""
    if every < 1:
        raise RenderError(f"every must be >= 1, got {every}")
    frames = render_frames(model, np.asarray(qpos_sequence)[::every], width=width, height=height, camera=camera)
    return write_video(out_path, frames, fps)
