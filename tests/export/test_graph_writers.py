"""The graph writers on their own: every activation rlframe supports, observations of more than one dimension, the
model's layout for MXNet's importer, the model directory's metadata, and filters that cannot be exported."""
from __future__ import annotations

import json
import warnings

import mxnet as mx
import numpy as np
import onnx
import pytest
from mxnet import nd

from rlframe.export.graph import ExportError, Normalization, PolicyGraph, QValues, normalization_steps
from rlframe.export.onnx_graph import policy_to_onnx
from rlframe.export.symbol import policy_to_symbol
from rlframe.filters.filter import InputFilter, ObservationFilter
from rlframe.filters.observation import ObservationNormalizationFilter
from rlframe.networks.blocks import ACTIVATIONS, MLP
from rlframe.networks.parameters import Dense, FCMiddlewareParameters, InputEmbedderParameters
from rlframe.spaces import DiscreteActionSpace, VectorObservationSpace

from exported_models import mxnet_import_outputs, onnxruntime_outputs

pytestmark = pytest.mark.unit


def q_network(activation: str, input_size: int) -> MLP:
    """An MLP with non-trivial weights, input scaling and clipping (3 outputs)."""
    embedder = InputEmbedderParameters(activation_function=activation, scheme=[Dense(8)])
    embedder.input_offset, embedder.input_rescaling, embedder.input_clipping = {"vector": 0.5}, {"vector": 2.0}, (-1.5, 1.5)
    middleware = FCMiddlewareParameters(activation_function=activation, scheme=[Dense(6)])
    net = MLP(embedder, middleware, 3, input_size, prefix=f"writers_{activation}_")
    net.initialize()
    net(nd.zeros((1, input_size)))
    rng = np.random.default_rng(0)
    for p in net.collect_params().values():
        p.set_data(nd.array(rng.normal(scale=0.5, size=p.shape)))
    return net


def symbol_outputs(graph: PolicyGraph, obs: np.ndarray) -> list[np.ndarray]:
    symbol, params = policy_to_symbol(graph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = mx.gluon.nn.SymbolBlock(symbol, [mx.sym.var("observation")])
    for name, param in net.collect_params().items():
        param._load_init(nd.array(params[name]), ctx=mx.cpu())
    outputs = net(nd.array(obs))
    return [o.asnumpy() for o in (outputs if isinstance(outputs, list) else [outputs])]


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_is_written_as_mxnet_computes_it(activation, tmp_path):
    net = q_network(activation, 4)
    graph = PolicyGraph("TestAgent", VectorObservationSpace(4), DiscreteActionSpace(3), (), QValues(net.describe(), 1.0))
    onnx.save(policy_to_onnx(graph), str(tmp_path / "model.onnx"))
    obs = np.random.default_rng(1).normal(scale=3.0, size=(64, 4)).astype(np.float32)
    expected = net(nd.array(obs)).asnumpy()
    for got in (onnxruntime_outputs(tmp_path / "model.onnx", obs), mxnet_import_outputs(tmp_path / "model.onnx", obs),
                symbol_outputs(graph, obs)):
        assert np.abs(got[0] - expected).max() <= 1e-5


def test_observations_of_several_dimensions_are_flattened_after_the_filter(tmp_path):
    """A (2, 3) observation: the normaliser works on the flattened features, as the filter does."""
    normaliser = ObservationNormalizationFilter(clip_min=-2, clip_max=2)
    rng = np.random.default_rng(2)
    normaliser.filter(rng.normal(loc=1.0, scale=3.0, size=(50, 2, 3)).astype(np.float32), update=True)
    stage = InputFilter()
    stage.add_observation_filter("observation", "normalize", normaliser)
    net = q_network("tanh", 6)
    graph = PolicyGraph("TestAgent", VectorObservationSpace((2, 3)), DiscreteActionSpace(3),
                        normalization_steps(stage, InputFilter(), 6), QValues(net.describe(), 1.0))
    onnx.save(policy_to_onnx(graph), str(tmp_path / "model.onnx"))
    obs = rng.normal(scale=5.0, size=(64, 2, 3)).astype(np.float32)
    expected = net(nd.array(stage.filter_observation(obs, update=False).reshape(64, 6))).asnumpy()
    for got in (onnxruntime_outputs(tmp_path / "model.onnx", obs), mxnet_import_outputs(tmp_path / "model.onnx", obs),
                symbol_outputs(graph, obs)):
        assert np.abs(got[0] - expected).max() <= 1e-5


def test_the_onnx_layout_is_what_mxnets_importer_reads(exported_model_dirs):
    from mxnet.contrib.onnx.onnx2mx._import_helper import _convert_map

    for name, folder in exported_model_dirs.items():
        model = onnx.load(str(folder / "model.onnx"))
        onnx.checker.check_model(model)
        assert (model.ir_version, [(o.domain, o.version) for o in model.opset_import]) == (6, [("", 11)]), name
        initializers = {t.name for t in model.graph.initializer}
        real_inputs = [i for i in model.graph.input if i.name not in initializers]
        assert initializers <= {i.name for i in model.graph.input}, name
        assert [i.name for i in real_inputs] == ["observation"]
        dims = real_inputs[0].type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == \
            json.loads((folder / "rlframe-model.json").read_text())["observation"]["shape"]
        assert {node.op_type for node in model.graph.node} <= set(_convert_map), name


CONTRACT_KEYS = {"format", "format_version", "rlframe_version", "agent", "kind", "observation", "action", "input_name",
                 "outputs", "distribution", "filters", "preset", "checkpoint", "files"}
EXPECTED = {
    "dqn": ("DQNAgent", "q_values", ["q_values"], {"kind": "softmax", "output": "q_values", "temperature": 0.5}),
    "ddqn_bcq": ("DDQNBCQAgent", "q_values", ["q_values"], {"kind": "softmax", "output": "q_values", "temperature": 0.2}),
    "ppo_discrete": ("ClippedPPOAgent", "discrete_policy", ["value", "action_probabilities"],
                     {"kind": "probabilities", "output": "action_probabilities"}),
    "ppo_continuous": ("ClippedPPOAgent", "continuous_policy", ["value", "mean", "std"],
                       {"kind": "mean", "output": "mean", "std": "std"}),
}


def test_the_metadata_describes_each_kind(exported_model_dirs):
    for name, folder in exported_model_dirs.items():
        metadata = json.loads((folder / "rlframe-model.json").read_text())
        agent, kind, outputs, distribution = EXPECTED[name.removesuffix("_normalised")]
        assert set(metadata) == CONTRACT_KEYS
        assert (metadata["format"], metadata["format_version"], metadata["input_name"]) == ("rlframe-model", 1, "observation")
        assert (metadata["agent"], metadata["kind"], metadata["distribution"]) == (agent, kind, distribution)
        assert [o["name"] for o in metadata["outputs"]] == outputs
        model = onnx.load(str(folder / "model.onnx"))
        assert [o["onnx_name"] for o in metadata["outputs"]] == [o.name for o in model.graph.output]
        assert metadata["files"] == {"onnx": "model.onnx", "symbol": "policy-symbol.json", "params": "policy-0000.params"}
        assert metadata["checkpoint"]["name"].endswith(".ckpt") and metadata["preset"]["name"].startswith("export_")
        filters = metadata["filters"]
        assert len(filters) == name.endswith("_normalised")
        for f in filters:
            assert f["type"] == "ObservationNormalizationFilter" and (f["clip_min"], f["clip_max"]) == (-4.0, 4.0)
            assert np.any(np.abs(np.array(f["mean"])) > 1e-3) and np.any(np.array(f["std"]) != 1.0)  # learned
    continuous = json.loads((exported_model_dirs["ppo_continuous"] / "rlframe-model.json").read_text())
    assert continuous["action"] == {"type": "box", "shape": [1], "low": [-2.0], "high": [2.0]}
    assert json.loads((exported_model_dirs["dqn"] / "rlframe-model.json").read_text())["action"] == \
        {"type": "discrete", "num_actions": 2}


def test_the_checkpoint_graph_lists_the_policy_head_first(trained_runs):
    """Coach's per-checkpoint order, which the notebooks' fix_onnx_model recognises by the first output's name."""
    firsts = {}
    for name, run in trained_runs.items():
        latest = (run.checkpoint_dir / ".coach_checkpoint").read_text().strip()
        model = onnx.load(str(run.checkpoint_dir / f"{latest}.onnx"))
        onnx.checker.check_model(model)
        firsts[name] = [o.name.split("scaledgradhead0_")[1] for o in model.graph.output]
    assert firsts["dqn"] == firsts["ddqn_bcq"] == ["qhead0_dense0_fwd"]
    assert firsts["ppo_discrete"] == ["discreteppohead0_softmax0", "vhead0_squeeze0"]
    assert firsts["ppo_continuous"] == ["continuousppohead0_dense0_fwd", "continuousppohead0_broadcast_mul0",
                                        "vhead0_squeeze0"]


class ClipToUnit(ObservationFilter):
    """A user's own observation filter."""

    def filter(self, observation: np.ndarray, update: bool) -> np.ndarray:
        return np.clip(observation, -1, 1)


def test_a_filter_that_cannot_be_exported_is_named():
    stage = InputFilter()
    stage.add_observation_filter("observation", "unit", ClipToUnit())
    with pytest.raises(ExportError) as error:
        normalization_steps(InputFilter(), stage, 4)
    assert str(error.value) == (
        "agent_params.pre_network_filter has observation filter 'unit' of type ClipToUnit, which cannot be exported "
        "(rlframe exports ObservationNormalizationFilter only): remove it from the preset, or apply it to observations "
        "before they reach the exported model.")


def test_a_normaliser_that_has_seen_nothing_only_clips():
    stage = InputFilter()
    stage.add_observation_filter("observation", "normalize", ObservationNormalizationFilter())
    (step,) = normalization_steps(stage, InputFilter(), 3)
    assert step == Normalization("input_filter", "normalize", step.mean, step.std, -5.0, 5.0)
    np.testing.assert_array_equal(step.mean, np.zeros(3, np.float32))
    np.testing.assert_array_equal(step.std, np.ones(3, np.float32))
