"""Old ``gym`` environments in a gymnasium world: ``import gym`` without gym, and the old API.

Environments written for the old ``gym`` package (SageMaker RL's examples pin gym 0.10-0.12) start with
``import gym``, ``from gym import spaces`` or ``from gym.wrappers.time_limit import TimeLimit``. rlframe depends on
gymnasium only, so :func:`install_gym_fallback` adds an import finder that answers ``gym`` and ``gym.<sub>`` with
the gymnasium module of the same role (``gym.spaces`` -> ``gymnasium.spaces``, ``gym.wrappers.time_limit`` ->
``gymnasium.wrappers.common``, ...). The finder sits at the END of ``sys.meta_path``: a real ``gym`` that the normal
path finder can import always wins, and the fallback only ever answers an import that would otherwise fail.

Packages are answered with a thin alias module whose attributes are the gymnasium package's and whose
``__path__`` is empty; a real ``__path__`` would let the path finder load gymnasium's files a second time under
the ``gym.`` names (a second ``Box`` class that ``isinstance`` checks would not recognise). Plain modules are
answered with the gymnasium module object itself.

Old gym's API (``reset()`` returning only the observation, a 4-value ``step()``, ``seed()``, real-gym spaces) is
presented as gymnasium's by :class:`GymApiAdapter`, which :mod:`rlframe.environments.gym_environment` puts around
every environment it makes. It decides by what an environment returns, not by what it imports, so it serves an
environment written for gym 0.10 the same way whether ``gym`` is gymnasium (the fallback) or a real gym 0.1x-0.26.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import inspect
import sys
import types
from typing import Any, Callable, Sequence

import gymnasium
import numpy as np

from rlframe.errors import EnvironmentLevelError

#: gym modules whose content moved to another gymnasium module; any other ``gym.X`` is ``gymnasium.X``.
RENAMED: dict[str, str] = {
    "gym.wrappers.time_limit": "gymnasium.wrappers.common",
    "gym.wrappers.order_enforcing": "gymnasium.wrappers.common",
    "gym.wrappers.record_episode_statistics": "gymnasium.wrappers.common",
    "gym.wrappers.env_checker": "gymnasium.wrappers.common",
    "gym.wrappers.clip_action": "gymnasium.wrappers.transform_action",
    "gym.wrappers.rescale_action": "gymnasium.wrappers.transform_action",
    "gym.wrappers.flatten_observation": "gymnasium.wrappers.transform_observation",
    "gym.wrappers.filter_observation": "gymnasium.wrappers.transform_observation",
    "gym.wrappers.gray_scale_observation": "gymnasium.wrappers.transform_observation",
    "gym.wrappers.resize_observation": "gymnasium.wrappers.transform_observation",
    "gym.wrappers.transform_observation": "gymnasium.wrappers.transform_observation",
    "gym.wrappers.transform_reward": "gymnasium.wrappers.transform_reward",
    "gym.wrappers.normalize": "gymnasium.wrappers.stateful_observation",
    "gym.wrappers.frame_stack": "gymnasium.wrappers.stateful_observation",
    "gym.wrappers.record_video": "gymnasium.wrappers.rendering",
    "gym.wrappers.render_collection": "gymnasium.wrappers.rendering",
    "gym.wrappers.human_rendering": "gymnasium.wrappers.rendering",
}


def _target_name(fullname: str) -> str:
    return RENAMED.get(fullname, "gymnasium" + fullname[len("gym"):])


class _GymPackageAlias(types.ModuleType):
    """``gym`` or a ``gym.<package>``: attributes come from the gymnasium package it stands for."""

    def __init__(self, name: str, target: types.ModuleType) -> None:
        super().__init__(name, target.__doc__)
        self.__dict__["_gym_fallback_target"] = target
        # Set here so the import system does not read them through __getattr__ from the gymnasium package:
        # an empty __path__ keeps the path finder from loading gymnasium's files again under gym.* names.
        self.__path__: list[str] = []
        self.__package__ = name
        self.__loader__ = None
        self.__file__ = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_gym_fallback_target"], name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self.__dict__["_gym_fallback_target"])) | set(self.__dict__))


class _GymFallbackFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "gym" and not fullname.startswith("gym."):
            return None
        try:
            real = importlib.import_module(_target_name(fullname))
        except ImportError as exc:
            raise ImportError(
                f"No module named {fullname!r}: gym is not installed, and the gymnasium {_gymnasium_version()} that "
                f"rlframe uses for 'import gym' has no {_target_name(fullname)!r} ({exc}). Install the gym version "
                f"the environment was written for (pip install 'gym==<version>'), or import from gymnasium instead.",
                name=fullname,
            ) from exc
        return importlib.machinery.ModuleSpec(fullname, self, is_package=hasattr(real, "__path__"))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        real = importlib.import_module(_target_name(spec.name))
        if hasattr(real, "__path__"):
            return _GymPackageAlias(spec.name, real)
        return types.ModuleType(spec.name)  # a placeholder that exec_module swaps for the gymnasium module

    def exec_module(self, module: types.ModuleType) -> None:
        if not isinstance(module, _GymPackageAlias):
            # The import system returns whatever sys.modules holds under the name once exec_module is done.
            sys.modules[module.__name__] = importlib.import_module(_target_name(module.__name__))


def _gymnasium_version() -> str:
    return gymnasium.__version__


_FINDER = _GymFallbackFinder()


def install_gym_fallback() -> None:
    """Let ``import gym`` (and ``gym.<sub>``) fall back to gymnasium when no real gym can be imported.

    Idempotent. The finder goes at the end of ``sys.meta_path``, so it answers only imports that every other
    finder declined: with a real gym installed, nothing changes.
    """
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)


def is_gym_fallback(module: types.ModuleType) -> bool:
    """Whether ``module`` (say ``sys.modules['gym']``) is the fallback's alias rather than a real gym."""
    return isinstance(module, _GymPackageAlias)


# ---------------------------------------------------------------------------------------------------------------
# The old API


def accepts_keyword(function: Callable[..., Any], name: str, through_var_keyword: bool = True) -> bool:
    """Whether ``function`` can be called with the keyword argument ``name``; ``**kwargs`` counts when
    ``through_var_keyword`` (a wrapper's ``**kwargs`` only passes the argument on, to a method that may lack it)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name and p.kind is not inspect.Parameter.POSITIONAL_ONLY
               or through_var_keyword and p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def to_gymnasium_space(space: Any, level: str, role: str) -> gymnasium.spaces.Space:
    """The gymnasium space equal to ``space``, a gymnasium space or one of any real gym version.

    Real gym's spaces are read by class name and attributes (gym 0.10's Box has no ``bounded_below``), so
    this works without importing gym. A Box keeps its dtype; an integer Box's unbounded sides stay unbounded.

    :param role: ``'observation'`` or ``'action'``, for the error message.
    """
    if isinstance(space, gymnasium.spaces.Space):
        return space
    kind = type(space).__name__
    try:
        if kind == "Box":
            dtype = np.dtype(getattr(space, "dtype", None) or np.float32)
            low = np.asarray(space.low, dtype=np.float64)
            high = np.asarray(space.high, dtype=np.float64)
            # gym >= 0.21 stores an integer Box's infinite bounds as finite integers and remembers them here.
            below, above = getattr(space, "bounded_below", None), getattr(space, "bounded_above", None)
            if below is not None:
                low = np.where(below, low, -np.inf)
            if above is not None:
                high = np.where(above, high, np.inf)
            return gymnasium.spaces.Box(low=low, high=high, shape=tuple(space.shape), dtype=dtype)
        if kind == "Discrete":
            return gymnasium.spaces.Discrete(int(space.n), start=int(getattr(space, "start", 0)))
        if kind == "MultiDiscrete":
            return gymnasium.spaces.MultiDiscrete(np.asarray(space.nvec))
        if kind == "MultiBinary":
            return gymnasium.spaces.MultiBinary(space.n)
        if kind == "Dict":
            return gymnasium.spaces.Dict({k: to_gymnasium_space(v, level, role) for k, v in space.spaces.items()})
        if kind == "Tuple":
            return gymnasium.spaces.Tuple([to_gymnasium_space(v, level, role) for v in space.spaces])
    except EnvironmentLevelError:
        raise
    except Exception as exc:
        raise EnvironmentLevelError(
            f"Environment {level!r}: its {role}_space {space!r} could not be read as a gymnasium {kind} "
            f"({type(exc).__name__}: {exc}). Give it a gym or gymnasium space with consistent bounds and shape."
        ) from exc
    raise EnvironmentLevelError(
        f"Environment {level!r}: its {role}_space is a {type(space).__module__}.{kind} ({space!r}), which is not a "
        "gym or gymnasium space. Set self." + role + "_space to a gym.spaces or gymnasium.spaces Box, Discrete, "
        "MultiDiscrete, MultiBinary, Dict or Tuple."
    )


def _describe(value: Any) -> str:
    """A short account of a value an environment returned: ``a tuple of 3 (ndarray, float, bool)``."""
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} ({', '.join(type(v).__name__ for v in value)})"
    text = repr(value)
    return f"{text[:60] + '...' if len(text) > 60 else text} (a {type(value).__name__})"


def _attribute(obj: Any, name: str) -> Any:
    """``obj.name``, or None where it is missing or its property raises (a user's spec is not to be trusted)."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _spec_of(env: Any, level: str) -> gymnasium.envs.registration.EnvSpec | None:
    """The environment's spec as a gymnasium EnvSpec: its id, reward_threshold and max_episode_steps where they
    are usable; None when there is no spec. A spec of any other type (real gym's, a user's own) is read by
    attribute, and values of the wrong type are left out rather than trusted."""
    spec = _attribute(env, "spec")
    if spec is None or isinstance(spec, gymnasium.envs.registration.EnvSpec):
        return spec
    threshold = _attribute(spec, "reward_threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not np.isfinite(threshold):
        threshold = None
    steps = _attribute(spec, "max_episode_steps")  # a property in gym 0.10, computed from the spec's tags
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
        steps = None
    spec_id = _attribute(spec, "id")
    for candidate in (spec_id if isinstance(spec_id, str) else level, "UserEnvironment-v0"):
        try:
            return gymnasium.envs.registration.EnvSpec(
                id=candidate, reward_threshold=None if threshold is None else float(threshold),
                max_episode_steps=None if steps is None else int(steps))
        except gymnasium.error.Error:  # an id gymnasium's grammar refuses
            continue
    return None


class GymApiAdapter(gymnasium.Env):
    """Any gym-style environment presented with gymnasium's API.

    The wrapped environment may follow old gym (``reset() -> obs``, ``step() -> (obs, reward, done, info)``,
    ``seed(n)``, ``render(mode=...)``), gym 0.26 or gymnasium; which one is read from what it returns, once, at
    the first ``reset()`` and the first ``step()``. An old ``done`` with ``info['TimeLimit.truncated']`` true is a
    truncation, not a terminal state; any other ``done`` is terminal. Spaces are converted to gymnasium's
    (:func:`to_gymnasium_space`) and the spec to a gymnasium EnvSpec (reward threshold, max_episode_steps).

    A return of the wrong form raises :class:`EnvironmentLevelError` naming the level, what came back and the
    two accepted forms.

    :param env: the environment object.
    :param level: the level it was made from (for messages).
    """

    def __init__(self, env: Any, level: str) -> None:
        self.env = env
        self.level = level
        for role in ("observation", "action"):
            if not hasattr(env, f"{role}_space"):
                raise EnvironmentLevelError(
                    f"Environment {level!r} ({type(env).__name__}) has no {role}_space: set self.{role}_space in "
                    "its __init__ (a gym or gymnasium space).")
        self.observation_space = to_gymnasium_space(env.observation_space, level, "observation")
        self.action_space = to_gymnasium_space(env.action_space, level, "action")
        metadata = getattr(env, "metadata", None)
        self.metadata = metadata if isinstance(metadata, dict) else {}
        self.render_mode = getattr(env, "render_mode", None)
        self.spec = _spec_of(env, level)
        # True, False, or None: only a **kwargs passes it on (an old gym wrapper's reset(**kwargs) around an old
        # environment's reset() does not take it); the first seeded reset finds out.
        self._reset_takes_seed: bool | None = (
            True if accepts_keyword(env.reset, "seed", through_var_keyword=False)
            else None if accepts_keyword(env.reset, "seed") else False)
        self._reset_takes_options = accepts_keyword(env.reset, "options", through_var_keyword=False)
        render = getattr(env, "render", None)
        # old gym renders on request (render(mode='rgb_array')); gym 0.26 and gymnasium by their render_mode
        self._render_takes_mode = callable(render) and accepts_keyword(render, "mode", through_var_keyword=False)
        self._reset_returns_info: bool | None = None  # known after the first reset
        self._step_length: int | None = None  # 4 (old gym) or 5, known after the first step

    def _wrong(self, call: str, value: Any, expected: str) -> EnvironmentLevelError:
        try:
            inner = self.env.unwrapped  # name the user's class, not a wrapper around it
        except AttributeError:
            inner = self.env
        where = getattr(sys.modules.get(type(inner).__module__), "__file__", None)
        return EnvironmentLevelError(
            f"Environment {self.level!r}: {call} returned {_describe(value)}; it must return {expected}. "
            f"Fix {type(inner).__name__}.{call.split('(')[0]}()" + (f" in {where}." if where else ".")
        )

    def _observation(self, obs: Any, call: str, expected: str) -> Any:
        """Check the first observation: numbers, as many as the observation space holds."""
        try:
            array = np.asarray(obs, dtype=np.float32)
        except (TypeError, ValueError):
            raise self._wrong(call, obs, expected) from None
        if obs is None:  # np.asarray made it a NaN
            raise self._wrong(call, obs, expected)
        shape = self.observation_space.shape
        if shape is not None and array.size != int(np.prod(shape)):
            raise EnvironmentLevelError(
                f"Environment {self.level!r}: {call} returned an observation of shape {array.shape}, but its "
                f"observation_space {self.observation_space} holds {int(np.prod(shape))} values. Make the two agree."
            )
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        if options is not None and self._reset_takes_options:
            kwargs["options"] = options
        called = False
        if seed is not None and self._reset_takes_seed is not False:
            try:
                result = self.env.reset(seed=seed, **kwargs)
                called = self._reset_takes_seed = True
            except TypeError as exc:
                if self._reset_takes_seed or "seed" not in str(exc):
                    raise
                self._reset_takes_seed = False
        if not called:
            if seed is not None and callable(getattr(self.env, "seed", None)):
                self.env.seed(seed)  # old gym seeds through seed(), then reset() starts from that state
            result = self.env.reset(**kwargs)
        expected = "the observation (old gym) or (observation, info) (gym 0.26, gymnasium)"
        if self._reset_returns_info is None:
            self._reset_returns_info = isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)
            obs = result[0] if self._reset_returns_info else result
            self._observation(obs, "reset()", expected)
        if self._reset_returns_info:
            if not (isinstance(result, tuple) and len(result) == 2):
                raise self._wrong("reset()", result, expected)
            return result[0], result[1]
        return result, {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        result = self.env.step(action)
        length = len(result) if isinstance(result, (tuple, list)) else None
        if length != self._step_length:
            expected = ("(observation, reward, done, info) (old gym) or (observation, reward, terminated, "
                        "truncated, info) (gym 0.26, gymnasium)")
            if self._step_length is not None or length not in (4, 5):
                raise self._wrong("step()", result, expected)
            self._observation(result[0], "step()", expected)
            try:
                float(result[1])
            except (TypeError, ValueError):
                raise self._wrong("step()", result, expected + " with a number as the reward") from None
            self._step_length = length
        if length == 5:
            return tuple(result)
        obs, reward, done, info = result
        truncated = bool(done) and isinstance(info, dict) and bool(info.get("TimeLimit.truncated", False))
        return obs, reward, bool(done) and not truncated, truncated, info if isinstance(info, dict) else {}

    def render(self) -> Any:
        if self._render_takes_mode:
            return self.env.render(mode=self.render_mode or "rgb_array")
        return self.env.render()

    def close(self) -> None:
        close = getattr(self.env, "close", None)
        if callable(close):
            close()
