"""rlframe: Coach-style, preset-driven reinforcement learning on MXNet Gluon and gymnasium.

Reading order, following the data: ``environments`` (gymnasium copies acting together) -> ``filters``
(input and pre-network) -> ``agents`` act (``exploration``) -> ``memories`` -> ``agents`` train ->
``networks``; ``graph_managers`` run the schedule and ``outputs`` record it (CSV, GIFs, checkpoints).
Presets build the parameter tree (``parameters``, ``schedules``, ``core_types``).
"""
__version__ = "0.1.0"
