"""The seams, checked on the source itself: every module imports; outside rlframe/agents, code uses an agent only
through the names of rlframe.agents.contract; nothing outside a class touches its underscore names."""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import rlframe
from rlframe.agents.contract import AgentContract, OfflineLearner

pytestmark = pytest.mark.unit

ROOT = Path(rlframe.__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "rlframe").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")])

#: Underscore names of other libraries that rlframe reads on purpose, each with the reason.
THIRD_PARTY_PRIVATE = {
    # MXNet 1.9.1 (the last 1.x release) keeps a Parameter's arrays only in _data/_grad: pointing them at views of one
    # flat buffer is what lets one fused optimiser call update every parameter (networks/optimizer.py).
    ("rlframe/networks/optimizer.py", "_data"), ("rlframe/networks/optimizer.py", "_grad"),
}


def contract_names() -> set[str]:
    names: set[str] = set()
    for protocol in (AgentContract, OfflineLearner):
        for klass in protocol.__mro__:
            if klass.__module__ == "rlframe.agents.contract":
                names |= {n for n in vars(klass) if not n.startswith("_")}
                names |= set(getattr(klass, "__annotations__", {}))
    return names


def test_every_module_imports():
    failed = []
    for info in pkgutil.walk_packages(rlframe.__path__, "rlframe."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # noqa: BLE001 -- the test reports every module that fails, whatever the error
            failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
    assert not failed, "\n".join(failed)


def agent_expressions(tree: ast.AST) -> list[ast.Attribute]:
    """Attribute reads ``<agent>.name`` where ``<agent>`` is a variable or attribute called agent/_agent."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        base = node.value
        named = (isinstance(base, ast.Name) and base.id in ("agent", "_agent")) or (
            isinstance(base, ast.Attribute) and base.attr in ("agent", "_agent"))
        if named:
            found.append(node)
    return found


def test_outside_the_agents_package_agents_are_used_only_through_the_contract():
    allowed = contract_names()
    assert {"act", "observe", "train", "row_statistics", "checkpoint_state", "evaluation_estimates"} <= allowed
    violations = []
    for path in SOURCES:
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("rlframe/agents/"):
            continue
        tree = ast.parse(path.read_text(), relative)
        for node in agent_expressions(tree):
            if node.attr not in allowed:
                violations.append(f"{relative}:{node.lineno}: agent.{node.attr}")
    assert not violations, "not in rlframe.agents.contract:\n" + "\n".join(violations)


#: the public API of named tuples, underscored only so it cannot clash with field names
NAMEDTUPLE_API = {"_asdict", "_replace", "_fields", "_make"}


def test_nothing_outside_a_class_touches_its_underscore_names():
    violations = []
    for path in SOURCES:
        relative = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(), relative)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
                continue
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                continue
            if isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super":
                continue
            if node.attr in NAMEDTUPLE_API or (relative, node.attr) in THIRD_PARTY_PRIVATE:
                continue
            violations.append(f"{relative}:{node.lineno}: {ast.unparse(node)}")
    assert not violations, "underscore names used from outside their class:\n" + "\n".join(violations)


@pytest.mark.parametrize(("preset", "contract"), [("CartPole_DQN", AgentContract), ("CartPole_ClippedPPO", AgentContract),
                                                  ("preset-mountain-car-continuous-clipped-ppo", AgentContract),
                                                  ("CartPole_DDQN_BCQ_BatchRL", OfflineLearner)])
def test_the_shipped_agents_implement_the_contract(preset, contract):
    from rlframe.presets import load_preset

    agent = load_preset(preset).build_agent()
    assert isinstance(agent, contract), f"{type(agent).__name__} does not implement {contract.__name__}"
