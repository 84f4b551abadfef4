"""Changing a preset from the command line, safely.

Three spellings, all resolved against the preset's graph manager and checked before the run starts:

- Coach's ``-cp "heatup_steps=EnvironmentSteps(1000);agent_params.algorithm.discount=0.9"``;
- SageMaker's ``--rl.agent_params.network_wrappers.main.learning_rate 0.001`` and
  ``--rl.improve_steps:EnvironmentSteps 100000`` (``:Type`` wraps the value in a step unit);
- the SageMaker notebooks' shortcut names (``--discount 0.995``, ``--training_freq_env_steps 75000``, ...), for
  any preset, and the same names in a YAML file or a SageMaker ``hyperparameters.json``
  (``--hyperparameters FILE``). Only ``improve_steps`` has a unit that differs between notebooks; see
  :func:`improve_steps_unit`.

Values are parsed with :mod:`ast`, never executed: numbers, strings, booleans (``true``/``True``/``1``),
lists, tuples, dicts, and calls of an allow-list of constructors (step units, schedules, ``Dense``) and
enum members (``MemoryGranularity.Transitions``). A path segment starting with ``__`` is refused. An
unknown name fails with the closest valid names; a value of the wrong type fails saying what is expected.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import yaml

from rlframe.core_types import STEP_UNITS, StepMethod
from rlframe.errors import ParameterValueError, UnknownParameterError, closest
from rlframe.memories.memory import MemoryGranularity
from rlframe.networks.parameters import Dense
from rlframe.parameters import EmbedderScheme, MiddlewareScheme, Parameters
from rlframe.schedules import ConstantSchedule, ExponentialSchedule, LinearSchedule, PieceWiseSchedule, Schedule

CONSTRUCTORS: dict[str, Any] = {
    **STEP_UNITS,
    "ConstantSchedule": ConstantSchedule,
    "LinearSchedule": LinearSchedule,
    "ExponentialSchedule": ExponentialSchedule,
    "PieceWiseSchedule": PieceWiseSchedule,
    "Dense": Dense,
}
ENUMS: dict[str, type[Enum]] = {
    "MemoryGranularity": MemoryGranularity,
    "EmbedderScheme": EmbedderScheme,
    "MiddlewareScheme": MiddlewareScheme,
}


# ---- values -------------------------------------------------------------------------------------------
def _evaluate(node: ast.AST, text: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_evaluate(e, text) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ParameterValueError(f"{text!r}: '**' unpacking is not allowed in a value.")
        return {_evaluate(k, text): _evaluate(v, text) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, text)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Name) and node.id in ("True", "False", "None", "true", "false"):
        return {"True": True, "False": False, "None": None, "true": True, "false": False}[node.id]
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ENUMS:
        enum = ENUMS[node.value.id]
        if node.attr in enum.__members__:
            return enum[node.attr]
        raise ParameterValueError(f"{node.value.id}.{node.attr} does not exist; members: {', '.join(enum.__members__)}.")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CONSTRUCTORS:
        if any(k.arg is None for k in node.keywords):
            raise ParameterValueError(f"{text!r}: '**' unpacking is not allowed in a value.")
        args = [_evaluate(a, text) for a in node.args]
        kwargs = {k.arg: _evaluate(k.value, text) for k in node.keywords if k.arg is not None}
        try:
            return CONSTRUCTORS[node.func.id](*args, **kwargs)
        except Exception as exc:  # the constructors are allow-listed: whatever they raise is about these arguments
            raise ParameterValueError(f"{text!r}: {exc}") from exc
    name = node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else ast.unparse(node)
    what = f"{text!r}" if name == text else f"{text!r}: {name!r}"
    raise ParameterValueError(
        f"{what} is not allowed in a value. Use numbers, strings, True/False, lists, or one of "
        f"{', '.join(CONSTRUCTORS)}, {', '.join(e + '.<member>' for e in ENUMS)}."
    )


def _is_code(tree: ast.AST) -> bool:
    """Whether an expression is meant as code: a call, an enum member, or a ``__`` name. Then it must be an
    allowed value or it is refused; anything else that fails to evaluate is plain text."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            return True
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            return True
        if isinstance(node, ast.Attribute) and (
            node.attr.startswith("__") or (isinstance(node.value, ast.Name) and node.value.id in ENUMS)
        ):
            return True
    return False


def parse_value(text: Any) -> Any:
    """A value from a command-line or YAML string; a string that is no Python literal stays a string.

    Text that happens to parse as an expression (``CartPole-v1`` is ``CartPole - v1``, ``data/train.csv`` a
    division of attributes) is plain text too, as in SageMaker's launcher. A call, an enum member or a ``__``
    name is code: it must be an allowed constructor or enum member, or it is refused (never run).
    """
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError:
        return text
    if _is_code(tree.body):
        return _evaluate(tree.body, stripped)
    try:
        return _evaluate(tree.body, stripped)
    except ParameterValueError:
        return text


def coerce(value: Any, current: Any, where: str) -> Any:
    """``value`` converted to the type of ``current`` (the preset's value), or a ParameterValueError."""
    if current is None or value is None:
        return value
    try:
        return _coerce_to_kind_of(current, value, where)
    except _Mismatch as mismatch:
        raise ParameterValueError(f"{where} expects {mismatch}, got {value!r} ({type(value).__name__}).") from None


class _Mismatch(Exception):
    """``value`` cannot stand for a parameter of this kind; the message says what the parameter expects."""


def _coerce_to_kind_of(current: Any, value: Any, where: str) -> Any:
    """One converter per kind of preset value, most specific first (a bool is an int, a scheme an Enum)."""
    if isinstance(current, bool):
        return _to_bool(value)
    if isinstance(current, int):
        return _to_int(value)
    if isinstance(current, float):
        if _is_number(value):
            return float(value)
        raise _Mismatch("a number")
    if isinstance(current, StepMethod):
        return _to_steps(value, current, where)
    if _is_layer_scheme(current):
        return _to_layer_scheme(value, current)
    if isinstance(current, Enum):
        return _to_enum(value, current)
    if isinstance(current, Schedule):
        return _same_kind(value, Schedule, "a schedule such as LinearSchedule(1.0, 0.01, 10000)")
    if isinstance(current, str):
        return _same_kind(value, str, "a string")
    if isinstance(current, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(current)(value) if isinstance(current, tuple) else list(value)
    return _same_kind(value, type(current), f"a value of type {type(current).__name__}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_kind(value: Any, kind: type, expected: str) -> Any:
    if isinstance(value, kind):
        return value
    raise _Mismatch(expected)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "0", "1"):
        return value.strip().lower() in ("true", "1")
    raise _Mismatch("a boolean (true/false/1/0)")


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _Mismatch("an integer")


def _to_steps(value: Any, current: StepMethod, where: str) -> StepMethod:
    if isinstance(value, StepMethod):
        return value
    if _is_number(value):
        return _step(type(current), value, where)
    raise _Mismatch(f"a step count such as {type(current).__name__}(1000)")


def _to_layer_scheme(value: Any, current: Any) -> Any:
    """``scheme`` takes a named scheme or an explicit layer list (``[Dense(64)]``), whichever the preset used."""
    if isinstance(value, list) and all(isinstance(v, Dense) for v in value):
        return list(value)
    if isinstance(value, str) and isinstance(current, Enum) and _enum_member(type(current), value) is not None:
        return _enum_member(type(current), value)
    same_scheme = not isinstance(current, Enum) or type(value) is type(current)
    if isinstance(value, (EmbedderScheme, MiddlewareScheme)) and same_scheme:
        return value
    kind = type(current).__name__ if isinstance(current, Enum) else "EmbedderScheme/MiddlewareScheme"
    raise _Mismatch(f"a scheme such as {kind}.Medium or a list of layers such as [Dense(64)]")


def _to_enum(value: Any, current: Enum) -> Enum:
    if isinstance(value, type(current)):
        return value
    if isinstance(value, str) and (member := _enum_member(type(current), value)) is not None:
        return member
    raise _Mismatch(f"one of {', '.join(type(current).__name__ + '.' + m for m in type(current).__members__)}")


def _enum_member(enum: type[Enum], name: str) -> Enum | None:
    """The member called ``name`` (SageMaker passes ``Deep`` where a preset writes ``MiddlewareScheme.Deep``),
    matched exactly or else case-insensitively; None when there is none."""
    if name in enum.__members__:
        return enum[name]
    matches = [m for n, m in enum.__members__.items() if n.lower() == name.strip().lower()]
    return matches[0] if len(matches) == 1 else None


def _is_layer_scheme(value: Any) -> bool:
    return isinstance(value, (EmbedderScheme, MiddlewareScheme)) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, Dense) for v in value)
    )


def _step(unit: type[StepMethod], value: Any, where: str) -> StepMethod:
    """``unit(value)``, with a bad count (negative, not a number) reported as the user's mistake."""
    try:
        return unit(value)
    except (TypeError, ValueError) as exc:
        raise ParameterValueError(f"{where}: {exc}.") from exc


# ---- paths --------------------------------------------------------------------------------------------
#: dicts that take new keys (``rl.env_params.additional_simulator_parameters.<key>``); every other dict
#: (``network_wrappers``, ``input_embedders_parameters``) only has the keys the preset gave it
OPEN_DICTS = ("additional_simulator_parameters",)


def _check_segment(segment: Any, path: str) -> None:
    if isinstance(segment, str) and segment.startswith("__"):
        raise ParameterValueError(f"Refusing to set {path!r}: path segments starting with '__' are not allowed.")


def _child(obj: Any, segment: Any, path: str) -> Any:
    _check_segment(segment, path)
    if isinstance(obj, dict):
        if segment not in obj:
            raise UnknownParameterError(
                f"{path}: {segment!r} is not a key here.{closest(str(segment), [str(k) for k in obj])} "
                f"Keys: {', '.join(map(str, obj))}."
            )
        return obj[segment]
    if isinstance(obj, Parameters):
        if not isinstance(segment, str) or segment not in obj.parameter_names():
            names = obj.parameter_names()
            raise UnknownParameterError(
                f"{path}: {type(obj).__name__} has no parameter {segment!r}.{closest(str(segment), names)}"
                f" Valid parameters: {', '.join(names)}."
            )
        return getattr(obj, segment)
    raise UnknownParameterError(f"{path}: cannot look up {segment!r} in a {type(obj).__name__} value.")


def assign(root: Parameters, segments: list[Any], value: Any, path: str) -> None:
    """Set ``root.<segments...> = value`` after checking every segment and the value's type."""
    parent: Any = root
    for segment in segments[:-1]:
        parent = _child(parent, segment, path)
    last = segments[-1]
    if isinstance(parent, dict) and len(segments) > 1 and segments[-2] in OPEN_DICTS and last not in parent:
        # Keyword arguments for the environment: any name the environment's constructor takes is a valid new key.
        _check_segment(last, path)
        parent[last] = value
        return
    current = _child(parent, last, path)
    if isinstance(parent, Parameters) and last not in parent.__dict__:
        # A property (agent_params.agent_class, a schedule's current_value) is derived, not set; say so before
        # complaining about the value's type.
        prop = getattr(type(parent), last, None)
        if isinstance(prop, property) and prop.fset is None:
            raise ParameterValueError(
                f"{path}: {type(parent).__name__}.{last} is computed from other parameters and cannot be set.")
    converted = coerce(value, current, path)
    if isinstance(parent, dict):
        parent[last] = converted
    else:
        setattr(parent, last, converted)


def coach_path_segments(key: str) -> list[Any]:
    """``agent_params.network_wrappers['main'].learning_rate`` ->
    ``['agent_params', 'network_wrappers', 'main', 'learning_rate']``."""
    try:
        node = ast.parse(key.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ParameterValueError(
            f"-cp key {key!r} is not a parameter path such as agent_params.algorithm.discount.") from exc
    segments: list[Any] = []
    while True:
        if isinstance(node, ast.Attribute):
            segments.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            segments.append(node.slice.value)
            node = node.value
        elif isinstance(node, ast.Name):
            segments.append(node.id)
            break
        else:
            raise ParameterValueError(f"-cp key {key!r} is not a parameter path such as agent_params.algorithm.discount.")
    segments.reverse()
    if segments and segments[0] == "graph_manager":
        segments = segments[1:]
    return segments


def apply_custom_parameters(graph_manager: Parameters, text: str) -> None:
    """Apply Coach's ``-cp "key=value;key=value"``."""
    for item in filter(None, (part.strip() for part in text.split(";"))):
        key, sep, raw = item.partition("=")
        if not sep:
            raise ParameterValueError(
                f"-cp entry {item!r} has no '='; write key=value, e.g. agent_params.algorithm.discount=0.9.")
        segments = coach_path_segments(key)
        for segment in segments:
            _check_segment(segment, key.strip())
        try:
            value = parse_value(raw)
        except ParameterValueError as exc:
            raise ParameterValueError(f"-cp {key.strip()}: {exc}") from exc
        assign(graph_manager, segments, value, key.strip())


# ---- SageMaker hyperparameters ------------------------------------------------------------------------
@dataclass(frozen=True)
class Shortcut:
    """A notebook shortcut: the ``rl.`` path it sets and the step unit it wraps the value in (None: none)."""

    path: str
    unit: str | None = None


#: every SageMaker notebook's shortcut name (sagemaker-examples.md 3.3), accepted for any preset. ``improve_steps``
#: is listed without a unit: :func:`improve_steps_unit` decides it.
SHORTCUTS: dict[str, Shortcut] = {
    "discount": Shortcut("agent_params.algorithm.discount"),
    "evaluation_episodes": Shortcut("evaluation_steps", "EnvironmentEpisodes"),
    "improve_steps": Shortcut("improve_steps"),
    "evaluation_freq_env_steps": Shortcut("steps_between_evaluation_periods", "EnvironmentSteps"),
    "gae_lambda": Shortcut("agent_params.algorithm.gae_lambda"),
    "training_freq_env_steps": Shortcut("agent_params.algorithm.num_consecutive_playing_steps", "EnvironmentSteps"),
    "training_learning_rate": Shortcut("agent_params.network_wrappers.main.learning_rate"),
    "training_batch_size": Shortcut("agent_params.network_wrappers.main.batch_size"),
    "training_epochs": Shortcut("agent_params.algorithm.optimization_epochs"),
    # --dataset path.csv: the CSV a batch-RL preset trains on (its CsvDataset's is_episodic is kept)
    "dataset": Shortcut("agent_params.memory.load_memory_from_file_path", "CsvDataset"),
}
#: the unit each notebook's launcher gives ``improve_steps`` (Mountain Car counts environment steps)
NOTEBOOK_IMPROVE_UNITS = {"mountain_car": "EnvironmentSteps", "cartpole": "TrainingSteps", "batch": "TrainingSteps"}
#: the notebooks' preset names and the notebook each belongs to
NOTEBOOK_PRESETS = {
    "preset-mountain-car-continuous-clipped-ppo": "mountain_car",
    "preset-mountain-car-dqn": "mountain_car",
    "preset-cartpole-clippedppo": "cartpole",
    "preset-cartpole-dqn": "cartpole",
    "preset-cartpole-ddqnbcq": "batch",
    "preset-cartpole-ddqnbcq-env": "batch",
}
# ``training_freq_env_steps`` also sets these (the Mountain Car launcher's ties).
TIED_TO_TRAINING_FREQ = (
    "agent_params.algorithm.num_steps_between_copying_online_weights_to_target",
    "steps_between_evaluation_periods",
)
#: hyperparameters that change no parameter but what happens after training (kept in ``Hyperparameters.recorded``):
#: ``save_model=1`` exports the trained policy (``rlframe-train``: ``<experiment>/model``; SageMaker: ``/opt/ml/model``)
RECORDED = ("save_model",)
#: the hyperparameter that names the preset in a SageMaker job (``RLCOACH_PRESET``)
PRESET_HYPERPARAMETER = "RLCOACH_PRESET"


def is_sagemaker_internal(name: str) -> bool:
    """SageMaker's own entries of ``hyperparameters.json`` (``sagemaker_program``, ``sagemaker_job_name``, ...,
    and the tuner's ``_tuning_objective_metric``), which are no user hyperparameters."""
    return name.startswith("sagemaker_") or name == "_tuning_objective_metric"


def read_hyperparameters_file(path: str) -> dict[str, Any]:
    """The flat ``name -> value`` map of a YAML file or a SageMaker ``hyperparameters.json`` (JSON is YAML too),
    values as written (callers decode or encode them). Raises ParameterValueError naming the file and the fix."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ParameterValueError(f"Cannot read hyperparameters file {path!r}: {exc.strerror or exc}.") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ParameterValueError(
            f"Hyperparameters file {path!r} is neither JSON nor YAML{at}: write a flat map of name: value."
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterValueError(
            f"Hyperparameters file {path!r} holds a {type(data).__name__}; write a flat map of name: value."
        )
    return {str(k): v for k, v in data.items()}


def decode_sagemaker_value(value: Any) -> Any:
    """A ``hyperparameters.json`` value as SageMaker's toolkit reads it: the SDK JSON-encodes every value into a
    string, so a string is JSON-decoded (``"0.9"`` -> 0.9, ``"\"ppo\""`` -> ``"ppo"``, ``"true"`` -> True) and kept
    as it is when it is no JSON (``"ppo"``, ``"True"``). Other values pass through."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def improve_steps_unit(graph_manager: Any, notebook: str | None, preset_name: str | None) -> str:
    """The step unit of the ``improve_steps`` shortcut, whose meaning differs between the notebooks.

    ``notebook`` (``--shortcuts``, or the preset's ``HYPERPARAMETER_SHORTCUTS``) decides when given; else the
    notebook whose preset ``preset_name`` is; else the unit the preset's own ``improve_steps`` uses, so a
    copied or renamed preset keeps its meaning. ``rl.improve_steps:Type`` always names the unit explicitly.
    """
    if notebook is None and preset_name is not None:
        notebook = NOTEBOOK_PRESETS.get(preset_name.lower())
    if notebook is not None:
        return NOTEBOOK_IMPROVE_UNITS[notebook]
    current = getattr(graph_manager, "improve_steps", None)
    return type(current).__name__ if isinstance(current, StepMethod) else "TrainingSteps"


@dataclass
class Hyperparameters:
    """Hyperparameters applied to a graph manager, and those recorded for what follows the run (:data:`RECORDED`)."""

    applied: dict[str, Any] = field(default_factory=dict)
    recorded: dict[str, Any] = field(default_factory=dict)

    @property
    def save_model(self) -> bool:
        """``save_model=1``: export the trained policy after the run."""
        return self.recorded.get("save_model") == 1


def _typed_path(text: str, name: str) -> tuple[list[str], str | None]:
    """``a.b.c:Unit`` -> (['a', 'b', 'c'], 'Unit'), checked; ``name`` is what the user wrote, for messages."""
    path, _, unit = text.partition(":")
    if unit and unit not in STEP_UNITS:
        raise ParameterValueError(
            f"Hyperparameter {name!r}: unknown type {unit!r}.{closest(unit, STEP_UNITS)} Use one of {', '.join(STEP_UNITS)}."
        )
    segments = path.split(".")
    for segment in segments:
        _check_segment(segment, name)
        if not segment:
            raise ParameterValueError(f"Hyperparameter {name!r} has an empty path segment.")
    return segments, unit or None


def _wrap(value: Any, unit: str | None, name: str, current: Any = None) -> Any:
    if unit is None:
        return value
    if unit == "CsvDataset":
        from rlframe.memories.dataset import CsvDataset

        return CsvDataset(str(value), is_episodic=getattr(current, "is_episodic", True))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterValueError(f"Hyperparameter {name!r} expects a number of {unit}, got {value!r}.")
    return _step(STEP_UNITS[unit], value, f"Hyperparameter {name!r}")


def apply_path_hyperparameter(root: Parameters, path: str, value: Any, name: str) -> None:
    """Apply one hyperparameter addressed by ``path`` (``a.b.c[:Type]``, relative to ``root``) as
    ``rl.<path>[:Type]`` is to the graph manager. ``name`` is the hyperparameter as the user wrote it."""
    segments, unit = _typed_path(path, name)
    assign(root, segments, _wrap(parse_value(value), unit, name), name)


def apply_hyperparameters(graph_manager: Parameters, values: dict[str, Any], notebook: str | None = None,
                          preset_name: str | None = None) -> Hyperparameters:
    """Apply SageMaker-style hyperparameters: ``rl.<path>[:Type]`` or any notebook's shortcut name.

    :param notebook: ``mountain_car``, ``cartpole`` or ``batch``: the notebook whose ``improve_steps`` unit
        applies; None decides by ``preset_name`` or the preset itself (:func:`improve_steps_unit`).
    :param preset_name: the preset's name (its file name without ``.py``).
    """
    if notebook is not None and notebook not in NOTEBOOK_IMPROVE_UNITS:
        raise ParameterValueError(f"Unknown shortcut set {notebook!r}; use one of {', '.join(NOTEBOOK_IMPROVE_UNITS)}.")
    result = Hyperparameters()
    tied_value = None
    for name, raw in values.items():
        if is_sagemaker_internal(name):
            continue
        value = parse_value(raw)
        if name in RECORDED:
            # SageMaker's launcher reads it as an int flag; true/false/1/0 are accepted, stored as 0 or 1.
            result.recorded[name] = int(coerce(value, False, name))
            continue
        where = name
        if name.startswith("rl."):
            segments, unit = _typed_path(name[3:], name)
        elif name in SHORTCUTS:
            shortcut = SHORTCUTS[name]
            segments = shortcut.path.split(".")
            unit = improve_steps_unit(graph_manager, notebook, preset_name) if name == "improve_steps" else shortcut.unit
            # Name the path too: a shortcut for another algorithm (gae_lambda on DQN) fails on a name the user never typed.
            where = f"{name} (rl.{shortcut.path}{':' + unit if unit else ''})"
            if name == "training_freq_env_steps":
                tied_value = value
        else:
            options = list(SHORTCUTS) + list(RECORDED)
            raise UnknownParameterError(
                f"Unknown hyperparameter {name!r}.{closest(name, options)} The notebooks' shortcuts are "
                f"{', '.join(options)}; or write rl.<path>[:Type], e.g. rl.agent_params.algorithm.discount."
            )
        current = graph_manager.agent_params.memory.load_memory_from_file_path if unit == "CsvDataset" else None
        assign(graph_manager, segments, _wrap(value, unit, name, current), where)
        result.applied[name] = value
    if tied_value is not None:
        for path in TIED_TO_TRAINING_FREQ:
            assign(graph_manager, path.split("."), _wrap(tied_value, "EnvironmentSteps", "training_freq_env_steps"), path)
    return result
