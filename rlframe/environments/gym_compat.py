"""``import gym`` answered by gymnasium when no real ``gym`` is installed.

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

Old gym's API (``reset()`` returning only the observation, a 4-value ``step()``) is handled where environments
are made (:mod:`rlframe.environments.gym_environment`), so it works with a real old gym as well.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any, Sequence

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
                f"the environment was written for (pip install 'gym==0.26.2') or import from gymnasium instead.",
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
    import gymnasium

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
