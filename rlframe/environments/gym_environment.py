"""Gymnasium environments: the preset-facing parameters, level resolution, and a pool of N copies.

A level is either a gymnasium id (``'CartPole-v0'``) or ``'module:callable'``. The module is looked up
beside the preset file, then in rlframe's shipped ``environments/`` folder, then on ``sys.path``; the
callable may be an environment class or a factory, and is called with ``additional_simulator_parameters``.

Termination and truncation stay separate all the way to the learner: gymnasium's ``truncated`` (a time
limit) is not a terminal state.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import gymnasium as gym
import numpy as np

from rlframe.environments.gym_compat import GymApiAdapter, accepts_keyword, install_gym_fallback, is_gym_fallback
from rlframe.errors import EnvironmentLevelError, closest
from rlframe.module_files import import_file
from rlframe.parameters import Parameters
from rlframe.spaces import SpacesDefinition, spaces_from_gymnasium


def prepare_sdl() -> None:
    """Settings SDL reads when an environment first initialises it (classic-control rendering, a user's pygame
    environment): no display or sound card to look for on a headless machine (a user's own choice wins), and no
    SIGTERM/SIGINT handlers of SDL's own, which would swallow the signal that stops a run (rlframe.stopping)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ["SDL_NO_SIGNAL_HANDLERS"] = "1"


@contextlib.contextmanager
def quiet_about_old_versions() -> Iterator[None]:
    """Coach presets name the v0 levels on purpose (CartPole-v0 caps episodes at 200): gymnasium's warning that a
    level is out of date is silenced while rlframe looks one up and builds it, and only then."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is out of date\. You should consider upgrading.*")
        yield




class EnvironmentParameters(Parameters):
    """Coach's environment parameters.

    :param level: the environment to make (a gymnasium id or ``'module:callable'``).
    :param frame_skip: accepted for Coach compatibility; rlframe steps each environment once per action.
    :param seed: accepted for Coach compatibility; the run's ``--seed`` seeds the environments.
    :param custom_reward_threshold: total reward that counts as a success (default: the gymnasium spec's).
    :param target_success_rate: success rate that ends training when the stop condition is applied.
    :param num_envs: environment copies that act at once (one batched network call per step); None lets
        the agent choose (see each agent's ``default_num_envs``).
    :param human_control: accepted for Coach compatibility, not used (rlframe has no human play).
    :param default_input_filter: accepted for Coach compatibility, not used (set ``agent_params.input_filter``).
    :param default_output_filter: accepted for Coach compatibility, not used.
    :param experiment_path: accepted for Coach compatibility, not used (the run's ``--experiment-path`` decides).
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
    """Gymnasium environment parameters (Coach's ``GymEnvironmentParameters``).

    :param random_initialization_steps: accepted for Coach compatibility, not used (no random no-op steps at
        the start of an episode).
    :param max_over_num_frames: accepted for Coach compatibility, not used (no max-pooling over frames).
    :param additional_simulator_parameters: keyword arguments passed to the level's callable (or added to a
        registered id's own keyword arguments) when each environment copy is made.
    :param observation_space_type: accepted for Coach compatibility, not used (the environment's own
        observation space decides).
    """

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


def _keep_importable(folder: Path) -> None:
    """Put ``folder`` first on ``sys.path`` for the rest of the run (once).

    An environment module imports its siblings (``import capacity``) at the top and also inside methods called
    much later (``render()``, ``step()``), so its folder must stay importable for as long as the process runs.
    """
    entry = str(folder.resolve())
    if entry not in sys.path:
        sys.path.insert(0, entry)


def _folder_holding(module_name: str, search_dirs: list[Path]) -> Path | None:
    """The first search folder holding the top-level module or package of ``module_name``, if any."""
    top = module_name.split(".")[0]
    for directory in search_dirs:
        if (directory / f"{top}.py").is_file() or (directory / top / "__init__.py").is_file():
            return directory
    return None


def _load_module_from_file(path: Path) -> Any:
    name = f"rlframe_level_{path.stem}_{abs(hash(str(path)))}"
    if name in sys.modules:
        return sys.modules[name]
    try:
        return import_file(path, name)
    except Exception as exc:
        raise EnvironmentLevelError(
            f"Importing {path} for the environment level failed: {type(exc).__name__}: {exc}") from exc


def resolve_level(level: str, search_dirs: list[Path]) -> Callable[..., Any] | None:
    """The callable behind ``'module:callable'``, or None when ``level`` is not of that form.

    The folder the module is found in stays on ``sys.path`` for the rest of the run (its sibling imports).
    """
    if ":" not in level:
        return None
    install_gym_fallback()
    module_name, _, attr = level.partition(":")
    module_file = module_name.replace(".", os.sep)
    module_file = module_file[:-3] if module_file.endswith(".py") else module_file
    looked = []
    module = None
    for directory in search_dirs:
        candidate = directory / f"{module_file}.py"
        looked.append(str(candidate))
        if candidate.is_file():
            _keep_importable(directory)
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


class _Registered(NamedTuple):
    """A registered id's recipe, from gymnasium's registry or a real gym's."""

    creator: Callable[..., Any]
    kwargs: dict[str, Any]
    max_episode_steps: int | None
    spec: Any


def _registered(level: str, search_dirs: list[Path]) -> _Registered:
    """Look ``level`` up in gymnasium's registry, then in a real gym's (old environments register there)."""
    registries: list[tuple[str, Callable[[str], Any], type[Exception]]] = [("gymnasium", gym.spec, gym.error.Error)]
    try:
        import gym as old_gym  # a real gym when one is installed; else the fallback, i.e. gymnasium again
    except ImportError:
        old_gym = None
    if old_gym is not None and not is_gym_fallback(old_gym):
        registries.append((f"gym {getattr(old_gym, '__version__', '')}".strip(), old_gym.spec, Exception))
    errors = []
    for name, lookup, error in registries:
        try:
            spec = lookup(level)
        except error as exc:
            errors.append(f"{name}: {exc}")
            continue
        # gym < 0.21 kept these two as _entry_point and _kwargs
        entry_point = getattr(spec, "entry_point", None) or getattr(spec, "_entry_point", None)
        kwargs = getattr(spec, "kwargs", None) or getattr(spec, "_kwargs", None) or {}
        if isinstance(entry_point, str):
            module_name, _, attr = entry_point.partition(":")
            folder = _folder_holding(module_name, search_dirs)
            if folder is not None:
                _keep_importable(folder)
            try:
                entry_point = getattr(importlib.import_module(module_name), attr)
            except Exception as exc:  # the user's module failing to import is as much a fix to name as a typo
                raise EnvironmentLevelError(
                    f"Environment level {level!r} is registered with entry_point {entry_point!r}, which cannot "
                    f"be loaded ({type(exc).__name__}: {exc}). Put the module beside the preset or install it."
                ) from exc
        else:  # a class or function a preset module registered: keep that module's folder importable
            home = getattr(sys.modules.get(getattr(entry_point, "__module__", "")), "__file__", None)
            if home:
                folder = _folder_holding(Path(home).stem, search_dirs)
                if folder is not None and folder.resolve() == Path(home).resolve().parent:
                    _keep_importable(folder)
        steps = getattr(spec, "max_episode_steps", None)
        if not callable(entry_point):
            raise EnvironmentLevelError(
                f"Environment level {level!r} is registered with entry_point {entry_point!r}, which is not callable. "
                "Register it with entry_point='module:callable' or the environment class itself.")
        return _Registered(entry_point, dict(kwargs), steps if isinstance(steps, int) and steps > 0 else None, spec)
    known = [k for k in gym.registry if "-v" in k]
    raise EnvironmentLevelError(
        f"Environment level {level!r} is not a registered {' or '.join(name for name, _, _ in registries)} id "
        f"({'; '.join(errors)}).{closest(level, known)} "
        "Use a gymnasium id or 'module:callable'."
    )


def _construct(factory: Callable[..., Any], kwargs: dict[str, Any], render: bool) -> Any:
    """Call ``factory(**kwargs)``, asking for rgb-array frames when ``render`` (passing ``render_mode`` only
    where the factory takes it; an old environment renders on request instead)."""
    if render and accepts_keyword(factory, "render_mode"):
        kwargs = {**kwargs, "render_mode": "rgb_array"}
    env = factory(**kwargs)
    if render and getattr(env, "render_mode", None) is None:
        try:
            env.unwrapped.render_mode = "rgb_array"
        except AttributeError:  # not a gym-style object; GymApiAdapter asks render(mode='rgb_array') if it can
            pass
    return env


def make_env_factory(params: GymEnvironmentParameters, search_dirs: list[Path], render: bool) -> Callable[[], gym.Env]:
    """A function that makes one copy of the preset's environment (rendering to rgb arrays when ``render``).

    Each copy is a gymnasium environment: whatever the level makes (old gym, gym 0.26 or gymnasium) is wrapped in
    :class:`~rlframe.environments.gym_compat.GymApiAdapter`. A registered id is built from its registry entry
    (gymnasium's, else a real gym's), with its ``max_episode_steps`` applied as a time limit, as ``make`` would.

    :param search_dirs: folders to look for a level's module in, the preset's folder first; the one holding the
        environment's module stays on ``sys.path`` for the rest of the run.
    """
    level = params.level
    if not isinstance(level, str) or not level:
        raise EnvironmentLevelError(
            f"env_params.level = {level!r}: set it to a gymnasium id such as 'CartPole-v0' or to 'module:callable'."
        )
    install_gym_fallback()
    prepare_sdl()
    extra = dict(params.additional_simulator_parameters or {})
    factory = resolve_level(level, search_dirs)
    if factory is not None:
        def make() -> gym.Env:
            return GymApiAdapter(_construct(factory, extra, render), level)

        return make

    with quiet_about_old_versions():
        recipe = _registered(level, search_dirs)

    def make_registered() -> gym.Env:
        with quiet_about_old_versions():
            raw = _construct(recipe.creator, {**recipe.kwargs, **extra}, render)
        if getattr(raw, "spec", None) is None:
            try:
                raw.unwrapped.spec = recipe.spec  # what make() does, so the reward threshold is known
            except AttributeError:
                pass
        env: gym.Env = GymApiAdapter(raw, level)
        if recipe.max_episode_steps is not None:
            env = gym.wrappers.TimeLimit(env, recipe.max_episode_steps)
        return env

    return make_registered


def _number(value: Any) -> float | None:
    """``value`` as a float where it is a finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
        return None
    return float(value)


def _read(obj: Any, name: str) -> Any:
    """``obj.name``, or None where it is missing or raises (a user's environment is not to be trusted)."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _layers(env: Any) -> list[Any]:
    """``env`` and the environments it wraps, outermost first (gymnasium's and old gym's wrappers and
    GymApiAdapter keep the wrapped one in ``env``)."""
    layers = [env]
    while len(layers) < 64:
        inner = _read(layers[-1], "env")
        if inner is None or not callable(_read(inner, "step")) or any(inner is layer for layer in layers):
            break
        layers.append(inner)
    return layers


def registered_reward_threshold(env_class: type) -> float | None:
    """The ``reward_threshold`` of the gymnasium ids registered for ``env_class``, where they all have the same
    one; None where no id is registered for it, or they differ (``CartPoleEnv``: CartPole-v0 195, CartPole-v1 475).

    An id matches when its entry point is the class itself, or ``'module:Class'`` naming the class's qualified name
    in a module of the class's module file name (a level module rlframe loads from beside a preset gets a module
    name of its own)."""
    try:
        stem = Path(sys.modules[env_class.__module__].__file__ or "").stem
    except (KeyError, TypeError):
        stem = env_class.__module__.rpartition(".")[2]
    thresholds = set()
    for spec in gym.registry.values():
        entry_point = spec.entry_point
        if isinstance(entry_point, str):
            module_name, _, attr = entry_point.partition(":")
            if attr != env_class.__qualname__ or module_name.rpartition(".")[2] not in (stem, env_class.__module__):
                continue
        elif entry_point is not env_class:
            continue
        thresholds.add(_number(spec.reward_threshold))
    return thresholds.pop() if len(thresholds) == 1 else None


def reward_threshold(env_params: EnvironmentParameters, env: Any) -> float | None:
    """The total episode reward that counts as a success (what the CSV's ``Success Rate`` measures), or None
    where none is known (the column stays empty).

    In order: the preset's ``custom_reward_threshold``; a finite ``spec.reward_threshold`` or ``reward_threshold``
    of ``env`` or of any environment it wraps (a registered id's spec, or what a factory's environment carries);
    then :func:`registered_reward_threshold` of the innermost environment's class. The last makes a level named by
    its gymnasium id and the same environment made by a ``module:callable`` factory agree:
    ``patient_envs:PatientMountainCar`` (gymnasium's MountainCarEnv under a 10,000-step limit) gets
    MountainCar-v0's -110, ``patient_envs:PatientContinuousMountainCar`` MountainCarContinuous-v0's 90.

    :param env_params: the preset's environment parameters.
    :param env: one copy of the environment, as :func:`make_env_factory` makes it.
    """
    if env_params.custom_reward_threshold is not None:
        return float(env_params.custom_reward_threshold)
    layers = _layers(env)
    for layer in layers:
        for threshold in (_read(_read(layer, "spec"), "reward_threshold"), _read(layer, "reward_threshold")):
            if _number(threshold) is not None:
                return _number(threshold)
    return registered_reward_threshold(type(layers[-1]))


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
