"""The quadrotor-hover task on the MuJoCo and PyBullet backends: the env contract, the task's definitions, and
agreement of one control step with our RK4 simulator."""

import importlib
import os

import pytest
import torch

from sim.quadrotor import DomainRandomization, QuadrotorTaskConfig
from sim.quadrotor.engines import make_engine_env
from sim.registry import get_task
from tests.sim.helpers import hold_at_target

ENGINES = ("mujoco", "pybullet")


def require(module: str) -> None:
    """Skip when ``module`` is missing, except under CI=true, where a missing engine fails the run."""
    if os.environ.get("CI") == "true":
        importlib.import_module(module)
    else:
        pytest.importorskip(module)


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    require(request.param)
    return request.param


def make(engine: str, n: int = 4, seed: int = 0, **kw):
    return get_task("quadrotor-hover").make_env(QuadrotorTaskConfig(num_envs=n, **kw), seed=seed, impl=engine)


def hover(env) -> torch.Tensor:
    return torch.full((env.num_envs, 4), env.hover_action)


def test_registered_backends():
    assert get_task("quadrotor-hover").backends == ("torch", "fused", "mujoco", "pybullet")


def test_same_task_definitions_as_torch(engine):
    """Initial states, disturbances, observation noise, groups and export contract are the torch env's."""
    env, ref = make(engine, 16, seed=5), make("torch", 16, seed=5)
    assert env.obs_dims == ref.obs_dims == {"policy": 146, "critic": 28 + 128}  # + the actor's action history
    for k in ("state", "force", "torque"):
        torch.testing.assert_close(getattr(env, k), getattr(ref, k), rtol=0, atol=0)
    o, r = env.reset(seed=9), ref.reset(seed=9)
    for g in ("policy", "critic"):
        torch.testing.assert_close(o[g], r[g], rtol=0, atol=0)
    assert env.export_spec() == ref.export_spec()
    assert not env.differentiable


def test_step_shapes_and_same_step_autoreset(engine):
    env = make(engine, 4, noise=False)
    env.reset(seed=1)
    state = env.state.clone()
    state[1, :3] = torch.tensor([0.0, 0.0, -0.595])  # falling out of the box within one step
    state[1, 7:10] = torch.tensor([0.0, 0.0, -2.0])
    env.set_state(state)
    obs, rew, term, trunc, info = env.step(hover(env))
    assert obs["policy"].shape == (4, 146) and obs["critic"].shape == (4, 28 + 128) and rew.shape == (4,)
    assert term.tolist() == [False, True, False, False] and not trunc.any()
    assert info["done_mask"].tolist() == [False, True, False, False]
    assert info["reward_terms"].shape == (4, 5)
    final = info["final_obs"]["critic"]
    assert final[1, 2] < -0.6 and obs["critic"][1, :3].abs().max() <= 0.2  # final obs before, obs after reset
    keep = torch.tensor([0, 2, 3])
    torch.testing.assert_close(final[keep], obs["critic"][keep], rtol=0, atol=0)
    torch.testing.assert_close(obs["critic"][1, :3], env.state[1, :3])
    assert obs["policy"][1, 18:].abs().max() == 0  # history cleared for the new episode


def test_truncation_at_episode_length(engine):
    env = make(engine, 2, episode_length=3, init_guidance=1.0, disturbance_force_std_g=0.0,
               disturbance_torque_std=0.0)
    for _ in range(3):
        _, _, term, trunc, info = env.step(hover(env))
    assert trunc.all() and not term.any() and info["time_outs"].all()


def test_seeding_is_deterministic(engine):
    a = torch.rand(20, 3, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    runs = []
    for seed in (7, 7, 8):
        env = make(engine, 3, seed=seed)
        env.reset(seed=seed)
        out = [torch.cat([env.step(x)[0]["policy"] for x in a])]
        runs.append(torch.cat(out))
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_hover_action_holds_for_one_second(engine):
    env = make(engine, 2, noise=False)
    hold_at_target(env)
    env.set_state(env.state)
    for _ in range(100):
        _, _, term, _, _ = env.step(hover(env))
    assert not term.any()
    assert env.state[:, :3].abs().max() < 0.005 and env.state[:, 7:13].abs().max() < 0.01
    assert (1 - env.state[:, 3] ** 2).max() < 1e-5


def test_crash_terminates_and_motors_off_falls_out(engine):
    env = make(engine, 2, noise=False)
    hold_at_target(env)
    env.set_state(env.state)
    off = torch.full((2, 4), -1.0)
    steps = 0
    while True:
        steps += 1
        _, _, term, _, info = env.step(off)
        if term.any():
            break
        assert steps < 60
    assert term.all() and 30 <= steps <= 45  # free fall of 0.6 m takes 0.35 s (motors spin down in ~0.15 s)
    assert (info["final_obs"]["critic"][:, 2] < -0.6).all()


def test_ground_contact_stops_the_fall(engine):
    """With the ground inside the box, a drone with its motors off comes to rest on it."""
    env = make_engine_env(QuadrotorTaskConfig(num_envs=1, noise=False, position_limit=2.0), impl=engine,
                          target_height=0.3)
    hold_at_target(env)
    env.set_state(env.state)
    for _ in range(100):
        _, _, term, _, _ = env.step(torch.full((1, 4), -1.0))
    assert not term.any()
    assert abs(env.state[0, 2].item() - (-0.3 + 0.012)) < 0.004  # resting on the collision box's bottom face
    assert env.state[0, 7:10].abs().max() < 0.05


@pytest.mark.parametrize("impl", ("torch", "fused") + ENGINES)
def test_nan_action_is_one_clear_error(impl):
    if impl in ENGINES:
        require(impl)
    env = make(impl, 3)
    before = env.state.clone()
    a = hover(env)
    a[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"^action is not finite \(NaN or inf\) in env\(s\) \[2\];"):
        env.step(a)
    assert torch.equal(env.state, before)  # nothing reached the motors


# one control step from identical states and actions vs our RK4 (5 physics substeps of 2 ms): the motor model is
# exact, so what differs is the engines' semi-implicit Euler (first order in the 2 ms substep); measured
# maxima: 1.0e-4 m, 2.8e-4 (quaternion), 6.5e-5 m/s, 1.7e-4 rad/s, 1e-3 RPM (float32 rounding)
TOLERANCE = {"position": (slice(0, 3), 3e-4), "quaternion": (slice(3, 7), 8e-4), "velocity": (slice(7, 10), 2e-4),
             "angular_velocity": (slice(10, 13), 5e-4), "rpm": (slice(13, 17), 0.01)}


@pytest.mark.parametrize("randomized", (False, True))
def test_one_step_agrees_with_our_simulator(engine, randomized):
    dr = DomainRandomization(mass=(0.8, 1.2), inertia=(0.8, 1.2), thrust_coefficient=(0.8, 1.2),
                             motor_time_constant=(0.8, 1.2)) if randomized else DomainRandomization()
    cfg = QuadrotorTaskConfig(num_envs=32, randomization=dr)
    ref = get_task("quadrotor-hover").make_env(cfg, seed=3, impl="torch")
    env = get_task("quadrotor-hover").make_env(cfg, seed=3, impl=engine)
    env.set_state(ref.state)
    torch.testing.assert_close(env.factors, ref.factors, rtol=0, atol=0)
    a = torch.rand(32, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1
    before = ref.state.clone()
    ref.step(a)
    env.step(a)
    assert (ref.state - before)[:, 13:].abs().max() > 100  # the step really moves the motors
    for name, (sl, tol) in TOLERANCE.items():
        err = (env.state[:, sl] - ref.state[:, sl]).abs().max().item()
        assert err < tol, f"{name}: {err:.2e} >= {tol:.0e}"


def test_reset_of_one_env_leaves_the_others_alone(engine):
    """Resetting one drone (new parameters under domain randomisation) does not move its world's neighbours."""
    cfg = QuadrotorTaskConfig(num_envs=3, noise=False, randomization=DomainRandomization(mass=(0.8, 1.2)))
    env = get_task("quadrotor-hover").make_env(cfg, seed=2, impl=engine)
    twin = get_task("quadrotor-hover").make_env(cfg, seed=2, impl=engine)
    twin.set_state(env.state)
    state = env.state.clone()
    state[0, 2] = -0.599
    state[0, 9] = -3.0
    env.set_state(state)
    _, _, term, _, _ = env.step(hover(env))
    assert term.tolist() == [True, False, False]
    _, _, term, _, _ = twin.step(hover(twin))
    assert not term.any()
    torch.testing.assert_close(env.state[1:], twin.state[1:], rtol=0, atol=0)
    env.step(hover(env))
    twin.step(hover(twin))
    torch.testing.assert_close(env.state[1:], twin.state[1:], rtol=0, atol=0)


def test_gyroscopic_coupling_matches(engine):
    """A drone spinning about x and z (Jz != Jx) gains pitch rate from omega x J omega as in our simulator."""
    cfg = QuadrotorTaskConfig(num_envs=1, noise=False)
    state = torch.zeros(1, 17)
    state[0, 3], state[0, 10], state[0, 12] = 1.0, 10.0, 10.0
    off = torch.full((1, 4), -1.0)
    out = []
    for impl in ("torch", engine):
        env = get_task("quadrotor-hover").make_env(cfg, impl=impl)
        env.force.zero_()
        env.torque.zero_()
        env.set_state(state) if impl == engine else setattr(env, "state", state.clone())
        env.step(off)
        out.append(env.state[0, 10:13])
    assert abs(out[0][1].item() - 0.55) < 0.01  # 100 (Jx - Jz) / Jy * 0.01 s
    torch.testing.assert_close(out[1], out[0], rtol=0, atol=5e-3)
