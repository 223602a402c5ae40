"""benchmarks/time_to_hover.py's config overrides (after ``--``) are ``robot-rl train``'s."""

import pytest

from benchmarks.time_to_hover import preset_with_overrides
from robot_rl.config import get_preset


def test_no_overrides_is_the_preset():
    assert preset_with_overrides("crazyflie-hover-sac-precise", []) == get_preset("crazyflie-hover-sac-precise")


def test_overrides_change_only_what_they_name():
    cfg = preset_with_overrides("crazyflie-hover-sac-precise", ["--sac.gamma", "0.98", "--sac.critic-hidden", "64",
                                                                 "64", "--task.num-envs", "16"])
    ref = get_preset("crazyflie-hover-sac-precise")
    assert (cfg.sac.gamma, cfg.sac.critic_hidden, cfg.task.num_envs) == (0.98, (64, 64), 16)
    cfg.sac.gamma, cfg.sac.critic_hidden, cfg.task.num_envs = ref.sac.gamma, ref.sac.critic_hidden, ref.task.num_envs
    assert cfg == ref


def test_an_unknown_override_is_refused():
    with pytest.raises(SystemExit):
        preset_with_overrides("crazyflie-hover-sac-precise", ["--sac.no-such-field", "1"])
