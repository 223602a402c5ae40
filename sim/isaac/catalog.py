"""The ``isaac:`` task family for the task registry, declared without importing Isaac Lab.

:data:`sim.registry.TASK_PACKAGES` imports this module on the first registry lookup. ``isaac:<gym id>`` (e.g.
``isaac:Isaac-Cartpole-v0``) names any Isaac Lab task registered with gymnasium; the first
:func:`sim.registry.get_task` of such a name imports :mod:`sim.isaac.tasks` (and with it ``isaaclab``), which
registers it. Isaac Lab needs Python 3.12 and its own venv (``bash sim/isaac/make_venv.sh``), so a machine
without it gets a one-line error naming that script.
"""

from sim.registry import declare_task_family

ISAAC_PREFIX = "isaac:"

declare_task_family(ISAAC_PREFIX, "sim.isaac.tasks", "register_isaac_task",
                    requires="Isaac Lab (Python 3.12): bash sim/isaac/make_venv.sh, then run .venv-isaac/bin/robot-rl")
