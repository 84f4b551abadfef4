"""Packaging; metadata and dependencies are in setup.cfg.

The top-level ``presets/`` and ``environments/`` folders are shipped as ``rlframe.shipped.presets`` and
``rlframe.shipped.environments`` so a plain (non-editable) install finds them too. The top-level ``rl_coach`` and
``sagemaker_rl`` packages answer Coach's and SageMaker RL's import names in users' scripts.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["rlframe", "rlframe.*", "rl_coach", "sagemaker_rl"])
    + ["rlframe.shipped.presets", "rlframe.shipped.environments"],
    package_dir={"rlframe.shipped.presets": "presets", "rlframe.shipped.environments": "environments"},
)
