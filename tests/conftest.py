import os

import pytest
import torch

# MuJoCo picks its GL backend when first imported; headless offscreen rendering (sim.render) needs EGL.
os.environ.setdefault("MUJOCO_GL", "egl")

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
