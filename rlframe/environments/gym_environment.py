"""Gymnasium environments: the preset-facing parameters, level resolution, and a pool of N copies.

A level is either a gymnasium id (``'CartPole-v0'``) or ``'module:callable'``. The module is looked up
beside the preset file, then in rlframe's shipped ``environments/`` folder, then on ``sys.path``; the
callable may be an environment class or a factory, and is called with ``additional_simulator_parameters``.

Termination and truncation stay separate all the way to the learner: gymnasium's ``truncated`` (a time
limit) is not a terminal state.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, NamedTuple

# Classic-control rendering initialises SDL; headless, it must not look for a display or sound card.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
# SDL would otherwise install a SIGTERM/SIGINT handler of its own that swallows the signal (rlframe.stopping).
os.environ["SDL_NO_SIGNAL_HANDLERS"] = "1"

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from rlframe.errors import EnvironmentLevelError
from rlframe.parameters import Parameters
from rlframe.spaces import SpacesDefinition, spaces_from_gymnasium

# Coach presets name the v0 levels on purpose (CartPole-v0 caps episodes at 200); do not nag about it.
warnings.filterwarnings("ignore", message=r".*is out of date\. You should consider upgrading.*")




class EnvironmentParameters(Parameters):
    """Coach's environment parameters.

    :param level: the environment to make (a gymnasium id or ``'module:callable'``).
    :param frame_skip: accepted for Coach compatibility; rlframe steps each environment once per action.
    :param seed: accepted for Coach compatibility; the run's ``--seed`` seeds the environments.
    :param custom_reward_threshold: total reward that counts as a success (default: the gymnasium spec's).
    :param target_success_rate: success rate that ends training when the stop condition is applied.
    :param num_envs: environment copies that act at once (one batched network call per step); None lets
        the agent choose (see each agent's ``default_num_envs``).
    """

    def __init__(self, level: str | None = None) -> None:
        self.level = level
        self.frame_skip = 4
        self.seed: int | None = None
        self.human_control = False
        self.custom_reward_threshold: float | None = None
        self.default_input_filter: Any = None
        self.default_output_filter: Any = None
        self.experiment_path: str | None = None
        self.target_success_rate = 1.0
        self.num_envs: int | None = None


class GymEnvironmentParameters(EnvironmentParameters):
    """Gymnasium environment parameters (Coach's ``GymEnvironmentParameters``)."""

    def __init__(self, level: str | None = None) -> None:
        super().__init__(level)
        self.random_initialization_steps = 0
        self.max_over_num_frames = 1
        self.additional_simulator_parameters: dict[str, Any] = {}
        self.observation_space_type: Any = None


class GymVectorEnvironment(GymEnvironmentParameters):
    """A gymnasium environment with vector observations (``GymVectorEnvironment(level='CartPole-v0')``)."""

    def __init__(self, level: str | None = None) -> None:
        super().__init__(level)
        self.frame_skip = 1


def _load_module_from_file(path: Path) -> Any:
    name = f"rlframe_level_{path.stem}_{abs(hash(str(path)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise EnvironmentLevelError(f"Importing {path} for the environment level failed: {type(exc).__name__}: {exc}") from exc
    return module


def resolve_level(level: str, search_dirs: list[Path]) -> Callable[..., gym.Env] | None:
    """The callable behind ``'module:callable'``, or None when ``level`` is not of that form."""
    if ":" not in level:
        return None
    module_name, _, attr = level.partition(":")
    module_file = module_name.replace(".", os.sep)
    module_file = module_file[:-3] if module_file.endswith(".py") else module_file
    looked = []
    module = None
    for directory in search_dirs:
        candidate = directory / f"{module_file}.py"
        looked.append(str(candidate))
        if candidate.is_file():
            module = _load_module_from_file(candidate)
            break
    if module is None:
        try:
            module = importlib.import_module(module_name[:-3] if module_name.endswith(".py") else module_name)
        except ImportError as exc:
            raise EnvironmentLevelError(
                f"Environment level {level!r}: module {module_name!r} was not found (looked in "
                f"{', '.join(looked)} and on sys.path: {exc}). Put {module_file}.py beside the preset or install it."
            ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise EnvironmentLevelError(
            f"Environment level {level!r}: module {module_name!r} has no callable {attr!r}. "
            f"Callables it defines: {', '.join(public) or 'none'}."
        )
    return factory


def make_env_factory(params: GymEnvironmentParameters, search_dirs: list[Path], render: bool) -> Callable[[], gym.Env]:
    """A function that makes one copy of the preset's environment (rendering to rgb arrays when ``render``)."""
    level = params.level
    if not isinstance(level, str) or not level:
        raise EnvironmentLevelError(
            f"env_params.level = {level!r}: set it to a gymnasium id such as 'CartPole-v0' or to 'module:callable'."
        )
    factory = resolve_level(level, search_dirs)
    extra = dict(params.additional_simulator_parameters or {})
    render_mode = "rgb_array" if render else None

    if factory is not None:
        try:
            accepts_render = "render_mode" in inspect.signature(factory).parameters or any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(factory).parameters.values()
            )
        except (TypeError, ValueError):
            accepts_render = False

        def make() -> gym.Env:
            env = factory(**extra, render_mode=render_mode) if accepts_render else factory(**extra)
            if render and getattr(env, "render_mode", None) is None:
                env.unwrapped.render_mode = "rgb_array"
            return env

        return make

    try:
        gym.spec(level)
    except gym.error.Error as exc:
        known = [k for k in gym.registry if "-v" in k]
        from rlframe.errors import closest

        raise EnvironmentLevelError(
            f"Environment level {level!r} is not a registered gymnasium id ({exc}).{closest(level, known)} "
            "Use a gymnasium id or 'module:callable'."
        ) from exc

    def make_registered() -> gym.Env:
        return gym.make(level, render_mode=render_mode, disable_env_checker=True, **extra)

    return make_registered


class StepResult(NamedTuple):
    """What k active environments returned: next_obs (k, D) (the final observation where an episode
    ended), reward (k,), terminated (k,), truncated (k,)."""

    next_obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


class EnvironmentPool:
    """N copies of one environment stepped together. A copy whose episode ends resets itself while the
    caller allows new episodes; otherwise it goes idle until :meth:`restart` or :meth:`reopen`.

    :param make_env: makes one copy.
    :param num_envs: N.
    :param seed: copy i is reset with seed ``seed + i`` the first time, then continues its own generator.
    """

    def __init__(self, make_env: Callable[[], gym.Env], num_envs: int, seed: int) -> None:
        self.envs = [make_env() for _ in range(num_envs)]
        self.num_envs = num_envs
        first = [env.reset(seed=seed + i)[0] for i, env in enumerate(self.envs)]
        self.obs = np.stack([np.asarray(o, dtype=np.float32).ravel() for o in first])
        self.active = np.ones(num_envs, dtype=bool)
        self.episode_started = np.ones(num_envs, dtype=bool)
        space = self.envs[0].action_space
        # Box actions are clipped to the bounds here, at the environment; agents keep the unclipped action.
        self._action_bounds = (space.low, space.high) if isinstance(space, gym.spaces.Box) else None

    def spaces(self, level: str) -> SpacesDefinition:
        return spaces_from_gymnasium(self.envs[0].observation_space, self.envs[0].action_space, level)

    def _reset(self, i: int) -> None:
        self.obs[i] = np.asarray(self.envs[i].reset()[0], dtype=np.float32).ravel()
        self.episode_started[i] = True
        self.active[i] = True

    def step(self, actions: np.ndarray, max_new_episodes: int | None = None) -> StepResult:
        """Step the active copies with ``actions`` (k,) or (k, K). Copies whose episode ended start a new
        one, at most ``max_new_episodes`` of them (None: all); the others go idle."""
        index = np.flatnonzero(self.active)
        k = len(index)
        next_obs = np.empty((k, self.obs.shape[1]), dtype=np.float32)
        reward = np.empty(k, dtype=np.float32)
        terminated = np.empty(k, dtype=bool)
        truncated = np.empty(k, dtype=bool)
        self.episode_started[:] = False
        quota = np.inf if max_new_episodes is None else max_new_episodes
        if self._action_bounds is not None:
            actions = np.minimum(np.maximum(actions, self._action_bounds[0]), self._action_bounds[1])  # np.clip: ~10 us more
        for j, i in enumerate(index):
            obs, r, term, trunc, _ = self.envs[i].step(actions[j].item() if actions.ndim == 1 else actions[j])
            next_obs[j] = np.asarray(obs, dtype=np.float32).ravel()
            reward[j], terminated[j], truncated[j] = r, term, trunc
            if term or trunc:
                self.active[i] = False
                if quota > 0:
                    quota -= 1
                    self._reset(i)
            else:
                self.obs[i] = next_obs[j]
        return StepResult(next_obs, reward, terminated, truncated)

    def restart(self, num_active: int) -> None:
        """Start fresh episodes in the first ``num_active`` copies; the rest stay idle."""
        self.active[:] = False
        self.episode_started[:] = False
        for i in range(min(num_active, self.num_envs)):
            self._reset(i)

    def reopen(self) -> None:
        """Start new episodes in the idle copies; running episodes continue."""
        for i in np.flatnonzero(~self.active):
            self._reset(int(i))

    def render(self, i: int) -> np.ndarray:
        return np.asarray(self.envs[i].render())

    def close(self) -> None:
        for env in self.envs:
            env.close()


class SingleLevelSelection(dict):
    """Coach's per-preset level menu (``{name: level}``); the CLI's ``--level`` picks one."""

    def __init__(self, levels: dict[str, str]) -> None:
        super().__init__(levels)
        self.selected_level: str | None = None


class Atari(GymEnvironmentParameters):
    """Accepted so Coach Atari presets import; running one needs ``gymnasium[atari]`` installed."""


# Level menus some Coach presets import (often without using them).
mujoco_v2 = {name.lower(): f"{name}-v2" for name in (
    "InvertedPendulum", "InvertedDoublePendulum", "Reacher", "Hopper", "HalfCheetah", "Walker2d", "Ant",
    "Swimmer", "Humanoid", "HumanoidStandup", "Pusher", "Striker", "Thrower")}
atari_deterministic_v4: dict[str, str] = {}
