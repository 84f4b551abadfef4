"""The success threshold behind the CSV's ``Success Rate`` is the same whichever way an environment is named: by its
gymnasium id, by a ``module:callable`` factory of the same class (the shipped Patient Mountain Cars), or in a
shipped preset; where no threshold exists anywhere it is None and the column stays empty."""
from __future__ import annotations

from pathlib import Path

import gymnasium
import pytest

from rlframe.environments.gym_environment import (
    GymVectorEnvironment,
    make_env_factory,
    registered_reward_threshold,
    reward_threshold,
)
from rlframe.presets import available_presets, load_preset
from rlframe.shipped import shipped_dir

pytestmark = pytest.mark.unit


def _threshold(level: str, custom: float | None = None) -> float | None:
    params = GymVectorEnvironment(level)
    params.custom_reward_threshold = custom
    env = make_env_factory(params, [shipped_dir("environments")], render=False)()
    try:
        return reward_threshold(params, env)
    finally:
        env.close()


@pytest.mark.parametrize(("factory", "gym_id", "expected"), [
    ("patient_envs:PatientMountainCar", "MountainCar-v0", -110.0),
    ("patient_envs:PatientContinuousMountainCar", "MountainCarContinuous-v0", 90.0),
    ("gymnasium.envs.classic_control.mountain_car:MountainCarEnv", "MountainCar-v0", -110.0),
    ("gymnasium.envs.classic_control.pendulum:PendulumEnv", "Pendulum-v1", None),  # none anywhere: empty column
])
def test_a_factory_of_a_registered_class_gets_the_same_threshold_as_its_gymnasium_id(factory, gym_id, expected):
    assert _threshold(factory) == _threshold(gym_id) == expected


def test_a_class_registered_with_different_thresholds_gives_none_unless_the_preset_sets_one():
    # CartPole-v0 and CartPole-v1 are both CartPoleEnv (195 and 475): a factory of the class could be either.
    assert (_threshold("CartPole-v0"), _threshold("CartPole-v1")) == (195.0, 475.0)
    assert _threshold("gymnasium.envs.classic_control.cartpole:CartPoleEnv") is None
    assert _threshold("gymnasium.envs.classic_control.cartpole:CartPoleEnv", custom=150) == 150.0
    assert _threshold("patient_envs:PatientMountainCar", custom=-200) == -200.0  # the preset's wins


class _Unregistered(gymnasium.Env):
    observation_space = gymnasium.spaces.Box(-1.0, 1.0, (1,))
    action_space = gymnasium.spaces.Discrete(2)


class _WithThreshold(_Unregistered):
    reward_threshold = 7.5


class _WithSpec(_Unregistered):
    def __init__(self) -> None:
        self.spec = gymnasium.envs.registration.EnvSpec("WithSpec-v0", reward_threshold=3.0)


def test_a_threshold_the_environment_carries_is_found_under_wrappers():
    params = GymVectorEnvironment("unused:level")
    limited = gymnasium.wrappers.TimeLimit
    assert reward_threshold(params, limited(_WithThreshold(), 10)) == 7.5
    assert reward_threshold(params, limited(_WithSpec(), 10)) == 3.0
    assert reward_threshold(params, limited(_Unregistered(), 10)) is None
    assert registered_reward_threshold(_Unregistered) is None


def test_every_shipped_preset_with_an_environment_has_a_success_threshold():
    # The two Mountain Car presets that set no custom_reward_threshold get it from the registry; the others
    # name registered ids or set one.
    checked = []
    for name in available_presets():
        graph_manager = load_preset(name)
        params = graph_manager.env_params
        if params is None or graph_manager.origin.directory != Path(shipped_dir("presets")):
            continue
        search_dirs = [graph_manager.origin.directory, shipped_dir("environments")]
        env = make_env_factory(params, search_dirs, render=False)()
        try:
            assert reward_threshold(params, env) is not None, name
        finally:
            env.close()
        checked.append(params.level)
    assert {"patient_envs:PatientMountainCar", "patient_envs:PatientContinuousMountainCar"} <= set(checked)
