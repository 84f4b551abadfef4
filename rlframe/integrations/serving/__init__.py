"""Serving exported policies: ``rlframe-serve`` (SageMaker's hosting contract) and ``rlframe-transform``.

- :mod:`.model`: ``model.onnx`` under onnxruntime, read as ``rlframe-model.json`` describes it;
- :mod:`.codecs`: request and response bodies (JSON, JSON Lines, CSV, NPY);
- :mod:`.handlers`: the built-in handler and users' handler modules (``model_fn``, ``transform_fn``, ...);
- :mod:`.app`: the ASGI application (``/ping``, ``/invocations``, ``/execution-parameters``);
- :mod:`.server`: the ``rlframe-serve`` command (uvicorn, workers, signals);
- :mod:`.transform`: ``rlframe-transform``, a batch transform driving the server over HTTP.
"""
