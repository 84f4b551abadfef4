"""Edges between rlframe and the outside world: SageMaker's training contract and Coach's launcher API.

Core rlframe modules never import this package; everything here builds on the core (presets, overrides,
graph managers, outputs) and adapts it to what another system expects.
"""
