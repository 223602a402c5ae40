"""PolicyRunner safety semantics: training box vs. plausibility, stamp bounds and recovery, history after safe
ticks, the e-stop latch, and clear errors for exports the runtime cannot check."""

import json
import shutil

import numpy as np
import pytest

from deploy.export.examples import export_hover_example
from deploy.runtime import ModelError, PolicyRunner

from .test_runtime import STATE, fill

HOUR_NS = 3600 * 10**9


@pytest.fixture(scope="module")
def hover_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hover_safety")
    export_hover_example(d, hidden=(32, 32))
    return d


def edited(src, dst, edit):
    shutil.copytree(src, dst)
    doc = json.loads((dst / "policy.json").read_text())
    edit(doc)
    (dst / "policy.json").write_text(json.dumps(doc))
    return dst


def test_export_declares_training_box_and_plausibility_ranges(hover_dir):
    comps = {c["name"]: c for c in json.loads((hover_dir / "policy.json").read_text())["observation"]}
    assert (comps["position"]["low"], comps["position"]["high"]) == (-0.6, 0.6)  # the training box
    assert comps["position"]["valid_high"] >= 10 and comps["linear_velocity"]["valid_high"] == 20.0
    assert comps["angular_velocity"]["valid_high"] == 40.0 and comps["rotation_matrix"]["valid_high"] > 1.0


def test_outside_the_training_box_is_clamped_and_keeps_flying(hover_dir):
    r = PolicyRunner(hover_dir, sources={"odom": 0.1}, command_unit="normalized")
    fill(r, state={**STATE, "position": [0.9, -2.0, 0.1]})  # a target step larger than the box
    clamped = r.obs.copy()
    clamped[0, 0:3] = [0.6, -0.6, 0.1]
    want = np.clip(r.forward_batch(clamped)[0], -1, 1)
    cmd, reason = r.step(0.0)
    assert reason is None and r.clamped_steps == 1 and r.stats()["clamped_now"] == "position"
    np.testing.assert_allclose(cmd, want, atol=1e-6)
    r.view("position")[:] = [0.1, 0.0, 0.0]
    assert r.step(0.0)[1] is None and r.stats()["clamped_now"] == "" and r.stats()["last_clamped"] == "position"


def test_export_without_plausibility_ranges_is_refused(hover_dir, tmp_path):
    def strip(doc):
        for c in doc["observation"]:
            c.pop("valid_low", None)
            c.pop("valid_high", None)
    with pytest.raises(ModelError, match="observation 'linear_velocity' declares no plausibility range"):
        PolicyRunner(edited(hover_dir, tmp_path / "old", strip))

    def inverted(doc):
        doc["observation"][0]["valid_high"] = 0.5  # training box wider than the plausible range
    with pytest.raises(ModelError, match="must lie inside its plausibility range"):
        PolicyRunner(edited(hover_dir, tmp_path / "bad", inverted))


def test_motor_export_without_rpm_max_is_a_clear_error(hover_dir, tmp_path):
    with pytest.raises(ModelError, match="a motor_rpm action needs 'action.rpm_max'"):
        PolicyRunner(edited(hover_dir, tmp_path / "norpm", lambda d: d["action"].pop("rpm_max")))


def test_future_stamp_is_refused_and_does_not_block_later_messages(hover_dir):
    r = PolicyRunner(hover_dir, sources={"odom": 0.1})
    now = 5000 * 10**9
    fill(r, stamp=now - 10**6)
    assert not r.accept("odom", now + HOUR_NS, 0.0, clock_ns=now)  # a clock step / restarted driver
    assert r.sources["odom"].future == 1 and "ahead of the node clock" in r.sources["odom"].last_reject
    assert r.accept("odom", now, 0.0, clock_ns=now)  # the next good message is taken
    assert r.step(0.0)[1] is None
    for k in range(20):  # stamps always ahead: refused, and the stale reason says why
        assert not r.accept("odom", now + HOUR_NS + k, 0.0, clock_ns=now)
    reason = r.step(0.5)[1]
    assert reason.startswith("stale odom input") and "ahead of the node clock" in reason
    assert r.stats()["odom_future_stamps"] == 21


def test_stamp_jump_back_or_repeated_rejections_restart_the_sequence(hover_dir):
    r = PolicyRunner(hover_dir, sources={"odom": 0.1}, recovery_count=3, stamp_jump_s=1.0)
    fill(r, stamp=HOUR_NS)  # accepted without a clock: the future check needs one
    assert r.accept("odom", 10**9, 0.0)  # an hour back: the publisher restarted, not an old message
    assert r.sources["odom"].resets == 1 and "jumped back" in r.notices[-1]
    assert [r.accept("odom", 10**9 - k, 0.0) for k in (1, 2, 3, 4)] == [False, False, False, True]
    assert r.sources["odom"].resets == 2 and "3 consecutive" in r.notices[-1]
    assert r.stats()["odom_stamp_restarts"] == 2
    assert not r.accept("odom", 0, 0.0) and "unstamped" in r.sources["odom"].last_reject


def test_history_after_safe_ticks_is_what_training_saw_after_reset(hover_dir):
    r = PolicyRunner(hover_dir, sources={"odom": 0.1})
    fresh = PolicyRunner(hover_dir, sources={"odom": 0.1})
    fill(r)
    for _ in range(5):
        assert r.step(0.0)[1] is None
    assert np.any(r.obs[0, -128:] != 0)
    assert r.step(1.0)[1].startswith("stale")  # safe ticks: motors off
    fill(r, stamp=2, now=1.0)
    assert np.all(r.obs[0, -128:] == 0)  # zeros, as after a training reset (not -1, the motors-off action)
    fill(fresh)
    np.testing.assert_array_equal(r.step(1.0)[0], fresh.step(0.0)[0])


def test_estop_survives_activation_until_cleared(hover_dir):
    r = PolicyRunner(hover_dir, sources={"odom": 0.1})
    fill(r)
    r.estop("emergency stop")  # pressed while inactive
    r.estop("geofence")  # the first reason stays
    r.activate()
    assert r.step(0.0)[1] == "emergency stop"
    r.activate()
    assert r.step(0.0)[1] == "emergency stop" and r.clear_estop() == "emergency stop"
    assert r.step(0.0)[1] is None and r.clear_estop() is None


def test_invalidated_message_names_its_fault_until_the_next_accept(hover_dir):
    r = PolicyRunner(hover_dir, sources={"odom": 0.1})
    fill(r)
    r.invalidate("odom", "non-unit orientation quaternion (norm 1.3)")
    assert r.step(0.0)[1] == "non-unit orientation quaternion (norm 1.3)"
    fill(r, stamp=2)
    assert r.step(0.0)[1] is None
