"""The built-in handler's model: ``MODEL_DIR/model.onnx`` under onnxruntime, as ``rlframe-model.json`` describes it.

:class:`PolicyModel` runs a batch of raw observations ``(B, *observation_shape)`` float32 through ``model.onnx``
(one onnxruntime session, one thread: a server runs one worker process per core) and turns the outputs into the
policy's action distribution and action (:class:`Prediction`):

- ``q_values`` (DQN, DDQN, DDQN+BCQ): softmax(Q / T), T the network's softmax temperature; the greedy action is
  argmax Q (what the agent does with evaluation epsilon 0);
- ``discrete_policy`` (discrete Clipped PPO): the action probabilities; greedy = their argmax;
- ``continuous_policy`` (continuous Clipped PPO): the mean; greedy = the mean (unclipped, as the agent acts).

Sampled actions draw from the distribution (continuous: mean + std * N(0, 1)).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlframe.errors import RlframeError
from rlframe.export.layout import FILES, METADATA

KINDS = {"q_values": "softmax", "discrete_policy": "probabilities", "continuous_policy": "mean"}
#: observations per onnxruntime call: a policy's activations for this many fit a CPU's caches (4096 x 64 float32
#: is 1 MB per layer); measured fastest from 2048 to 8192 rows for CartPole's 64-unit layers
SLICE_ROWS = 4096


class ModelDirError(RlframeError):
    """A model directory the server cannot serve (missing, incomplete, or not what rlframe-export writes)."""


@dataclass(frozen=True)
class OutputSpec:
    """One model output: ``name`` (friendly), ``onnx_name`` (the graph's), ``width`` None for (batch,), else n
    of (batch, n)."""

    name: str
    onnx_name: str
    width: int | None


@dataclass(frozen=True)
class ModelMetadata:
    """What the server needs from ``rlframe-model.json``.

    :param observation_shape: the shape of one raw observation.
    :param action_width: A (number of discrete actions) or K (length of a continuous action).
    :param distribution: the ``distribution`` entry (kind, output, and temperature or std).
    """

    agent: str
    kind: str
    observation_shape: tuple[int, ...]
    discrete: bool
    action_width: int
    input_name: str
    outputs: tuple[OutputSpec, ...]
    distribution: dict

    @classmethod
    def read(cls, model_dir: Path) -> "ModelMetadata":
        """Read and check ``MODEL_DIR/rlframe-model.json``; raises :class:`ModelDirError` naming what is wrong."""
        path = model_dir / METADATA
        fix = "export the model again with rlframe-export CHECKPOINT_DIR -o MODEL_DIR"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelDirError(f"{model_dir} has no {METADATA}, so it is not a model directory rlframe-export "
                                f"wrote: {fix}.") from None
        except (OSError, ValueError) as exc:
            raise ModelDirError(f"Cannot read {path} ({exc}): {fix}.") from None
        try:
            if data.get("format") != "rlframe-model" or data.get("format_version") != 1:
                raise ValueError(f"format {data.get('format')!r} version {data.get('format_version')!r} is not "
                                 "rlframe-model version 1")
            kind = data["kind"]
            if kind not in KINDS:
                raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
            action = data["action"]
            discrete = action["type"] == "discrete"
            width = int(action["num_actions"]) if discrete else math.prod(int(n) for n in action["shape"])
            outputs = tuple(OutputSpec(str(o["name"]), str(o["onnx_name"]), _width(o["shape"])) for o in data["outputs"])
            distribution = dict(data["distribution"])
            names = {o.name for o in outputs}
            needed = [distribution["output"]] + ([distribution["std"]] if kind == "continuous_policy" else [])
            if distribution["kind"] != KINDS[kind] or not set(needed) <= names or not outputs:
                raise ValueError(f"distribution {distribution} does not fit kind {kind!r} and outputs {sorted(names)}")
            if kind == "q_values" and not float(distribution["temperature"]) > 0:
                raise ValueError(f"softmax temperature {distribution['temperature']!r} is not positive")
            return cls(agent=str(data["agent"]), kind=kind,
                       observation_shape=tuple(int(n) for n in data["observation"]["shape"]), discrete=discrete,
                       action_width=width, input_name=str(data["input_name"]), outputs=outputs,
                       distribution=distribution)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = f"lacks {exc}" if isinstance(exc, KeyError) else f"is not as rlframe-export writes it: {exc}"
            raise ModelDirError(f"{path} {what}; {fix}.") from None

    def output(self, name: str) -> int:
        """The position of output ``name`` in model order."""
        return [o.name for o in self.outputs].index(name)


def _width(shape: list) -> int | None:
    if shape[0] != "batch" or len(shape) > 2:
        raise ValueError(f"output shape {shape} is not ['batch'] or ['batch', n]")
    return int(shape[1]) if len(shape) == 2 else None


@dataclass(frozen=True)
class Prediction:
    """The policy's answer for a batch of B observations.

    :param distribution: (B, A) action probabilities, or (B, K) means for continuous actions; float32.
    :param actions: (B,) int64 action indices, or (B, K) float32 continuous actions.
    :param outputs: every model output in model order ((B,) or (B, n), float32).
    """

    distribution: np.ndarray
    actions: np.ndarray
    outputs: tuple[np.ndarray, ...]

    def parts(self) -> list[np.ndarray]:
        """The distribution, the actions, then the outputs: the order the encoders write them in."""
        return [self.distribution, self.actions, *self.outputs]


class PolicyModel:
    """``model.onnx`` of a model directory in an onnxruntime session (one intra-op thread)."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise ModelDirError(f"Model directory {self.model_dir} does not exist: give the folder rlframe-export "
                                "wrote (with model.onnx and rlframe-model.json).")
        self.metadata = ModelMetadata.read(self.model_dir)
        path = self.model_dir / FILES["onnx"]
        if not path.is_file():
            raise ModelDirError(f"{self.model_dir} has no {FILES['onnx']}: export the model again with rlframe-export.")
        import onnxruntime  # the serve extra; imported here so that reading the metadata needs only numpy

        options = onnxruntime.SessionOptions()
        # One thread per session: the server runs a worker process per core, and one thread is fastest for
        # networks this small. Level 3 hides the warning about initializers listed as graph inputs, which
        # MXNet's importer needs (the export writes them so on purpose).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for every kind of bad file
            raise ModelDirError(f"onnxruntime cannot load {path} ({one_line(exc)}): export the model again.") from None
        metadata = self.metadata
        inputs = [i.name for i in self._session.get_inputs()]
        graph_outputs = {o.name for o in self._session.get_outputs()}
        missing = [o.onnx_name for o in metadata.outputs if o.onnx_name not in graph_outputs]
        if inputs != [metadata.input_name] or missing:
            raise ModelDirError(f"{path} does not match {METADATA}: inputs {inputs} (expected "
                                f"[{metadata.input_name!r}]), outputs missing {missing}; export the model again.")
        self._output_names = [o.onnx_name for o in metadata.outputs]
        self._distribution = metadata.output(metadata.distribution["output"])
        self._temperature = float(metadata.distribution.get("temperature", 1.0))
        self._std = metadata.output(metadata.distribution["std"]) if metadata.kind == "continuous_policy" else None
        self._rng = np.random.default_rng()
        # One forward pass now: a graph that cannot run, or whose outputs have other shapes, fails at start-up.
        outputs = self.forward(np.zeros((1, *metadata.observation_shape), np.float32))
        for spec, value in zip(metadata.outputs, outputs):
            if value.shape != ((1,) if spec.width is None else (1, spec.width)):
                raise ModelDirError(f"{path} output {spec.onnx_name} has shape {value.shape[1:]} per observation, but "
                                    f"{METADATA} says {spec.width or 'one number'}: export the model again.")

    def forward(self, observations: np.ndarray) -> list[np.ndarray]:
        """The model's outputs, in model order, for float32 observations (B, *observation_shape).

        A large batch runs in slices of :data:`SLICE_ROWS` observations: the layers' activations of a whole
        100,000-observation batch do not fit the CPU's caches, and the slices together take a third less time.

        An observation's outputs do not depend on the batch it comes in: onnxruntime multiplies a single row with a
        matrix-vector kernel whose sums round differently (by an ulp) from the matrix-matrix kernel of any larger
        batch, so a batch of one runs as two identical rows. A SingleRecord and a MultiRecord batch transform then
        write the same bytes.
        """
        if len(observations) <= SLICE_ROWS:
            return self._run(observations)
        # The last slice takes the remainder; one of two rows or more, so that it runs as a matrix as the others do.
        bounds = list(range(0, len(observations) - SLICE_ROWS // 2, SLICE_ROWS)) + [len(observations)]
        slices = [self._run(observations[start:stop]) for start, stop in zip(bounds, bounds[1:])]
        return [np.concatenate(parts) for parts in zip(*slices)]

    def _run(self, observations: np.ndarray) -> list[np.ndarray]:
        single = len(observations) == 1
        try:
            outputs = self._session.run(self._output_names, {
                self.metadata.input_name: np.concatenate([observations, observations]) if single else observations})
        except Exception as exc:  # onnxruntime's own exception types
            raise RuntimeError(f"onnxruntime failed on a batch of {len(observations)}: {one_line(exc)}") from None
        return [output[:1] for output in outputs] if single else outputs

    def predict(self, observations: np.ndarray, sample: bool = False) -> Prediction:
        """One batched forward pass and the policy's distribution and actions (greedy, or drawn when ``sample``)."""
        outputs = self.forward(observations)
        kind = self.metadata.kind
        head = outputs[self._distribution]
        if kind == "q_values":
            weights = np.exp((head - head.max(axis=1, keepdims=True)) * np.float32(1 / self._temperature))
            distribution = weights / weights.sum(axis=1, keepdims=True)
        else:
            distribution = head
        if kind == "continuous_policy" and sample:
            assert self._std is not None  # set for every continuous policy
            actions = head + outputs[self._std] * self._rng.standard_normal(head.shape, np.float32)
        elif kind == "continuous_policy":
            actions = head
        elif sample:
            cumulative = np.cumsum(distribution, axis=1, dtype=np.float64)
            draws = self._rng.random((len(head), 1)) * cumulative[:, -1:]
            actions = np.minimum((cumulative <= draws).sum(axis=1), distribution.shape[1] - 1)
        else:
            actions = head.argmax(axis=1)  # argmax Q for the DQN family, as the agent acts
        return Prediction(distribution, actions, tuple(outputs))


def one_line(exc: BaseException) -> str:
    """``ValueError: the first line of its message`` (the type alone when it has none), at most 300 characters."""
    text = str(exc).strip().splitlines()
    return (f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__)[:300]
