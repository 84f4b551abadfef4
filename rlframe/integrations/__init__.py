"""Edges between rlframe and the outside world: SageMaker's training contract and Coach's launcher API.

Core rlframe modules never import this package; everything here builds on the core (presets, overrides,
graph managers, outputs) and adapts it to what another system expects.
"""

#: set to 1 to see the traceback behind a one-line error (launchers, the SageMaker entrypoint)
TRACEBACK_VARIABLE = "RLFRAME_TRACEBACK"
