"""What answers ``/invocations``: the built-in handler, or a user's handler module that replaces it.

A user module is found, in this order, as ``--entry-point FILE``; as ``$SAGEMAKER_PROGRAM`` in ``MODEL_DIR/code``;
as ``MODEL_DIR/code/inference.py``. ``MODEL_DIR/code`` (or the entry point's folder) is put on ``sys.path`` first,
and ``MODEL_DIR/code/requirements.txt`` is pip-installed before the module is imported, as SageMaker's inference
toolkit does. The module defines, as the SageMaker MXNet/PyTorch serving containers expect:

- ``model_fn(model_dir)`` -> model, called once per worker (optional: the built-in :class:`PolicyModel`);
  optional ``pre_model_fn(model_dir)`` before it and ``model_warmup_fn(model_dir, model)`` after it;
- either ``transform_fn(model, body, content_type, accept)`` -> body, or ``(body, content_type)``,
- or any of ``input_fn(body, content_type)`` -> data, ``predict_fn(data, model)`` -> prediction and
  ``output_fn(prediction, accept)`` -> body or ``(body, content_type)``; a missing one is the built-in one.

Each function may take one more argument, a :class:`HandlerContext`. ``application/json`` and ``text/csv`` bodies
arrive as ``str``, others as ``bytes``; ``content_type`` and ``accept`` are the request's headers as sent, Accept
falling back to ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` when missing or ``*/*``. An exception with an integer
``status_code`` attribute (as the toolkit's ``GenericInferenceToolkitError``) answers with that status; any other
is a 500 with its one-line message.
"""
from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping, Protocol

from rlframe.errors import RlframeError
from rlframe.export.layout import CODE
from rlframe.integrations.serving.codecs import (
    CONTENT_TYPES,
    JSON,
    TEXT_TYPES,
    PredictionEncoder,
    RequestError,
    action_option,
    choose_accept,
    custom_attributes,
    decode,
    encode_array,
    media_type,
    unsupported_content_type,
)
from rlframe.integrations.serving.model import PolicyModel, Prediction, one_line
from rlframe.module_files import import_file

PROGRAM_VARIABLE = "SAGEMAKER_PROGRAM"
DEFAULT_PROGRAM = "inference.py"
_STEPS = ("input_fn", "predict_fn", "output_fn")


class HandlerError(RlframeError):
    """A user's handler module that cannot be found, installed, imported or used."""


@dataclass(frozen=True)
class Request:
    """One ``/invocations`` call: the body and the headers a handler may read (None when absent)."""

    body: bytes
    content_type: str | None
    accept: str | None
    custom_attributes: str | None


@dataclass(frozen=True)
class Response:
    """A handler's answer: the body and its media type."""

    body: bytes
    content_type: str


class Handler(Protocol):
    """Answers requests; ``inline`` says that a small request may run on the event loop (it never blocks long)."""

    inline: bool

    def invoke(self, request: Request) -> Response: ...


class BuiltinHandler:
    """The policy of ``model.onnx``: decode, one batched forward pass, encode (see :mod:`.codecs`).

    The action is greedy unless the request asks for ``action=sample`` in ``X-Amzn-SageMaker-Custom-Attributes`` or
    ``"action": "sample"`` beside a JSON body's ``"instances"`` (which wins).
    """

    inline = True

    def __init__(self, model: PolicyModel, default_accept: str) -> None:
        self.model = model
        self.default_accept = default_accept
        self._encoder = PredictionEncoder(model.metadata)

    def invoke(self, request: Request) -> Response:
        content_type = media_type(request.content_type) or JSON
        if content_type not in CONTENT_TYPES:  # said before a wrong Accept is
            raise unsupported_content_type(content_type)
        accept = choose_accept(request.accept, self.default_accept)
        observations = decode(request.body, content_type, self.model.metadata.observation_shape)
        action = observations.action
        if action is None and request.custom_attributes:
            requested = custom_attributes(request.custom_attributes).get("action")
            if requested is not None:
                action = action_option(requested, "action in X-Amzn-SageMaker-Custom-Attributes")
        prediction = self.model.predict(observations.values, sample=action == "sample")
        return Response(self._encoder.encode(prediction, accept), accept)


@dataclass
class HandlerContext:
    """What a user's function gets as its trailing ``context`` argument.

    :param model_dir: the model directory.
    :param request_headers: ``content-type`` and ``accept`` as the functions get them (empty for ``model_fn`` and
        its hooks).
    :param custom_attributes: ``X-Amzn-SageMaker-Custom-Attributes`` as sent (None when absent).
    :param system_properties: ``{"model_dir": ..., "gpu_id": None}``, the keys of the toolkit's context.
    """

    model_dir: str
    request_headers: dict[str, str] = field(default_factory=dict)
    custom_attributes: str | None = None
    system_properties: dict[str, Any] = field(default_factory=dict)


class _Function:
    """A user's function called with its arguments, plus the context when it takes one more."""

    def __init__(self, module: ModuleType, name: str, arity: int) -> None:
        self.name = name
        self._function = getattr(module, name)
        self._takes_context = _takes(self._function, arity, f"{_module_name(module)}: {name}")

    def __call__(self, context: HandlerContext, *args: Any) -> Any:
        return self._function(*args, context) if self._takes_context else self._function(*args)


def _takes(function: Callable[..., Any], arity: int, where: str) -> bool:
    """Whether ``function`` takes the trailing context (``arity + 1`` positional parameters, as SageMaker's toolkit
    counts them); raises :class:`HandlerError` when it takes neither ``arity`` nor ``arity + 1``."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False  # no signature to read (a builtin): called with the plain arguments
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return False
    count = sum(p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                for p in parameters)
    if count not in (arity, arity + 1):
        raise HandlerError(f"{where} takes {count} arguments; it must take {arity} (and may take one more, the "
                           "context).")
    return count == arity + 1


class UserHandler:
    """A user's handler module in place of the built-in handler (see the module docstring)."""

    inline = False  # the user's code may take any time: it never runs on the event loop

    def __init__(self, module: ModuleType, model_dir: Path, default_accept: str) -> None:
        name = _module_name(module)
        self.module = module
        self.model_dir = model_dir
        self.default_accept = default_accept
        defined = [step for step in _STEPS if callable(getattr(module, step, None))]
        if callable(getattr(module, "transform_fn", None)) and defined:
            raise HandlerError(f"{name} defines both transform_fn and {', '.join(defined)}: define transform_fn alone, "
                               "or input_fn/predict_fn/output_fn (as SageMaker's inference toolkit requires).")
        self._transform = _Function(module, "transform_fn", 4) if callable(getattr(module, "transform_fn", None)) else None
        self._steps = {step: _Function(module, step, 2) for step in defined}
        hooks = {hook: _Function(module, hook, arity) for hook, arity in
                 (("pre_model_fn", 1), ("model_fn", 1), ("model_warmup_fn", 2)) if callable(getattr(module, hook, None))}
        context = HandlerContext(str(model_dir), system_properties={"model_dir": str(model_dir), "gpu_id": None})
        if "pre_model_fn" in hooks:
            _call(hooks["pre_model_fn"], name, context, str(model_dir))
        if "model_fn" in hooks:
            self.model = _call(hooks["model_fn"], name, context, str(model_dir))
        else:
            self.model = PolicyModel(model_dir)
        if "model_warmup_fn" in hooks:
            _call(hooks["model_warmup_fn"], name, context, str(model_dir), self.model)
        self._encoder = PredictionEncoder(self.model.metadata) if isinstance(self.model, PolicyModel) else None

    def invoke(self, request: Request) -> Response:
        content_type = request.content_type or JSON
        accept = request.accept
        if not accept or accept.strip() == "*/*":
            accept = self.default_accept
        body: bytes | str = request.body
        if media_type(content_type) in TEXT_TYPES:
            try:
                body = request.body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RequestError(400, f"The {media_type(content_type)} body is not UTF-8 text ({exc}).") from None
        context = HandlerContext(str(self.model_dir), {"content-type": content_type, "accept": accept},
                                 request.custom_attributes, {"model_dir": str(self.model_dir), "gpu_id": None})
        if self._transform is not None:
            result = self._transform(context, self.model, body, content_type, accept)
        else:
            data = self._run("input_fn", self._input, context, body, content_type)
            prediction = self._run("predict_fn", self._predict, context, data, self.model)
            result = self._run("output_fn", self._output, context, prediction, accept)
        return _response(result, accept)

    def _run(self, step: str, default: Callable[..., Any], context: HandlerContext, *args: Any) -> Any:
        function = self._steps.get(step)
        return function(context, *args) if function is not None else default(*args)

    def _input(self, body: bytes | str, content_type: str) -> Any:
        shape = self.model.metadata.observation_shape if isinstance(self.model, PolicyModel) else None
        return decode(body, media_type(content_type), shape).values

    def _predict(self, data: Any, model: Any) -> Any:
        return model.predict(data) if isinstance(model, PolicyModel) else model(data)

    def _output(self, prediction: Any, accept: str) -> Any:
        chosen = choose_accept(accept, self.default_accept)
        if isinstance(prediction, Prediction) and self._encoder is not None:
            return self._encoder.encode(prediction, chosen), chosen
        return encode_array(prediction, chosen), chosen


def _call(function: _Function, module: str, context: HandlerContext, *args: Any) -> Any:
    """A start-up hook; its failure is one line naming the module, the line in it and the function."""
    try:
        return function(context, *args)
    except RlframeError:
        raise
    except Exception as exc:
        raise HandlerError(f"{_where(exc, module)}: {function.name} raised {one_line(exc)}") from exc


def _where(exc: BaseException, path: str) -> str:
    """``path line N``: the last line of the module ``path`` that the exception went through (``path`` alone when
    none did)."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == path]
    return f"{path} line {lines[-1]}" if lines else path


def _response(result: Any, accept: str) -> Response:
    """A handler's result (a body, or ``(body, content_type)``) as a :class:`Response`."""
    body, content_type = result if isinstance(result, tuple) and len(result) == 2 else (result, accept)
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    if not isinstance(body, bytes):
        raise TypeError(f"the handler returned a {type(body).__name__} body: return str or bytes (or (body, "
                        "content_type))")
    return Response(body, str(content_type))


def _module_name(module: ModuleType) -> str:
    return getattr(module, "__file__", None) or module.__name__


# ---- finding and loading the handler -----------------------------------------------------------------------------
@dataclass(frozen=True)
class HandlerSource:
    """Where a server's handler comes from: ``model_dir`` and the user module's path (None: built-in).

    Picklable, so that each worker process loads its own copy (:meth:`load`).
    """

    model_dir: Path
    user_module: Path | None
    default_accept: str

    @classmethod
    def find(cls, model_dir: Path, entry_point: str | None, default_accept: str,
             environ: Mapping[str, str] = os.environ) -> "HandlerSource":
        """The handler a server of ``model_dir`` uses (see the module docstring); raises :class:`HandlerError`
        for a named module that is not there."""
        code = model_dir / CODE
        if entry_point:
            path = Path(entry_point).absolute()
            if not path.is_file():
                raise HandlerError(f"--entry-point {entry_point}: no such file; give the handler module's path.")
            return cls(model_dir, path, default_accept)
        program = environ.get(PROGRAM_VARIABLE)
        if program:
            path = code / program
            if not path.is_file():
                present = sorted(p.name for p in code.glob("*.py")) if code.is_dir() else []
                holds = f"it holds {', '.join(present)}" if present else "it holds no Python module"
                raise HandlerError(f"{PROGRAM_VARIABLE}={program}, but {path} is not there ({holds}): put the handler "
                                   f"module in {code}, or unset {PROGRAM_VARIABLE}.")
            return cls(model_dir, path, default_accept)
        default = code / DEFAULT_PROGRAM
        return cls(model_dir, default if default.is_file() else None, default_accept)

    def describe(self) -> str:
        return "the built-in handler" if self.user_module is None else f"the handler module {self.user_module}"

    def install_requirements(self) -> None:
        """``pip install -r MODEL_DIR/code/requirements.txt`` when there is one (before a user module is imported,
        as SageMaker's inference toolkit does); a failure is one line."""
        requirements = self.model_dir / CODE / "requirements.txt"
        if self.user_module is None or not requirements.is_file():
            return
        print(f"rlframe-serve: installing {requirements}", flush=True)
        result = subprocess.run([sys.executable, "-m", "pip", "install", "-r", str(requirements)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            errors = [line.strip() for line in result.stderr.splitlines() if line.startswith("ERROR:")]
            said = errors[-1] if errors else f"pip exited with status {result.returncode}"
            raise HandlerError(f"Installing the packages of {requirements} failed: {said}. Fix requirements.txt.")

    def load(self) -> Handler:
        """Import the user module and load its model, or load the built-in model (once in each process)."""
        if self.user_module is None:
            return BuiltinHandler(PolicyModel(self.model_dir), self.default_accept)
        return UserHandler(_import(self.user_module), self.model_dir, self.default_accept)


def _import(path: Path) -> ModuleType:
    """Import the module at ``path`` with its folder first on ``sys.path`` (so it can import its neighbours)."""
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = re.sub(r"\W", "_", path.stem)
    try:
        module = import_file(path, name)
    except SyntaxError as exc:
        raise HandlerError(f"{path} line {exc.lineno}: {exc.msg}; fix the handler module.") from None
    except Exception as exc:
        raise HandlerError(f"Importing the handler module {_where(exc, str(path))} failed: {one_line(exc)}") from exc
    if not any(callable(getattr(module, f, None)) for f in ("model_fn", "transform_fn", *_STEPS)):
        raise HandlerError(f"{path} defines none of model_fn, transform_fn, input_fn, predict_fn, output_fn: it is not "
                           "a handler module.")
    return module
