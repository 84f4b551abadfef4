"""The model directory's file names, in a module of their own: the server reads model directories without
importing MXNet, which :mod:`rlframe.export.model_dir` (the writer) needs."""
from __future__ import annotations

METADATA = "rlframe-model.json"
FORMAT, FORMAT_VERSION = "rlframe-model", 1
FILES = {"onnx": "model.onnx", "symbol": "policy-symbol.json", "params": "policy-0000.params"}
#: a user's inference handler folder (SageMaker's ``MODEL_DIR/code``), which a replaced model keeps
CODE = "code"
