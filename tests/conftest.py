import os

import pytest
import torch

# MuJoCo picks its GL backend when first imported; headless offscreen rendering (sim.render) needs EGL.
os.environ.setdefault("MUJOCO_GL", "egl")
pytest_plugins = ["tests.skip_policy"]  # skips fail under CI=true; one end-of-run line lists what was skipped

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def trained_reach_run(tmp_path_factory):
    """``panda-reach-sac`` trained once per session (seed 0, ~3 min on one core): run directory and the JSON
    summary ``robot-rl train`` printed. Shared by the learning check and the ROS 2 closed loop."""
    import contextlib
    import io
    import json

    pytest.importorskip("mujoco")
    from robot_rl.cli import main

    run = tmp_path_factory.mktemp("reach") / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["train", "panda-reach-sac", "--seed", "0", "--out", str(run), "--checkpoint-every", "0",
              "--eval-every", "0"])  # in-training evaluations do not change the training; skip them here
    return run, json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="session")
def trained_pick_dp(tmp_path_factory):
    """``dp-panda-pick-cube`` trained once per session on 100 expert demonstrations (``robot-rl demos``, seed 0;
    1500 steps, ~1 min on one core): the run directory and the dataset. Shared by the learning check in sim and
    the ROS 2 closed loop."""
    pytest.importorskip("mujoco")
    from robot_rl.commands.demos import record_demos
    from robot_rl.policies.presets import bc_preset
    from robot_rl.runners.bc import BCRunner

    root = tmp_path_factory.mktemp("pick_dp")
    record_demos("panda-pick-cube", 100, seed=0, out=root / "demos", action_noise=0.1, num_envs=16)
    cfg = bc_preset("dp-panda-pick-cube", str(root / "demos"), seed=0)
    cfg.steps = 1500
    BCRunner(cfg, root / "run").train()
    return root / "run", root / "demos"


#: A tiny diffusion base for the EXPO tests (``robot-rl train dp-panda-reach`` options).
EXPO_BASE_BC = ["--steps", "60", "--batch-size", "32", "--diffusion.mlp-hidden", "32", "32", "--diffusion.horizon",
                "8", "--diffusion.n-action-steps", "4", "--diffusion.num-inference-steps", "3", "--checkpoint-every",
                "0"]


@pytest.fixture(scope="session")
def expo_base_run(tmp_path_factory):
    """A tiny ``dp-panda-reach`` run on 6 demonstrations (:data:`EXPO_BASE_BC`, seconds), trained once per session:
    the frozen base of the EXPO tests (CLI, wrench input, export)."""
    pytest.importorskip("mujoco")
    from robot_rl.cli import main

    root = tmp_path_factory.mktemp("expo_base")
    main(["demos", "panda-reach", "--episodes", "6", "--out", str(root / "demos")])
    main(["train", "dp-panda-reach", "--demos", str(root / "demos"), "--out", str(root / "dp"), "--eval-episodes",
          "0", *EXPO_BASE_BC])
    return root / "dp"
