"""``rl_coach.*`` imports for Coach presets, answered by rlframe's classes.

:func:`install` adds an import hook: ``from rl_coach.agents.dqn_agent import DQNAgentParameters`` then
returns rlframe's class. The hook is installed only while rlframe loads a preset, and it never shadows a
real ``rl_coach`` that is already imported. Each Coach module maps to the rlframe modules whose public
names it offers; a Coach module rlframe does not provide fails with a list of those it does.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from contextlib import contextmanager
from typing import Iterator, Sequence

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
    "rl_coach.agents.dqn_agent": ("rlframe.agents.dqn",),
    "rl_coach.agents.ddqn_agent": ("rlframe.agents.ddqn",),
    "rl_coach.agents.ddqn_bcq_agent": ("rlframe.agents.ddqn_bcq",),
    "rl_coach.exploration_policies.e_greedy": ("rlframe.exploration.parameters",),
    "rl_coach.exploration_policies.additive_noise": ("rlframe.exploration.parameters",),
    "rl_coach.exploration_policies.categorical": ("rlframe.exploration.parameters",),
    "rl_coach.schedules": ("rlframe.schedules",),
    "rl_coach.architectures.layers": ("rlframe.networks.parameters",),
    "rl_coach.architectures.tensorflow_components.layers": ("rlframe.networks.parameters",),
    "rl_coach.architectures.mxnet_components.layers": ("rlframe.networks.parameters",),
    "rl_coach.architectures.embedder_parameters": ("rlframe.networks.parameters",),
    "rl_coach.architectures.middleware_parameters": ("rlframe.networks.parameters",),
    "rl_coach.architectures.head_parameters": ("rlframe.networks.parameters",),
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


def _is_package(name: str) -> bool:
    return any(alias.startswith(name + ".") for alias in ALIASES)


class _CoachFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "rl_coach" and not fullname.startswith("rl_coach."):
            return None
        if fullname not in ALIASES and not _is_package(fullname):
            provided = ", ".join(sorted(ALIASES))
            raise ImportError(
                f"rlframe does not provide {fullname!r}. The Coach modules a preset can import are: {provided}."
            )
        return importlib.machinery.ModuleSpec(fullname, self, is_package=_is_package(fullname))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        for source in ALIASES.get(spec.name, ()):
            real = importlib.import_module(source)
            for name, value in vars(real).items():
                if not name.startswith("_"):
                    setattr(module, name, value)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


_FINDER = _CoachFinder()


def _is_ours(module: types.ModuleType | None) -> bool:
    spec = getattr(module, "__spec__", None)
    return spec is not None and isinstance(spec.loader, _CoachFinder)


def install() -> bool:
    """Answer ``rl_coach`` imports with rlframe, unless a real ``rl_coach`` is already imported.

    :return: whether this call added the hook (so the caller that added it is the one to remove it).
    """
    existing = sys.modules.get("rl_coach")
    if existing is not None and not _is_ours(existing):
        return False
    if _FINDER in sys.meta_path:
        return False
    sys.meta_path.insert(0, _FINDER)
    return True


def uninstall() -> None:
    """Remove the hook and the ``rl_coach`` modules it made, so a real ``rl_coach`` imported later is not shadowed."""
    while _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [n for n in sys.modules if n == "rl_coach" or n.startswith("rl_coach.")]:
        if _is_ours(sys.modules[name]):
            del sys.modules[name]


@contextmanager
def installed() -> Iterator[None]:
    """The hook for the duration of a ``with`` block (a preset's import); nested uses keep the outer one."""
    added = install()
    try:
        yield
    finally:
        if added:
            uninstall()
