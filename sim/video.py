"""Write and read short videos of RGB frames: MP4 (H.264 through the ffmpeg binary that the imageio-ffmpeg wheel
ships) or GIF (Pillow). Files are written atomically: a temporary file beside the target, then a rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

FORMATS = (".mp4", ".gif")


def write_video(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write ``frames`` (``[N, H, W, 3]`` uint8) to ``path``; the suffix (.mp4 or .gif) picks the format.

    MP4 uses H.264 in yuv420p (what browsers and players expect), so odd widths or heights are padded by one
    black pixel.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{path}: video format must be one of {FORMATS}, got '{path.suffix}'")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"{path}: frames must be [N>0, H, W, 3] uint8, got {frames.shape} {frames.dtype}")
    if not fps > 0:
        raise ValueError(f"{path}: fps must be positive, got {fps}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        if path.suffix.lower() == ".mp4":
            _write_mp4(tmp, frames, fps)
        else:
            _write_gif(tmp, frames, fps)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _write_mp4(path: str, frames: np.ndarray, fps: float) -> None:
    import imageio.v2 as imageio

    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    # macro_block_size=1: keep the size as given (imageio would otherwise rescale to multiples of 16)
    with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
                            macro_block_size=1, ffmpeg_log_level="error", output_params=["-crf", "18"]) as writer:
        for frame in frames:
            writer.append_data(frame)


def _write_gif(path: str, frames: np.ndarray, fps: float) -> None:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=max(int(round(1000 / fps)), 20), optimize=False)


def read_video(path: str | Path) -> np.ndarray:
    """All frames of an MP4 or GIF written by :func:`write_video`, as ``[N, H, W, 3]`` uint8."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video")
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as img:
            return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(img)])
    import imageio.v2 as imageio

    with imageio.get_reader(path, format="FFMPEG") as reader:
        return np.stack([np.asarray(f) for f in reader])
