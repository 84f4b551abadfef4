"""Patient Mountain Cars: gymnasium's classic-control Mountain Cars with a 10,000-step time limit.

Use them as levels ``'patient_envs:PatientMountainCar'`` and ``'patient_envs:PatientContinuousMountainCar'``
(the SageMaker Mountain Car notebook's environments). The default 200/999-step limits make the goal
nearly unreachable by random exploration; 10,000 steps let an agent find it.
"""
from __future__ import annotations

from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv
from gymnasium.wrappers import TimeLimit

MAX_EPISODE_STEPS = 10000


def PatientMountainCar(render_mode: str | None = None) -> TimeLimit:
    """Discrete Mountain Car (reward -1 per step until the goal), truncated after 10,000 steps."""
    return TimeLimit(MountainCarEnv(render_mode=render_mode), max_episode_steps=MAX_EPISODE_STEPS)


def PatientContinuousMountainCar(render_mode: str | None = None) -> TimeLimit:
    """Continuous Mountain Car (+100 at the goal minus 0.1 * action^2 per step), truncated after 10,000 steps."""
    return TimeLimit(Continuous_MountainCarEnv(render_mode=render_mode), max_episode_steps=MAX_EPISODE_STEPS)
