"""Torch-free policy runtime: the single place where sensor data becomes actuator commands.

Only numpy, onnxruntime and :mod:`deploy.contract` are imported here (never torch), so this module runs on a
robot computer that has ROS 2, numpy and onnxruntime. :class:`PolicyRunner` owns, per control step:

1. input checks: e-stop latch, every declared input source received, fresh (``timeout_s``) and without a
   reported fault, all observation values finite and inside their plausibility ranges (``policy.json``
   ``valid_low``/``valid_high``, or ``low``/``high`` for a component without them); a component with a
   plausibility range *and* a training range (``low``/``high``) is then clamped into the training range (the
   policy never saw more; the step goes on and :meth:`PolicyRunner.stats` counts it);
2. observation assembly: profiles write measured components into named views of one preallocated
   ``[1, obs_dim]`` buffer; the runner writes ``action_history`` / ``previous_action`` itself;
3. inference (onnxruntime, 1 thread) and the action-chunk queue (``action.chunk``);
4. action clipping to ``action.low``/``high``, the map to the command (affine for rpm or joint targets;
   ``ee_delta``: the simulator's own IK controller, :mod:`deploy.arm_command`), command limits, and rate
   limiting (``max_command_delta`` per step, starting from the safe command = the measured state after
   :meth:`PolicyRunner.activate`); arm commands then pass a last guard (finite, inside the limits);
5. the safe command with a one-line reason whenever anything above is wrong.

Arms: a NaN anywhere, a target outside the joint limits and a step faster than the joint velocity limit never
reach the actuator: non-finite input or output -> hold; targets are clamped into ``command_low``/``high`` and
rate limited by ``max_command_delta`` (``ee_delta``: never wider than the Panda's joint position limits and
velocity limits times the control period), counted in ``limited_steps``; the guard's trips in ``guard_trips``.
``ee_delta`` commands are ``[7 joint targets, gripper width]``; the profile writes the measured state in the
same units into :attr:`PolicyRunner.measured` (joints outside the Panda's limits by more than 0.1 rad are a
fault).

Input stamps (:meth:`PolicyRunner.accept`) pass :class:`deploy.inputs.StampGate` (newer than the last, not
from the future, restarts after a clock step). The e-stop latch survives :meth:`PolicyRunner.activate` and is
cleared only by :meth:`PolicyRunner.clear_estop`. A safe step resets ``action_history`` / ``previous_action``
to what training saw after a reset, so the first policy step after any interruption conditions on the same
history as the first step of a training episode.

Safe commands: ``motor_rpm`` -> ``safe_action`` (default -1, motors off); ``joint_position`` and ``ee_delta``
-> hold the last valid measured joint position, approached from the last command within ``max_command_delta``
per step (no jump: a moving arm lags its target) (a gripper: its last command, else its measured width, so
that a grasp is kept), clamped into the command limits (none
exists before the first joint state: ``step`` then returns ``None``);
``attitude_thrust`` -> none: ``step`` returns ``None`` and the caller stops its setpoint stream (a Crazyflie
levels out 500 ms after its last setpoint and stops its motors after 2 s).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deploy import contract
from deploy.command_map import build_command_map
from deploy.inputs import ModelError, StampGate
from deploy.obs_layout import RUNTIME_COMPONENTS, ObsLayout
from deploy.onnx_io import SessionCall, load_one_in_one_out

__all__ = ["ModelError", "PolicyRunner"]


class PolicyRunner:
    """Run an exported policy (``policy.onnx`` + ``policy.json``) safely at a fixed rate.

    Args:
        export_dir: folder with ``policy.onnx`` and ``policy.json``.
        sources: input streams and their timeouts in seconds (``None``: must have arrived once, never stale).
        command_low / command_high: command limits (rpm or rad), one number or one per action element.
        max_command_delta: largest command change per step (same units); ``inf`` disables rate limiting.
        command_unit: ``motor_rpm`` only: ``"rpm"`` (default) or ``"normalized"`` (the action in [-1, 1]).
        output_order: indices that reorder the command for the consumer (e.g. a controller's joint order).
        check_stamps: reject input whose header stamp is not newer than the previous one of its source.
        max_future_s: reject a stamp more than this far ahead of the clock passed to :meth:`accept`.
        stamp_jump_s: a stamp this much older than the last restarts the source's stamp sequence.
        recovery_count: after this many consecutive rejected stamps the next message restarts the sequence.

    ``step`` returns ``(command, reason)``: ``reason`` is ``None`` for a policy command, else why the safe
    command was sent. ``command`` is a preallocated float32 buffer, overwritten by the next call.
    """

    def __init__(self, export_dir: str | Path, *, sources: Mapping[str, float | None] | None = None,
                 command_low: float | Sequence[float] | None = None,
                 command_high: float | Sequence[float] | None = None,
                 max_command_delta: float | Sequence[float] | None = None, command_unit: str = "rpm",
                 output_order: Sequence[int] | None = None, check_stamps: bool = True,
                 max_future_s: float = 1.0, stamp_jump_s: float = 1.0, recovery_count: int = 10) -> None:
        self.export_dir = Path(export_dir)
        try:
            self.spec = spec = contract.load(export_dir)
        except (OSError, contract.ContractError) as exc:
            raise ModelError(str(exc)) from None
        self._load_session(spec)
        act = spec["action"]
        self.action_type: str = act["type"]
        n = self.action_size = int(act["size"])
        self.horizon = contract.chunk_horizon(spec)
        self.execute = int(act.get("chunk", {}).get("execute", 1))
        self.control_rate_hz = float(spec["control_rate_hz"])
        self._stamps = StampGate(sources or {"state": 0.1}, check_stamps=check_stamps, max_future_s=max_future_s,
                                 stamp_jump_s=stamp_jump_s, recovery_count=recovery_count)
        self.sources = self._stamps.sources
        self.notices = self._stamps.notices  # one-line events for the caller's log (stamp restarts); it empties it
        self._source_list = list(self.sources.values())

        # observation buffer, one view per component; measured components start as NaN (= not received)
        self._layout = layout = ObsLayout(spec)
        self.obs, self._views, self._lo, self._hi = layout.obs, layout.views, layout.lo, layout.hi
        self._feed = {self._input_name: self.obs}
        self._history = self._views.get("action_history")
        self._history_init = layout.history_init
        self._previous = self._views.get("previous_action")
        dim = self.obs.shape[1]
        self._ok_lo = np.empty(dim, dtype=bool)
        self._ok_hi = np.empty(dim, dtype=bool)

        # action -> command: command = offset + scale * action (+ measured joint position if delta)
        cm = build_command_map(act, self._views, self.control_rate_hz, command_low=command_low,
                               command_high=command_high, max_command_delta=max_command_delta,
                               command_unit=command_unit, output_order=output_order)
        self._act_lo, self._act_hi = cm.act_lo, cm.act_hi
        self._measured = cm.measured  # the hold reference (joint_position: the observation's view)
        self.measured = cm.measured if cm.ee is not None else None  # ee_delta: the profile writes joints here
        self._ee, self._safe_fixed = cm.ee, cm.safe_fixed
        self._grip_sent: float | None = None  # last gripper width sent (ee_delta with a gripper channel)
        self.command_size = m = cm.size
        self._cmd_lo, self._cmd_hi, self._cmd_limited = cm.cmd_lo, cm.cmd_hi, cm.limited
        self._rate_limited = cm.rate_limited
        self._order, self._map = cm.order, cm

        # preallocated step buffers (float32 throughout: the network's precision)
        f32 = np.float32
        self._chunk = np.zeros((self.horizon, n), dtype=f32)
        self._chunk_flat = self._chunk.reshape(-1)
        self._act = np.zeros(n, f32)
        self._cmd, self._tmp, self._prev, self._out, self._hold, self._raw = (np.zeros(m, f32) for _ in range(6))
        self.guard_trips = self.limited_steps = 0
        self._have_hold = False
        probe = {self._input_name: np.zeros((1, dim), np.float32)}  # subclasses with more inputs call their own
        self._infer = SessionCall(self.session, self._output_names, probe) if len(self.session.get_inputs()) == 1 \
            else None
        self.estopped: str | None = None
        self.steps = self.safe_steps = self.clamped_steps = 0
        self.last_clamped = self.clamping = ""
        self.last_reason: str | None = "not activated"
        self.activate()
        self.verify_test_vector()

    # ------------------------------------------------------------------ loading
    def _load_session(self, spec: dict[str, Any]) -> None:
        self.session, self._input_name, self._output_names = load_one_in_one_out(
            self.export_dir, contract.obs_dim(spec), contract.output_dim(spec))

    def verify_test_vector(self) -> float:
        """Run ``test_vector.example_input`` and compare with ``example_output``; raise :class:`ModelError`."""
        tv = self.spec["test_vector"]
        got = self.forward_batch(np.asarray(tv["example_input"], dtype=np.float32))
        return self.compare_test_vector(tv, got)

    def compare_test_vector(self, tv: Mapping[str, Any], got: np.ndarray, what: str = "test vector") -> float:
        """Max abs error of ``got`` against ``tv["example_output"]`` (inf on a shape mismatch); a one-line
        :class:`ModelError` naming ``what`` when it exceeds ``tv["atol"]`` (default 1e-5)."""
        want = np.asarray(tv["example_output"], dtype=np.float32)
        err = float(np.abs(got - want).max()) if got.shape == want.shape else math.inf
        atol = float(tv.get("atol", 1e-5))
        if not err <= atol:
            raise ModelError(f"{self.export_dir}: {what} mismatch (max abs error {err:.3g} > {atol:g})")
        return err

    def forward_batch(self, obs: np.ndarray) -> np.ndarray:
        """Raw network output for a batch ``[k, obs_dim]`` (no checks, no clipping), via the step's code path."""
        return self._infer({self._input_name: np.ascontiguousarray(obs, dtype=np.float32)})

    # ------------------------------------------------------------------ inputs
    def view(self, name: str) -> np.ndarray:
        """Writable float32 view of one observation component (profiles write measurements here)."""
        if name in RUNTIME_COMPONENTS:
            raise KeyError(f"{name!r} is written by the runtime itself")
        return self._views[name]

    def has(self, name: str) -> bool:
        """Whether the policy observes component ``name``."""
        return name in self._views

    @property
    def components(self) -> list[str]:
        """Observation component names in ``policy.json`` order."""
        return [name for name, _, _ in self._layout.slices]

    def accept(self, source: str, stamp_ns: int, received: float | None = None, clock_ns: int | None = None) -> bool:
        """Register a message of ``source`` stamped ``stamp_ns``; ``False``: drop it (see the module docstring).

        Call before writing the message into the views. ``received`` is a ``time.monotonic()`` reading,
        ``clock_ns`` the receiver's clock in the stamps' time base (ROS time); ``None`` skips the future check.
        """
        return self._stamps.accept(source, stamp_ns, received, clock_ns)

    def reject(self, source: str, reason: str) -> bool:
        """Count a refused message of ``source`` and remember why (shown when the source goes stale); ``False``."""
        return self._stamps.reject(source, reason)

    def invalidate(self, source: str, reason: str) -> None:
        """The last accepted message of ``source`` is unusable (``reason``): safe steps until the next accept."""
        self.sources[source].fault = reason

    # ------------------------------------------------------------------ lifecycle and safety
    def activate(self) -> None:
        """Start a new run: reset history and chunk queue; rate limit from the safe command (the e-stop stays)."""
        self._reset_history()
        self._queue = self.execute  # empty queue: query the network on the next step
        self._anchor = True
        self._ee_anchor = True  # ee_delta: re-anchor the commanded TCP pose at the measured joints

    def _reset_history(self) -> None:
        if self._history is not None:
            self._history[:] = self._history_init
        if self._previous is not None:
            self._previous[:] = 0.0

    def estop(self, reason: str = "emergency stop") -> None:
        """Latch the safe command until :meth:`clear_estop` (activation does not clear it). The first reason stays."""
        if self.estopped is None:
            self.estopped = reason

    def clear_estop(self) -> str | None:
        """Clear the e-stop latch; returns the reason it had (``None``: none was latched)."""
        reason, self.estopped = self.estopped, None
        return reason

    def safe_command(self, reason: str) -> tuple[np.ndarray | None, str]:
        """The safe command (``None`` for an arm that has never measured its joints) and ``reason``."""
        self.safe_steps += 1
        self.last_reason = reason
        self._queue = self.execute  # queued chunk actions are stale after a fault
        self._ee_anchor = True
        self._reset_history()  # the policy resumes as after a training reset (zeros), not after "motors off"
        return self._send_hold(reason)

    def _send_hold(self, reason: str) -> tuple[np.ndarray | None, str]:
        """Send the safe command, an arm's hold reached within the rate limit (``None``: there is none)."""
        if not self._safe_into(self._cmd):
            return None, reason
        if self._measured is not None and self._rate_limited and not self._anchor and np.isfinite(self._prev).all():
            # an arm's hold never jumps either: towards the measured position within the velocity limits
            # (a moving arm lags its last target; a step back to the measurement would be a velocity spike)
            self._map.rate_limit(self._cmd, self._prev, self._tmp)
        np.copyto(self._prev, self._cmd)
        return self._output(), reason

    def _safe_into(self, buf: np.ndarray) -> bool:
        """Write the safe command into ``buf``; ``False`` if there is none (arm without a joint measurement)."""
        if self._safe_fixed is not None:
            np.copyto(buf, self._safe_fixed)
            return True
        self._refresh_hold()
        if self._have_hold:  # hold the measured position, never beyond the command limits
            np.maximum(self._hold, self._cmd_lo, out=buf)
            np.minimum(buf, self._cmd_hi, out=buf)
            if self._grip_sent is not None:  # a gripper keeps its last command (holding an object keeps its grip)
                buf[-1] = self._grip_sent
        return self._have_hold

    def _refresh_hold(self) -> None:
        m = self._measured
        if m is not None and np.isfinite(m).all() and (self._ee is None or self._ee.measured_problem(m) is None):
            np.copyto(self._hold, m)
            self._have_hold = True

    # ------------------------------------------------------------------ the control step
    def step(self, now: float | None = None) -> tuple[np.ndarray | None, str | None]:
        """One control step at time ``now`` (``time.monotonic()``): the command and ``None``, or safe + reason."""
        self.steps += 1
        if self.estopped is not None:
            return self.safe_command(self.estopped)
        if now is None:
            now = time.monotonic()
        for src in self._source_list:
            if src.received is None:
                return self.safe_command(f"no {src.name} input received yet")
            if src.timeout is not None and now - src.received > src.timeout:
                why = f"; last message refused: {src.last_reject}" if src.last_reject else ""
                return self.safe_command(f"stale {src.name} input ({(now - src.received) * 1e3:.0f} ms old > "
                                         f"{src.timeout * 1e3:.0f} ms{why})")
            if src.fault is not None:
                return self.safe_command(src.fault)
        # one pass: NaN fails >=, +-inf fail the finite float32 bounds, declared ranges are the bounds
        obs, ok_lo, ok_hi = self.obs[0], self._ok_lo, self._ok_hi
        np.greater_equal(obs, self._lo, out=ok_lo)
        np.less_equal(obs, self._hi, out=ok_hi)
        if not (ok_lo.all() and ok_hi.all()):
            return self.safe_command(self._layout.problem())
        if self._ee is not None:
            problem = self._ee.measured_problem(self._measured)
            if problem is not None:
                return self.safe_command(problem)
        if self._measured is not None:
            np.copyto(self._hold, self._measured)
            self._have_hold = True
        if self._layout.clipped:
            hit = self.clamping = self._layout.clamp()
            if hit:
                self.clamped_steps += 1
                self.last_clamped = hit
        row = self._next_action(now)
        if row is None:  # a chunked policy's next chunk is late: hold, keep history and queue
            return self._hold_step(self.last_reason or "no action ready")
        act = self._act
        np.maximum(row, self._act_lo, out=act)  # NaN propagates through max/min
        np.minimum(act, self._act_hi, out=act)
        if not math.isfinite(act.dot(act)):
            return self.safe_command("policy output is not finite")
        cmd = self._cmd
        if self._ee is not None and self._ee_anchor:  # the IK's commanded TCP pose starts at the measured joints
            self._ee_anchor = False
            self._ee.reset(self._measured)
        self._map.to_command(act, self._measured, cmd)
        if self._measured is not None:
            np.copyto(self._raw, cmd)
        exact = True  # executed action == policy action (no limit or rate limit changed it)
        if self._cmd_limited:
            np.maximum(cmd, self._cmd_lo, out=cmd)
            np.minimum(cmd, self._cmd_hi, out=cmd)
            exact = False
        if self._rate_limited:
            if self._anchor:  # first command after activation: rate limit from the measured state / motors off
                self._anchor = False
                if not self._safe_into(self._prev):  # no safe command (attitude_thrust): ramp up from zero
                    self._prev.fill(0.0)
            self._map.rate_limit(cmd, self._prev, self._tmp)
            np.copyto(self._prev, cmd)
            exact = False
        if self._measured is not None:  # arms: count limited commands, last check before the actuator
            if not np.array_equal(cmd, self._raw):
                self.limited_steps += 1
                if self._ee is not None:
                    self._ee.sync(cmd)
            problem = self._map.guard(cmd)
            if problem is not None:
                self.guard_trips += 1
                return self.safe_command(problem)
            if self._ee is not None and self._ee.gripper_index is not None:
                self._grip_sent = float(cmd[-1])
        self._push_executed(exact, self._measured)
        self.last_reason = None
        return self._output(), None

    def _next_action(self, now: float) -> np.ndarray | None:
        """The policy action for this step from the chunk queue (querying the network when it is empty)."""
        if self._queue >= self.execute:
            np.copyto(self._chunk_flat, self._infer(self._feed).reshape(-1))
            self._queue = 0
        self._queue += 1
        return self._chunk[self._queue - 1]

    def _hold_step(self, reason: str) -> tuple[np.ndarray | None, str]:
        """The safe command for one step without resetting history or queue (a late chunk, not a fault)."""
        self.safe_steps += 1
        self.last_reason = reason
        return self._send_hold(reason)

    def _push_executed(self, exact: bool, measured: np.ndarray | None) -> None:
        """Feed the executed action into ``action_history`` / ``previous_action`` (action units).

        ``exact``: the policy's action was executed unchanged; otherwise the executed command is mapped back
        to action units with ``measured`` as the reference of delta actions.
        """
        if self._history is None and self._previous is None:
            return
        if exact or self._ee is not None:  # ee_delta: the action itself (the IK has no inverse map)
            executed = self._act
        else:
            executed = self._tmp
            self._map.to_action(self._cmd, measured, executed)
        if self._history is not None:
            h, k = self._history, self.action_size
            h[:-k] = h[k:]
            h[-k:] = executed
        if self._previous is not None:
            self._previous[:] = executed

    def _output(self) -> np.ndarray:
        if self._order is None:
            return self._cmd
        np.take(self._cmd, self._order, out=self._out)
        return self._out

    def stats(self) -> dict[str, Any]:
        """Counters for diagnostics (cheap; not for the control loop)."""
        out: dict[str, Any] = {
            "steps": self.steps, "safe_steps": self.safe_steps, "last_reason": self.last_reason or "",
            "estopped": self.estopped is not None, "clamped_steps": self.clamped_steps,
            "limited_steps": self.limited_steps, "guard_trips": self.guard_trips,
            "clamped_now": self.clamping, "last_clamped": self.last_clamped}
        if self._ee is not None:
            out["ik_unreached_steps"] = self._ee.unreached_steps
        for s in self._source_list:
            out.update({f"{s.name}_received": s.count, f"{s.name}_rejected_stamps": s.rejected,
                        f"{s.name}_future_stamps": s.future, f"{s.name}_stamp_restarts": s.resets,
                        f"{s.name}_last_refused": s.last_reject})
        return out
