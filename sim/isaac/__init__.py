"""Isaac Lab backend: any Isaac Lab ``ManagerBasedRLEnv`` / ``DirectRLEnv`` as a :class:`sim.core.BatchedEnv`.

``robot-rl train isaac:<gym id>`` trains our trainers on Isaac Lab tasks. Importing this package does not import
Isaac Lab (:mod:`sim.isaac.catalog` only declares the ``isaac:`` names); :mod:`sim.isaac.adapter` and
:mod:`sim.isaac.tasks` do, and need the Python 3.12 venv that ``sim/isaac/make_venv.sh`` builds.
"""
