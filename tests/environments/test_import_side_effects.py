"""Importing rlframe changes nothing in the process: SDL's settings are made when environments are, and the
v0 warning is silenced only while rlframe builds a level."""
import subprocess
import sys
import warnings

import gymnasium as gym
import pytest

from rlframe.environments.gym_environment import GymVectorEnvironment, make_env_factory

pytestmark = pytest.mark.integration


def test_importing_the_environments_module_sets_no_variable_and_no_warning_filter():
    probe = ("import os, warnings; import rlframe.environments.gym_environment; "
             "print(os.environ.get('SDL_NO_SIGNAL_HANDLERS'), "
             "any('out of date' in str(f[1] and f[1].pattern) for f in warnings.filters))")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("SDL_")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["None", "False"]


def test_a_v0_level_builds_without_a_warning_and_the_filter_does_not_leak():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = make_env_factory(GymVectorEnvironment(level="CartPole-v0"), [], False)()
        env.reset(seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym.make("CartPole-v0")
    assert any("out of date" in str(w.message) for w in caught)
    import os
    assert os.environ["SDL_NO_SIGNAL_HANDLERS"] == "1"  # set once rlframe made an environment
