"""SageMaker RL's ``sagemaker_rl`` package for Coach launchers, answered by rlframe.

``from sagemaker_rl.coach_launcher import SageMakerCoachPresetLauncher`` gives rlframe's launcher
(:mod:`rlframe.integrations.sagemaker.launcher`). A project that ships its own copy of ``sagemaker_rl`` beside
its entry script shadows this package; its ``rl_coach`` imports are then answered by rlframe's ``rl_coach``.
Importing this package also lets old ``import gym`` environment modules import.
"""
from rlframe.environments.gym_compat import install_gym_fallback

install_gym_fallback()
