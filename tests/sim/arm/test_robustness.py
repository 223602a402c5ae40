"""The Panda tasks' robustness sweep (object mass/friction, servo gains, +10 ms latency) in MuJoCo and PyBullet."""

from dataclasses import replace

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")

from sim.arm.config import ArmDomainRandomization  # noqa: E402
from sim.arm.robustness import ArmEvalConfig, arm_sweep, sweep_cases  # noqa: E402
from sim.registry import EVAL_SEED, get_task  # noqa: E402
from tests.sim.test_engine_backends import require  # noqa: E402

BACKENDS = ("mujoco", "pybullet")


def _backend(impl: str) -> str:
    require(impl)
    return impl


def _read_back(env) -> dict[str, np.ndarray]:
    """Cube mass and sliding friction and the arm servos' gain factor, per env, as the engine holds them."""
    p, n = env.physics, env.num_envs
    if p.name == "mujoco":
        cube, geom = env.model.body("cube").id, env.model.geom("cube").id
        kp0 = env.model.actuator_gainprm[0, 0]
        return {"mass": np.array([m.body_mass[cube] for m in p.worlds.models]),
                "friction": np.array([m.geom_friction[geom, 0] for m in p.worlds.models]),
                "gain": np.array([m.actuator_gainprm[0, 0] / kp0 for m in p.worlds.models])}
    import pybullet as pb

    info = [pb.getDynamicsInfo(int(p.objects["cube"][i]), -1, physicsClientId=p.clients[p.client_of[i]])
            for i in range(n)]
    return {"mass": np.array([d[0] for d in info]), "friction": np.array([d[1] for d in info]),
            "gain": p.gain.copy()}


@pytest.mark.parametrize("impl", BACKENDS)
def test_every_sweep_row_changes_its_parameter_in_the_engine(impl):
    spec = get_task("panda-pick-cube")
    cfg = spec.config_cls(num_envs=3)
    cases = sweep_cases(cfg, ArmEvalConfig())
    assert [(c["parameter"], c["setting"]) for c, _ in cases] == [
        ("nominal", "as configured"), ("object_mass", "×0.8"), ("object_mass", "×1.2"), ("object_friction", "×0.8"),
        ("object_friction", "×1.2"), ("servo_gains", "×0.8"), ("servo_gains", "×1.2"), ("action_latency", "+10 ms")]
    envs = [spec.make_env(case_cfg, seed=EVAL_SEED, impl=_backend(impl)) for _, case_cfg in cases]
    got = [_read_back(e) for e in envs]
    nominal = got[0]
    assert 0.1 * 0.7 <= nominal["mass"].min() and nominal["mass"].max() <= 0.1 * 1.3  # 0.1 kg cube, DR 0.7-1.3
    for (case, _), values, env in zip(cases[1:], got[1:], envs[1:], strict=True):
        key = {"object_mass": "mass", "object_friction": "friction", "servo_gains": "gain"}.get(case["parameter"])
        for k in ("mass", "friction", "gain"):  # the same episodes: only the swept parameter moves, by its factor
            want = nominal[k] * (1 + case["error"]) if k == key else nominal[k]
            np.testing.assert_allclose(values[k], want, rtol=1e-9, err_msg=f"{case} {k}")
        if case["parameter"] == "action_latency":
            assert env.latency_substeps == 5 and env.extra_delay == 0  # 10 ms = 5 of the 10 physics steps at 50 Hz
            np.testing.assert_allclose(env.params[:, 3], envs[0].params[:, 3] + 0.5)
    for e in envs:
        e.close()


@pytest.mark.parametrize("impl", BACKENDS)
def test_extra_latency_delays_the_servo_targets_by_physics_steps(impl):
    """From rest, a constant +z action moves the TCP less in the first control step with 10 ms latency, and a
    20 ms latency is exactly one control step of delay (the first step then holds still)."""
    spec = get_task("panda-reach")
    base = spec.config_cls(num_envs=2, dr=ArmDomainRandomization((1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (0, 0)))
    rise = {}
    for extra in (0.0, 0.01, 0.02):
        env = spec.make_env(replace(base, dr=replace(base.dr, extra_latency=extra)), seed=3, impl=_backend(impl))
        z0 = env.privileged_state()["tcp"][:, 2].copy()
        env.step(torch.tensor([[0.0, 0.0, 1.0]] * 2))
        rise[extra] = env.privileged_state()["tcp"][:, 2] - z0
        env.close()
    assert (rise[0.0] > 1e-3).all() and (rise[0.0] > 1.5 * rise[0.01]).all() and (rise[0.01] > 1e-5).all()
    assert np.abs(rise[0.02]).max() < 1e-5
    with pytest.raises(ValueError, match="multiple of physics_dt"):
        spec.make_env(replace(base, dr=replace(base.dr, extra_latency=0.003)), impl="mujoco")


def _reach_policy(obs: torch.Tensor) -> torch.Tensor:
    """A P controller on panda-reach's policy group (ee_position at 14:17, goal_position at 17:20)."""
    return ((obs[:, 17:20] - obs[:, 14:17]) / 0.02).clamp(-1, 1)


@pytest.mark.parametrize("impl", BACKENDS)
def test_sweep_rows_are_deterministic_per_seed_and_feel_the_change(impl):
    spec = get_task("panda-reach")
    cfg = spec.config_cls(episode_seconds=1.0)
    ecfg = ArmEvalConfig(sweep_episodes=4)
    rows = arm_sweep(spec, _reach_policy, cfg, ecfg, EVAL_SEED, impl=_backend(impl))
    assert [(r["parameter"], r["setting"]) for r in rows] == [  # no object: gains and latency only
        ("nominal", "as configured"), ("servo_gains", "×0.8"), ("servo_gains", "×1.2"), ("action_latency", "+10 ms")]
    assert all(r["episodes"] == 4 and 0 <= r["success"] <= 1 for r in rows)
    assert rows[0]["success"] == 1.0  # the P controller reaches within 1 s
    assert arm_sweep(spec, _reach_policy, cfg, ecfg, EVAL_SEED, impl=impl) == rows
    lengths = [r["mean_episode_length"] for r in rows]
    assert len(set(lengths)) > 1  # the perturbations change the episodes
    other = arm_sweep(spec, _reach_policy, cfg, ecfg, EVAL_SEED + 1, impl=impl)
    assert [r["mean_episode_length"] for r in other] != lengths


def test_sweep_options_are_checked():
    cfg = get_task("panda-peg-insert").config_cls()
    names = [c["parameter"] for c, _ in sweep_cases(cfg, ArmEvalConfig(sweep_latency=0.0))]
    assert names == ["nominal", "object_friction", "object_friction", "servo_gains", "servo_gains"]  # held peg: no mass
    with pytest.raises(ValueError, match="sweep_episodes"):
        sweep_cases(cfg, ArmEvalConfig(sweep_episodes=0))
    with pytest.raises(ValueError, match="sweep_scales"):
        sweep_cases(cfg, ArmEvalConfig(sweep_scales=(0.0,)))
