"""The Panda tasks' names for the task registry, declared without importing MuJoCo or the envs.

:data:`sim.registry.TASK_PACKAGES` imports this module on the first registry lookup; the first
:func:`sim.registry.get_task` of a Panda task imports :mod:`sim.arm.tasks`, which registers them all. So a
quadrotor-only command never imports ``mujoco``, and a machine without the ``arm`` extra gets a one-line error
naming it.
"""

from sim.registry import declare_task

ARM_TASK_NAMES = ("panda-reach-bimodal", "panda-reach", "panda-pick-cube", "panda-peg-insert")

for _name in ARM_TASK_NAMES:
    declare_task(_name, "sim.arm.tasks", requires="the arm extra: pip install 'robot-rl[arm]'")
