"""Run a recurrent export (``kind: "recurrent"``): the :class:`~deploy.runtime.PolicyRunner` with the state carried.

Every network call feeds the previous call's ``state_out`` as ``state_in``, as in training, whatever the rate
limit then does to the command (the state reads observations only). The state is zeros at activation and after
every safe command, where the action history also restarts: the policy resumes as at a training episode's
start. Torch-free, like the runtime it extends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from deploy import contract
from deploy.inputs import ModelError
from deploy.onnx_io import load_onnx
from deploy.runtime import PolicyRunner


class RecurrentPolicyRunner(PolicyRunner):
    """:class:`~deploy.runtime.PolicyRunner` for a policy that carries a state between calls."""

    def _load_session(self, spec: dict[str, Any]) -> None:
        if not contract.is_recurrent(spec):
            raise ModelError(f"{self.export_dir}: not a recurrent export (kind {spec.get('kind', 'mlp')!r})")
        rec = spec["recurrent"]
        self.session = load_onnx(self.export_dir)
        ins = {i.name: i.shape[-1] for i in self.session.get_inputs()}
        outs = {o.name: o.shape[-1] for o in self.session.get_outputs()}
        size, dim, act = rec["state_size"], contract.obs_dim(spec), contract.output_dim(spec)
        if ins != {"obs": dim, rec["input"]: size} or outs != {"action": act, rec["output"]: size}:
            raise ModelError(f"{self.export_dir}/policy.onnx: expected inputs obs[{dim}], {rec['input']}[{size}] and "
                             f"outputs action[{act}], {rec['output']}[{size}]; got {ins} and {outs}")
        self._input_name, self._output_names = "obs", ["action", rec["output"]]
        self._state_name = rec["input"]
        self.state = np.zeros((1, size), np.float32)
        """The state the next call reads (zeros at activation and after a safe command)."""

    def _reset_history(self) -> None:
        super()._reset_history()
        self.state.fill(0.0)

    def _next_action(self, now: float) -> np.ndarray | None:
        action, state = self.session.run(self._output_names, {"obs": self.obs, self._state_name: self.state})
        np.copyto(self.state, state)
        np.copyto(self._chunk_flat, action.reshape(-1))
        return self._chunk[0]

    def forward_sequence(self, obs: np.ndarray) -> np.ndarray:
        """Raw network outputs for the consecutive calls ``obs`` ``[T, obs_dim]`` of one episode from the zero
        state (the runner's own state is untouched)."""
        state = np.zeros_like(self.state)
        out = []
        for row in np.asarray(obs, np.float32):
            action, state = self.session.run(self._output_names, {"obs": row[None], self._state_name: state})
            out.append(action[0])
        return np.array(out, np.float32)

    def forward_batch(self, obs: np.ndarray) -> np.ndarray:
        raise ModelError("a recurrent policy has no stateless batch call: use forward_sequence")

    def verify_test_vector(self) -> float:
        """The test vector's consecutive calls from the zero state against ``example_output``."""
        tv: Mapping[str, Any] = self.spec["test_vector"]
        return self.compare_test_vector(tv, self.forward_sequence(np.asarray(tv["example_input"], np.float32)))
