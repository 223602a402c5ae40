"""``eval --source int8`` reads ``c_int8/int8_params.npz`` only while it belongs to the current ``policy.onnx``."""

import json

import numpy as np
import torch

from deploy.export.c_export import export_c
from deploy.export.examples import export_hover_example
from deploy.export.int8_reference import Int8Policy, file_sha256
from robot_rl.commands.evaluate import int8_policy


def test_stale_int8_cache_is_rebuilt_after_a_re_export(tmp_path):
    export_hover_example(tmp_path, hidden=(16,), seed=0)
    export_c(tmp_path, quantize="int8")
    cached = Int8Policy(tmp_path)
    assert cached.origin.endswith("c_int8/int8_params.npz")
    assert cached.params.onnx_sha256 == file_sha256(tmp_path / "policy.onnx")
    obs = np.asarray(json.loads((tmp_path / "policy.json").read_text())["test_vector"]["example_input"],
                     dtype=np.float32)
    old = cached(obs)
    export_hover_example(tmp_path, hidden=(16,), seed=1)  # re-export; the C export is not rerun
    fresh = Int8Policy(tmp_path)
    assert fresh.origin.startswith("rebuilt from policy.onnx")
    export_c(tmp_path, out_dir=tmp_path / "new_c_int8", quantize="int8")
    want = Int8Policy(tmp_path / "new_c_int8")(obs)  # what a fresh C export of the new policy flashes
    np.testing.assert_array_equal(fresh(obs), want)
    assert np.abs(want - old).max() > 1e-3  # the stale parameters would have evaluated another policy
    np.testing.assert_array_equal(int8_policy(tmp_path)(torch.as_tensor(obs)).numpy(), want)
