"""Vocabulary shared by every layer: run phases and the step units schedules are written in.

Shape legend used in docstrings across rlframe: B = batch, N = parallel environment copies,
A = number of discrete actions, D = flattened observation size.

Step units keep Coach's meaning (coach.md section 2):

- ``EnvironmentSteps(n)``: n agent decisions (one per environment copy per step).
- ``EnvironmentEpisodes(n)``: n finished episodes.
- ``TrainingSteps(n)``: in a *graph schedule* of ``BasicRLGraphManager``, one training step is one
  environment step played in the training phase (Coach's graph loop iteration), so ``TrainingSteps(10000)``
  in ``improve_steps`` equals 10,000 training-phase environment steps; in ``BatchRLGraphManager`` one
  training step is one epoch over the dataset. Inside an agent (for example
  ``num_steps_between_copying_online_weights_to_target``) a training step is one gradient update.

Dividing a step object by an integer returns the same unit, rounded up (as in Coach).
"""
from __future__ import annotations

import math
import numbers
from enum import Enum
from typing import Any


class RunPhase(Enum):
    """The phase the graph is in; the value is the prefix of its screen lines."""

    HEATUP = "Heatup"
    TRAIN = "Training"
    TEST = "Testing"
    UNDEFINED = "Undefined"


class StepMethod:
    """A count of something (environment steps, episodes, training steps); subclasses name the unit."""

    def __init__(self, num_steps: int | float) -> None:
        if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Real):
            raise TypeError(
                f"{type(self).__name__} takes a number of steps, got {num_steps!r} ({type(num_steps).__name__})"
            )
        # A negative or NaN count never means anything; refusing it here catches a typo in a preset or
        # override instead of a schedule that silently ends (or never starts).
        if num_steps != num_steps or num_steps < 0:
            raise ValueError(f"{type(self).__name__} takes a count of at least 0, got {num_steps!r}")
        # numpy integers and floats (a count computed in a preset) become plain Python numbers.
        if isinstance(num_steps, numbers.Integral) or float(num_steps).is_integer():
            self._num_steps: int | float = int(num_steps)
        else:
            self._num_steps = float(num_steps)

    @property
    def num_steps(self) -> int | float:
        return self._num_steps

    @num_steps.setter
    def num_steps(self, value: int | float) -> None:
        self._num_steps = value

    def __truediv__(self, other: int) -> "StepMethod":
        return type(self)(math.ceil(self._num_steps / other))

    def __mul__(self, other: int) -> "StepMethod":
        return type(self)(self._num_steps * other)

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self) and other.num_steps == self._num_steps

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._num_steps))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._num_steps})"


class EnvironmentSteps(StepMethod):
    """Agent decisions: one per environment copy per step (frame skip happens inside the environment)."""


class EnvironmentEpisodes(StepMethod):
    """Finished episodes."""


class TrainingSteps(StepMethod):
    """Training steps; see the module docstring for what one is in each context."""


class Frames(StepMethod):
    """Accepted for Coach compatibility; rlframe counts it like ``EnvironmentSteps``."""


class Time(StepMethod):
    """Accepted for Coach compatibility; rlframe counts it in wall-clock seconds."""


STEP_UNITS: dict[str, type[StepMethod]] = {
    cls.__name__: cls for cls in (EnvironmentSteps, EnvironmentEpisodes, TrainingSteps, Frames, Time)
}
