"""The parameter reference, generated from the parameter classes themselves: ``rlframe-params [CLASS]``.

Every :class:`~rlframe.parameters.Parameters` subclass is found generically: in every module of the packages that
the ``rl_coach`` import table (:data:`rlframe.coach_compat.ALIASES`) maps Coach's modules to (so a new agent in
``rlframe/agents/`` or a new head in ``rlframe/networks/`` appears without editing this module), and as the class
of any parameter object a freshly constructed one holds. Graph managers are left out: they run presets rather
than being parameter objects a preset fills in.

For each field the reference shows its name, its default (the value a freshly constructed object holds), its unit
and its meaning, read from the ``:param <field>: <meaning>`` line of the class docstring, or of the nearest base
class that documents it. A meaning that ends in a parenthesised unit (``(environment steps)``, ``(seconds)``) has
the unit shown in its own column; a default that is a step unit (``EnvironmentSteps(100)``) names its own.

``python -m rlframe.parameter_reference --write docs/parameters.md`` regenerates the committed reference.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
import sys
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterator, Sequence

from rlframe.coach_compat import ALIASES
from rlframe.core_types import StepMethod
from rlframe.errors import UnknownParameterError, closest
from rlframe.parameters import Parameters

#: The command that writes the committed reference (said at its top and by the test that compares them).
WRITE_COMMAND = "python -m rlframe.parameter_reference --write docs/parameters.md"

#: Shown as the default of a constructor argument that has none.
REQUIRED = "required"

#: Words a unit is made of: a meaning ending in "(<only these words>)" has that unit.
_UNIT_WORDS = frozenset(
    "environment environments steps step episodes episode seconds second gradient updates update transitions "
    "transition training epochs epoch agent decisions decision actions per copy copies rows frames fps "
    "observations of the reward units schedule".split()
)
_TRAILING_PARENTHESIS = re.compile(r"\s*\(([^()]*)\)\.?$")
_PARAM_LINE = re.compile(r"^(\s*):param\s+(\w+):\s*(.*)$")
_MAX_INLINE_REPR = 90


class _Placeholder:
    """Stands in for a constructor argument without a default, so its field can be shown as required."""

    def __repr__(self) -> str:
        return REQUIRED


@dataclass(frozen=True)
class Field:
    """One documented field of a parameter class."""

    name: str
    default: str
    unit: str
    meaning: str


@dataclass(frozen=True)
class ClassReference:
    """One parameter class: where it lives, how a preset imports it, and its fields."""

    cls: type
    coach_module: str | None
    fields: tuple[Field, ...]
    undocumented: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.cls.__name__

    @property
    def summary(self) -> str:
        """The first sentence of the class docstring."""
        paragraph = " ".join((inspect.getdoc(self.cls) or "").split("\n\n")[0].split())
        return markdown_text(re.split(r"(?<=\.) (?=[A-Z`])", paragraph, maxsplit=1)[0])


# ---- discovery ------------------------------------------------------------------------------------------
def _alias_modules() -> list[str]:
    """The rlframe modules the ``rl_coach`` table names, then every module of the packages they sit in."""
    named = sorted({module for sources in ALIASES.values() for module in sources})
    found = list(named)
    for package_name in sorted({m.rsplit(".", 1)[0] for m in named if m.count(".") >= 2}):
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            name = f"{package_name}.{info.name}"
            if not info.ispkg and name not in found:
                found.append(name)
    return sorted(found)


def _is_graph_manager(cls: type) -> bool:
    from rlframe.graph_managers.graph_manager import GraphManager

    return issubclass(cls, GraphManager)


def _parameter_values(value: Any) -> Iterator[Parameters]:
    """The parameter objects ``value`` is or holds (in dicts, lists and tuples)."""
    if isinstance(value, Parameters):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _parameter_values(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _parameter_values(item)


def discover() -> list[type]:
    """Every parameter class: those defined in the discovered modules and those their fresh objects hold.

    Sorted by module, then by definition order in the module.
    """
    classes: set[type] = set()
    for module_name in _alias_modules():
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, Parameters) and value.__module__ == module_name:
                classes.add(value)
    pending = list(classes)
    while pending:
        obj = _fresh(pending.pop())
        if obj is None:
            continue
        for _, value in obj.items():
            for held in _parameter_values(value):
                if type(held) not in classes:
                    classes.add(type(held))
                    pending.append(type(held))
    classes = {c for c in classes if c is not Parameters and not _is_graph_manager(c)}
    return sorted(classes, key=_definition_order)


def _definition_order(cls: type) -> tuple[str, int]:
    """(module, position of the class among the module's names): a module's names keep their definition order."""
    names = list(vars(sys.modules[cls.__module__]))
    return cls.__module__, names.index(cls.__name__) if cls.__name__ in names else len(names)


# ---- one class ------------------------------------------------------------------------------------------
def _constructor_parameters(cls: type) -> Iterator[tuple[str, inspect.Parameter]]:
    """The constructor's parameters; read from ``__init__`` itself, because the locking metaclass's ``__call__``
    hides them from ``inspect.signature(cls)``."""
    yield from inspect.signature(cls.__init__).parameters.items()  # type: ignore[misc]


def _fresh(cls: type) -> Parameters | None:
    """A freshly constructed object, with placeholders for arguments that have no default; None when the
    constructor refuses placeholders (it checks its arguments) or refuses to construct at all."""
    arguments = {
        name: _Placeholder()
        for name, p in _constructor_parameters(cls)
        if name != "self" and p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    try:
        return cls(**arguments)
    except Exception:  # noqa: BLE001 - any refusal means "read the signature instead"
        return None


def _signature_defaults(cls: type) -> dict[str, Any]:
    """Field -> default from the constructor's signature (for a class whose constructor refuses placeholders)."""
    out: dict[str, Any] = {}
    for name, p in _constructor_parameters(cls):
        if name == "self" or p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        out[name] = _Placeholder() if p.default is inspect.Parameter.empty else p.default
    return out


def shown(value: Any) -> str:
    """A default as a preset would write it: enums by name, classes by name, nested parameter objects in full
    when short and as ``Name(...)`` otherwise (their own section lists them)."""
    if isinstance(value, _Placeholder):
        return REQUIRED
    if isinstance(value, Parameters):
        if type(value).__repr__ is not Parameters.__repr__:
            return repr(value)
        inner = ", ".join(f"{k}={shown(v)}" for k, v in value.items())
        text = f"{type(value).__name__}({inner})"
        return text if len(text) <= _MAX_INLINE_REPR else f"{type(value).__name__}(...)"
    if isinstance(value, Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, dict):
        return "{" + ", ".join(f"{shown(k) if isinstance(k, type) else repr(k)}: {shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(shown(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def param_lines(cls: type) -> dict[str, str]:
    """``{field: meaning}`` from the ``:param field: meaning`` lines of ``cls``'s own docstring (continuation lines,
    indented deeper than the ``:param`` line, are joined)."""
    doc = cls.__dict__.get("__doc__") or ""
    out: dict[str, str] = {}
    current: str | None = None
    indent = 0
    for line in inspect.cleandoc(doc).splitlines():
        match = _PARAM_LINE.match(line)
        if match:
            current, indent = match.group(2), len(match.group(1))
            out[current] = match.group(3).strip()
        elif current is not None and line.strip() and len(line) - len(line.lstrip()) > indent:
            out[current] += " " + line.strip()
        else:
            current = None
    return out


def meaning_of(cls: type, field: str) -> str | None:
    """The field's meaning from the nearest class in ``cls``'s MRO that documents it (None: none does)."""
    for klass in cls.__mro__:
        meaning = param_lines(klass).get(field)
        if meaning is not None:
            return meaning
    return None


def split_unit(meaning: str, default: Any) -> tuple[str, str]:
    """(meaning, unit): a trailing ``(environment steps)`` moves to the unit; a step-unit default names its own."""
    unit = ""
    match = _TRAILING_PARENTHESIS.search(meaning)
    if match and match.group(1).strip() and set(match.group(1).lower().replace(",", " ").split()) <= _UNIT_WORDS:
        unit = match.group(1).strip()
        meaning = meaning[: match.start()].rstrip() + ("." if meaning.endswith(".") else "")
    if not unit and isinstance(default, StepMethod):
        unit = type(default).__name__
    return meaning, unit


def coach_module_of(cls: type) -> str | None:
    """The first ``rl_coach`` module (in the import table's order) that offers ``cls`` from its own module."""
    for coach_module, sources in ALIASES.items():
        if cls.__module__ in sources:
            return coach_module
    return None


def reference(cls: type) -> ClassReference:
    """The documented fields of one parameter class."""
    obj = _fresh(cls)
    values = dict(obj.items()) if obj is not None else _signature_defaults(cls)
    fields: list[Field] = []
    undocumented: list[str] = []
    for name, value in values.items():
        meaning = meaning_of(cls, name)
        if meaning is None:
            undocumented.append(name)
            meaning = ""
        meaning, unit = split_unit(meaning, value)
        fields.append(Field(name, shown(value), unit, meaning))
    return ClassReference(cls, coach_module_of(cls), tuple(fields), tuple(undocumented))


# ---- markdown -------------------------------------------------------------------------------------------
_ROLE = re.compile(r":\w+:`~?([^`]+)`")


def markdown_text(text: str) -> str:
    """Docstring markup as markdown: ``code`` -> `code`, :class:`~a.B` -> `a.B`."""
    return _ROLE.sub(lambda m: f"`{m.group(1)}`", text).replace("``", "`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _anchor(name: str) -> str:
    return name.lower()


def class_markdown(ref: ClassReference) -> str:
    """One class as a markdown section: where it comes from, its summary and a table of its fields."""
    bases = [b.__name__ for b in ref.cls.__bases__ if issubclass(b, Parameters) and b is not Parameters]
    lines = [f"## {ref.name}", ""]
    source = f"`{ref.cls.__module__}`"
    if ref.coach_module:
        source += f"; in a preset: `from {ref.coach_module} import {ref.name}`"
    if bases:
        source += "; extends " + ", ".join(f"[{b}](#{_anchor(b)})" for b in bases)
    lines += [source, ""]
    if ref.summary:
        lines += [ref.summary, ""]
    if not ref.fields:
        lines += ["No fields of its own.", ""]
        return "\n".join(lines)
    lines += ["| field | default | unit | meaning |", "|---|---|---|---|"]
    for f in ref.fields:
        lines.append(f"| `{f.name}` | `{_cell(f.default)}` | {_cell(f.unit)} | {_cell(markdown_text(f.meaning))} |")
    lines.append("")
    return "\n".join(lines)


def class_list_markdown(refs: Sequence[ClassReference], links: bool = True) -> str:
    """The classes, grouped by module, each with its summary (and a link to its section when ``links``)."""
    lines: list[str] = []
    module = None
    for ref in refs:
        if ref.cls.__module__ != module:
            module = ref.cls.__module__
            lines += ["", f"- `{module}`"]
        name = f"[{ref.name}](#{_anchor(ref.name)})" if links else f"`{ref.name}`"
        lines.append(f"  - {name}: {ref.summary}")
    return "\n".join(lines).lstrip("\n") + "\n"


def full_markdown(refs: Sequence[ClassReference]) -> str:
    """The whole reference: a header, the class list, then every class's section."""
    header = (
        "# Parameter reference\n\n"
        "Generated from the parameter classes' docstrings by\n"
        f"`{WRITE_COMMAND}`; do not edit by hand (a test fails when\n"
        "this file differs from what the code generates). `rlframe-params CLASS` prints one class.\n\n"
        "Defaults are the values of a freshly constructed object (`required`: a constructor argument without\n"
        "a default). Step units (`EnvironmentSteps`, `EnvironmentEpisodes`, `TrainingSteps`) are explained in\n"
        "[presets.md](presets.md#step-units). How to write a preset: [presets.md](presets.md).\n\n"
        "## Classes\n\n"
    )
    return header + class_list_markdown(refs) + "\n" + "\n".join(class_markdown(r) for r in refs)


def all_references() -> list[ClassReference]:
    return [reference(cls) for cls in discover()]


def find_class(name: str, refs: Sequence[ClassReference]) -> ClassReference:
    """The class named ``name`` (case-insensitive; a dotted ``module.Class`` also matches)."""
    wanted = name.lower()
    for ref in refs:
        if wanted in (ref.name.lower(), f"{ref.cls.__module__}.{ref.name}".lower()):
            return ref
    by_lower = {ref.name.lower(): ref.name for ref in refs}
    clause = closest(wanted, list(by_lower))
    for lower, proper in by_lower.items():
        clause = clause.replace(repr(lower), repr(proper))
    raise UnknownParameterError(
        f"No parameter class named {name!r}.{clause} Run rlframe-params without an argument for the list."
    )


# ---- command line ---------------------------------------------------------------------------------------
def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="rlframe-params", allow_abbrev=False,
        description="Print the parameter classes a preset can use, or one class's fields (name, default, unit, "
        "meaning), as markdown.",
    )
    parser.add_argument("cls", nargs="?", metavar="CLASS",
                        help="a parameter class, case-insensitive (DQNAgentParameters, linearschedule, ...)")
    parser.add_argument("--write", metavar="FILE", help="write the full reference to FILE (docs/parameters.md)")
    args = parser.parse_args(argv)
    refs = all_references()
    if args.write:
        with open(args.write, "w", encoding="utf-8") as out:
            out.write(full_markdown(refs))
        print(f"wrote {args.write} ({len(refs)} classes)")
    elif args.cls:
        print(class_markdown(find_class(args.cls, refs)), end="")
    else:
        print(class_list_markdown(refs, links=False), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rlframe-params``."""
    from rlframe.cli import run_cli

    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
