"""CartPole-v1 with a slow simulator, for ``distributed.py``: every step first spends 1 ms, then steps gymnasium's
CartPole-v1 (500-step time limit), so the dynamics, rewards and episode ends are CartPole-v1's and the task can be
learnt.

* :class:`SleepyCartPole` waits: ``time.sleep(0.001)`` (an I/O-bound simulator; the process does not use the CPU
  meanwhile, so more workers than cores still overlap their waits). Linux's sleep overshoots by some 50-100 us.
* :class:`BusyCartPole` burns the CPU: a busy loop on ``time.perf_counter`` until 1 ms has passed (a CPU-bound
  simulator; workers can only overlap as far as there are cores).

Both are levels of the form ``module:callable`` (``-lvl slow_envs:SleepyCartPole``). This folder must be importable
by the process that trains and by its Ray rollout workers: ``distributed.py`` puts it on ``PYTHONPATH`` of the runs
it starts, which Ray's worker processes inherit (a worker looks levels up in the preset's folder and rlframe's shipped
environments folder, then on ``sys.path``). ``delay`` (seconds) can be changed through the preset's
``additional_simulator_parameters``.
"""
from __future__ import annotations

import time
from typing import Any

import gymnasium as gym

DELAY_SECONDS = 0.001


class SleepyCartPole(gym.Wrapper):
    """CartPole-v1 whose every step first sleeps ``delay`` seconds."""

    def __init__(self, delay: float = DELAY_SECONDS, **kwargs: Any) -> None:
        super().__init__(gym.make("CartPole-v1", **kwargs))
        self.delay = float(delay)

    def step(self, action: Any) -> Any:
        time.sleep(self.delay)
        return self.env.step(action)


class BusyCartPole(gym.Wrapper):
    """CartPole-v1 whose every step first keeps the CPU busy for ``delay`` seconds."""

    def __init__(self, delay: float = DELAY_SECONDS, **kwargs: Any) -> None:
        super().__init__(gym.make("CartPole-v1", **kwargs))
        self.delay = float(delay)

    def step(self, action: Any) -> Any:
        end = time.perf_counter() + self.delay
        while time.perf_counter() < end:
            pass
        return self.env.step(action)
