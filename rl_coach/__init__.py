"""Coach's ``rl_coach`` package, answered by rlframe.

Installing rlframe makes ``import rl_coach...`` work in any script: Coach presets, SageMaker RL launchers
(``train-coach.py``, ``evaluate-coach.py``) and users' own copies of ``sagemaker_rl``. ``rl_coach.logger``,
``rl_coach.coach`` (``CoachLauncher``) and ``rl_coach.utils`` are modules of this package; every other Coach
module is made from rlframe's classes by :mod:`rlframe.coach_compat`. Importing this package also lets old
``import gym`` environment modules import (answered by gymnasium when no real gym is installed).
"""
from rlframe import coach_compat
from rlframe.environments.gym_compat import install_gym_fallback

coach_compat.install()
install_gym_fallback()

# Users' launchers write ``import rl_coach`` and then set ``rl_coach.logger.experiment_path``.
from rl_coach import logger  # noqa: E402,F401
