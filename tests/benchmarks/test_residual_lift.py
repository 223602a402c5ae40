"""benchmarks/residual_lift.py: the robustness rows the issue asks for, each on a fresh policy, and env steps to a
target success read off a training curve."""

import torch

from benchmarks.residual_lift import robustness, steps_to


def test_steps_to_is_the_first_evaluation_at_the_target():
    curve = [(10_000, 0.5), (20_000, 0.79), (30_000, 0.8), (40_000, 0.7)]
    assert steps_to(curve, 0.8) == 30_000
    assert steps_to(curve, 0.5) == 10_000
    assert steps_to(curve, 0.81) is None


def test_robustness_rows_are_nominal_mass_friction_and_latency_each_on_a_fresh_policy():
    made = []

    def make_policy():
        def still(obs):  # holds the arm where it is: never lifts the cube
            return torch.zeros(len(obs), 5)
        made.append(still)
        return still

    rows = robustness("panda-pick-cube", make_policy, episodes=2)
    assert list(rows) == ["nominal", "object_mass ×0.8", "object_mass ×1.2", "object_friction ×0.8",
                          "object_friction ×1.2", "action_latency +10 ms"]
    assert rows == dict.fromkeys(rows, 0.0)
    assert len(made) == 6 and len({id(p) for p in made}) == 6
