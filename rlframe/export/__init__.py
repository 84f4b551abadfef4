"""Model export: a trained policy as files that other tools load, computing what the agent computes.

What is exported (``rlframe-export CHECKPOINT_DIR -o DIR``, ``save_model=1``, or the Python API below) is the
*policy*: raw observations in, through every observation filter of the agent's ``input_filter`` and
``pre_network_filter`` (``ObservationNormalizationFilter``, with its statistics) and the embedder's input offset,
rescaling and clipping, to the network's outputs: the Q-values (DQN, DDQN, DDQN+BCQ); ``[value, action
probabilities]`` (discrete Clipped PPO); ``[value, mean, std]`` (continuous Clipped PPO), the order the SageMaker
notebooks' deploy script reads. Optimisers, memories, target networks and exploration are not exported. The model
directory (:mod:`rlframe.export.model_dir`) holds ``model.onnx`` (onnxruntime, and MXNet 1.9.1's
``mxnet.contrib.onnx.import_model``, which the notebooks' deploy script calls), rlframe's own MXNet symbol and
parameters, and ``rlframe-model.json`` (spaces, outputs, action distribution, filter statistics, preset, checkpoint).

The graphs are written with ``onnx.helper`` (:mod:`rlframe.export.onnx_graph`) from a framework-neutral description
of the policy (:mod:`rlframe.export.graph`, which the agents give), not with MXNet's exporter: ``mx.onnx.export_model``
imports ``onnx.mapping``, which onnx removed in 1.15, and pinning onnx below 1.15 would hold back protobuf and
onnxruntime. The networks are small (dense layers, activations, softmax), so writing them directly is short, and
it lets the graph keep the layout MXNet's importer needs (opset 11, every initializer also a graph input).

With ``TaskParameters.export_onnx_graph`` (Coach's ``-onnx``; the SageMaker launcher sets it when ``save_model=1``)
every checkpoint also gets ``<checkpoint name>.onnx``, its outputs in Coach's order (the policy head first), which
the notebooks' ``onnx_utils.fix_onnx_model`` recognises.

Python API:

- ``export_model(graph_manager_or_agent, folder, force=False) -> Path``: export a graph manager's agent after a run
  (its preset and last checkpoint are recorded in the metadata), or any agent as it is now.
- ``export_checkpoint(checkpoint_dir, folder, preset=None, hyperparameters=None, custom_parameters=None,
  force=False) -> Path``: rebuild the agent of a checkpoint directory (or an experiment folder) from the preset the
  checkpoint recorded (or ``preset``), with the run's hyperparameters and any given on top, load the checkpoint
  ``.coach_checkpoint`` names, and export it.
- ``Agent.policy_outputs(raw_obs)`` gives the agent's own outputs for raw observations (B, D), in model order;
  ``Agent.policy_graph()`` the description the writers use.

Both functions refuse, with one line (:class:`~rlframe.export.graph.ExportError` and the checkpoint errors), a
folder that holds anything but an rlframe model (or a model, unless ``force``), and never leave a half-written model.
They are loaded on first use, so that agents and graph managers can import :mod:`rlframe.export.graph` and
:mod:`rlframe.export.onnx_graph` without importing presets and graph managers back.
"""
from __future__ import annotations

from typing import Any

__all__ = ["export_checkpoint", "export_model"]


def __getattr__(name: str) -> Any:
    if name == "export_model":
        from rlframe.export.model_dir import export_model

        return export_model
    if name == "export_checkpoint":
        from rlframe.export.checkpoint import export_checkpoint

        return export_checkpoint
    raise AttributeError(f"module 'rlframe.export' has no attribute {name!r}")
