"""Value schedules (epsilon, clipping decay, ...): a value as a function of how often ``step()`` was called.

Each schedule keeps the number of steps taken, so its state is one integer that checkpoints save and
restore (:meth:`Schedule.state` / :meth:`Schedule.load_state`).
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence, cast

from rlframe.core_types import StepMethod
from rlframe.parameters import Parameters


def _number(schedule: str, name: str, value: Any) -> float:
    """``value`` if it is a real number; a TypeError naming the argument otherwise.

    Checked when the schedule is made, so ``LinearSchedule('1.0', 0.01, 10000)`` in a preset or a ``-cp``
    override fails there, not at the first ``step()`` deep inside training.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{schedule}: {name} must be a number, got {value!r} ({type(value).__name__})")
    return cast(float, value)  # kept as given: an int stays an int (reprs, parameters.yaml)


class Schedule(Parameters):
    """Base: ``current_value`` after ``steps_taken`` calls of :meth:`step`.

    What one step is belongs to the parameter that holds the schedule (an e-greedy epsilon steps once per
    training action the network chooses; see that parameter's meaning).

    :param initial_value: the value at step 0.
    """

    def __init__(self, initial_value: float) -> None:
        self.initial_value = _number(type(self).__name__, "initial_value", initial_value)
        self._steps_taken = 0

    def value_at(self, step: int) -> float:
        raise NotImplementedError

    @property
    def current_value(self) -> float:
        return self.value_at(self._steps_taken)

    def step(self, count: int = 1) -> None:
        self._steps_taken += count

    def endpoints(self) -> list[tuple[str, float]]:
        """The values the schedule starts and ends at, each with its attribute path below the schedule
        (``[('.initial_value', 1.0), ('.final_value', 0.1)]``), for range checks of what it schedules (an
        epsilon must stay from 0 to 1)."""
        return [(".initial_value", self.initial_value)]

    def state(self) -> int:
        return self._steps_taken

    def load_state(self, steps_taken: int) -> None:
        self._steps_taken = int(steps_taken)


class ConstantSchedule(Schedule):
    """Always ``initial_value``."""

    def value_at(self, step: int) -> float:
        return self.initial_value


class LinearSchedule(Schedule):
    """From ``initial_value`` to ``final_value`` in ``decay_steps`` steps, then constant.

    :param final_value: the value from ``decay_steps`` on.
    :param decay_steps: how many steps the linear change takes; 0 or less: ``final_value`` at once (schedule steps).
    """

    def __init__(self, initial_value: float, final_value: float, decay_steps: int) -> None:
        super().__init__(initial_value)
        self.final_value = _number("LinearSchedule", "final_value", final_value)
        self.decay_steps = _number("LinearSchedule", "decay_steps", decay_steps)

    def endpoints(self) -> list[tuple[str, float]]:
        return [(".initial_value", self.initial_value), (".final_value", self.final_value)]

    def value_at(self, step: int) -> float:
        if self.decay_steps <= 0 or step >= self.decay_steps:
            return self.final_value
        return self.initial_value + (self.final_value - self.initial_value) * step / self.decay_steps


class ExponentialSchedule(Schedule):
    """``initial_value * decay_coefficient**step``, bounded by ``final_value``.

    :param final_value: the bound the value decays (or grows) to and then keeps.
    :param decay_coefficient: the factor applied per step.
    """

    def __init__(self, initial_value: float, final_value: float, decay_coefficient: float) -> None:
        super().__init__(initial_value)
        self.final_value = _number("ExponentialSchedule", "final_value", final_value)
        self.decay_coefficient = _number("ExponentialSchedule", "decay_coefficient", decay_coefficient)

    def endpoints(self) -> list[tuple[str, float]]:
        return [(".initial_value", self.initial_value), (".final_value", self.final_value)]

    def value_at(self, step: int) -> float:
        value = self.initial_value * self.decay_coefficient**step
        if self.initial_value >= self.final_value:
            return max(value, self.final_value)
        return min(value, self.final_value)


class PieceWiseSchedule(Schedule):
    """Consecutive schedules, each for a duration: ``[(LinearSchedule(...), EnvironmentSteps(n)), ...]``.

    Each piece starts from its own step 0; after the last piece its final value is kept.

    :param schedules: the ``(schedule, duration)`` pairs in order; a duration's ``num_steps`` counts schedule
        steps whatever its unit class.
    """

    def __init__(self, schedules: Sequence[tuple[Schedule, StepMethod]]) -> None:
        pieces = list(schedules) if isinstance(schedules, (list, tuple)) else None
        if not pieces or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], Schedule) and isinstance(p[1], StepMethod)
            for p in pieces
        ):
            raise TypeError(
                f"PieceWiseSchedule takes a non-empty list of (schedule, duration) pairs such as "
                f"[(LinearSchedule(1.0, 0.1, 1000), EnvironmentSteps(1000))], got {schedules!r}"
            )
        super().__init__(pieces[0][0].initial_value)
        self.schedules = [tuple(p) for p in pieces]

    def endpoints(self) -> list[tuple[str, float]]:
        return [(f".schedules[{i}][0]{path}", value)
                for i, (schedule, _) in enumerate(self.schedules) for path, value in schedule.endpoints()]

    def value_at(self, step: int) -> float:
        start = 0
        for schedule, duration in self.schedules:
            if step < start + duration.num_steps:
                return schedule.value_at(step - start)
            start += duration.num_steps
        last, duration = self.schedules[-1]
        return last.value_at(duration.num_steps)
