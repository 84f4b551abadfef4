"""``rl_coach.*`` imports answered by rlframe's classes, in any script once rlframe is installed.

rlframe ships a top-level ``rl_coach`` package (Coach's import name). Its few real modules (``rl_coach.logger``,
``rl_coach.coach``, ``rl_coach.utils``) are files; every other Coach module a preset or a SageMaker launcher
imports is made here from rlframe's modules: ``from rl_coach.agents.dqn_agent import DQNAgentParameters``
returns rlframe's class. ``rl_coach/__init__`` calls :func:`install`, so this works in a preset, in a user's
``train-coach.py`` run by rlframe's SageMaker entrypoint or by SageMaker's own training toolkit, and in a
plain ``python script.py``.

Each Coach module maps to the rlframe modules whose public names it offers (:data:`ALIASES`). Classes that
notebooks' presets and launchers name but rlframe does not implement (:data:`NOT_PROVIDED`) can be imported,
so a script that only names one runs; constructing one raises :class:`NotProvidedError`. A Coach module that
is in neither map fails to import with the list of those that are.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import pkgutil
import sys
import types
from enum import Enum
from typing import Any, Sequence

from rlframe.errors import RlframeError

ALIASES: dict[str, tuple[str, ...]] = {
    "rl_coach.graph_managers.graph_manager": ("rlframe.graph_managers.graph_manager",),
    "rl_coach.graph_managers.basic_rl_graph_manager": ("rlframe.graph_managers.basic_rl",),
    "rl_coach.graph_managers.batch_rl_graph_manager": ("rlframe.graph_managers.batch_rl",),
    "rl_coach.core_types": ("rlframe.core_types", "rlframe.outputs.video_dump_filters", "rlframe.memories.dataset"),
    "rl_coach.base_parameters": ("rlframe.parameters", "rlframe.networks.parameters"),
    "rl_coach.agents.policy_optimization_agent": ("rlframe.agents.clipped_ppo",),
    "rl_coach.environments.gym_environment": ("rlframe.environments.gym_environment",),
    "rl_coach.environments.environment": ("rlframe.environments.gym_environment",),
    "rl_coach.agents.clipped_ppo_agent": ("rlframe.agents.clipped_ppo",),
    "rl_coach.agents.actor_critic_agent": ("rlframe.agents.actor_critic",),
    "rl_coach.agents.dqn_agent": ("rlframe.agents.dqn",),
    "rl_coach.agents.ddqn_agent": ("rlframe.agents.ddqn",),
    "rl_coach.agents.ddqn_bcq_agent": ("rlframe.agents.ddqn_bcq",),
    "rl_coach.exploration_policies.e_greedy": ("rlframe.exploration.parameters",),
    "rl_coach.exploration_policies.additive_noise": ("rlframe.exploration.parameters",),
    "rl_coach.exploration_policies.categorical": ("rlframe.exploration.parameters",),
    "rl_coach.exploration_policies.continuous_entropy": ("rlframe.agents.actor_critic",),
    "rl_coach.schedules": ("rlframe.schedules",),
    "rl_coach.architectures.layers": ("rlframe.networks.parameters",),
    "rl_coach.architectures.tensorflow_components.layers": ("rlframe.networks.parameters",),
    "rl_coach.architectures.mxnet_components.layers": ("rlframe.networks.parameters",),
    "rl_coach.architectures.embedder_parameters": ("rlframe.networks.parameters",),
    "rl_coach.architectures.middleware_parameters": ("rlframe.networks.parameters",),
    "rl_coach.architectures.head_parameters": ("rlframe.networks.parameters", "rlframe.networks.dueling"),
    "rl_coach.filters.filter": ("rlframe.filters.filter",),
    "rl_coach.filters.observation.observation_normalization_filter": ("rlframe.filters.observation",),
    "rl_coach.filters.reward": ("rlframe.filters.reward",),
    "rl_coach.filters.reward.reward_rescale_filter": ("rlframe.filters.reward",),
    "rl_coach.filters.reward.reward_clipping_filter": ("rlframe.filters.reward",),
    "rl_coach.memories.memory": ("rlframe.memories.memory",),
    "rl_coach.memories.episodic": ("rlframe.memories.memory", "rlframe.memories.dataset"),
    "rl_coach.memories.episodic.episodic_experience_replay": ("rlframe.memories.memory", "rlframe.memories.dataset"),
    "rl_coach.memories.non_episodic": ("rlframe.memories.experience_replay",),
    "rl_coach.memories.non_episodic.experience_replay": ("rlframe.memories.experience_replay",),
    "rl_coach.spaces": ("rlframe.spaces",),
}

#: Coach classes the SageMaker notebooks' presets and launchers name that rlframe does not implement:
#: module -> {class name: what to use instead}. Importing one works; constructing one fails.
NOT_PROVIDED: dict[str, dict[str, str]] = {
    "rl_coach.agents.policy_gradients_agent": {
        "PolicyGradientsAgentParameters": "use ClippedPPOAgentParameters (rl_coach.agents.clipped_ppo_agent)",
    },
    "rl_coach.architectures.layers": {
        "Conv2d": "use Dense layers on a flattened observation",
    },
}


class ObservationSpaceType(Enum):
    """Coach's observation kinds; presets set ``env_params.observation_space_type`` to one. rlframe reads the
    kind from the environment's own observation space, so the value is kept but not used."""

    Tensor = 0
    Image = 1
    Vector = 2


#: Coach names rlframe provides only for compatibility (not part of any rlframe module): module -> {name: value}.
EXTRA_NAMES: dict[str, dict[str, Any]] = {
    "rl_coach.environments.gym_environment": {"ObservationSpaceType": ObservationSpaceType},
    "rl_coach.environments.environment": {"ObservationSpaceType": ObservationSpaceType},
}


class NotProvidedError(RlframeError):
    """A Coach class that rlframe can import but does not implement was used."""


def _not_provided_class(module: str, name: str, instead: str) -> type:
    """A class named ``name`` whose construction raises :class:`NotProvidedError` (one line, with the fix)."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise NotProvidedError(f"rlframe does not implement {name} (from {module}); {instead}.")

    return type(name, (), {"__init__": __init__, "__module__": module, "__doc__": f"Not implemented by rlframe: {instead}."})


def _made_modules() -> set[str]:
    return set(ALIASES) | set(NOT_PROVIDED) | set(EXTRA_NAMES)


def _is_package(name: str) -> bool:
    return any(made.startswith(name + ".") for made in _made_modules())


def provided_modules() -> list[str]:
    """Every ``rl_coach`` module an import can name: the made ones and the real files of the package."""
    names = _made_modules()
    package = sys.modules.get("rl_coach")
    if package is not None and getattr(package, "__path__", None):
        names.update(f"rl_coach.{info.name}" for info in pkgutil.iter_modules(package.__path__))
    return sorted(names)


class _CoachFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes the ``rl_coach.*`` modules that are not files of the ``rl_coach`` package.

    It sits at the end of ``sys.meta_path``, so the package's real files are found first.
    """

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("rl_coach."):
            return None
        if fullname not in _made_modules() and not _is_package(fullname):
            raise ImportError(
                f"rlframe does not provide {fullname!r}. The Coach modules a preset or launcher can import are: "
                f"{', '.join(provided_modules())}."
            )
        return importlib.machinery.ModuleSpec(fullname, self, is_package=_is_package(fullname))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        for source in ALIASES.get(spec.name, ()):
            real = importlib.import_module(source)
            for name, value in vars(real).items():
                if not name.startswith("_"):
                    setattr(module, name, value)
        for name, value in EXTRA_NAMES.get(spec.name, {}).items():
            setattr(module, name, value)
        for name, instead in NOT_PROVIDED.get(spec.name, {}).items():
            setattr(module, name, _not_provided_class(spec.name, name, instead))
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


_FINDER = _CoachFinder()


def install() -> None:
    """Answer ``rl_coach.*`` imports that no file of the ``rl_coach`` package answers (idempotent)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)
