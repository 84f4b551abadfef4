"""Packaging; metadata and dependencies are in setup.cfg.

The top-level ``presets/`` and ``environments/`` folders are shipped as ``rlframe.shipped.presets`` and
``rlframe.shipped.environments`` so a plain (non-editable) install finds them too.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["rlframe", "rlframe.*"]) + ["rlframe.shipped.presets", "rlframe.shipped.environments"],
    package_dir={"rlframe.shipped.presets": "presets", "rlframe.shipped.environments": "environments"},
)
