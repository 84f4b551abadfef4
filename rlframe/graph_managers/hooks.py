"""Hooks: how the edges of a run (progress bars, benchmarks' clocks, a container's reporting, distributed rollouts)
follow a graph manager without reaching into it.

A hook object subclasses :class:`RunHooks` and overrides the events it wants; ``graph_manager.add_hooks(hook)``
registers it. Hooks observe: they receive read-only events after the graph manager acted, and what they return is
ignored, so they can never change what is learnt or written. An exception in a hook ends the run as any error does.

Events (``seconds`` are wall-clock seconds measured with ``time.perf_counter``):

- :meth:`RunHooks.on_training_start` -- training begins, or continues in a resumed run;
- :meth:`RunHooks.on_episode_end` -- a heatup, training or evaluation episode finished;
- :meth:`RunHooks.on_update` -- one training iteration of the online loop: the environment copies stepped once and
  the agent ran the updates that were due;
- :meth:`RunHooks.on_evaluation` -- an evaluation phase finished;
- :meth:`RunHooks.on_epoch` -- a batch-RL epoch finished (its CSV row written);
- :meth:`RunHooks.on_checkpoint` -- a checkpoint was written completely;
- :meth:`RunHooks.on_run_end` -- the run closed its outputs (finished, stopped or failed).

The command-line progress bar is such a hook (:class:`rlframe.outputs.progress_bar.ProgressBar`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlframe.core_types import RunPhase
from rlframe.outputs.checkpoints import CheckpointFiles


def bounded(total: float) -> float | None:
    """``total`` as :class:`TrainingStart` reports it: None from 10**9 on, a length no run is meant to reach (the
    SageMaker notebooks train for 10**10 steps and stop on a reward or a job limit)."""
    return total if total < 1e9 else None


@dataclass(frozen=True)
class TrainingStart:
    """Training begins (in a resumed run: continues).

    :param total: the schedule's ``improve_steps`` in its own unit (batch RL: epochs); None when it is too large
        to be meant as a bound (the SageMaker notebooks' 10**10 steps).
    :param unit: ``'step'`` (environment or training steps), ``'episode'``, ``'s'`` (``Time``) or ``'epoch'``.
    :param done: how much of ``total`` was done before (a resumed run's count, 0 otherwise).
    """

    total: float | None
    unit: str
    done: int


@dataclass(frozen=True)
class EpisodeEnd:
    """A finished episode.

    :param phase: heatup, training or evaluation (``RunPhase.TEST``).
    :param number: its number in the CSV's ``Episode #`` sense (training episodes count heatup's too).
    :param total_reward: the sum of the environment's rewards.
    :param shaped_reward: the sum of the rewards after the agent's reward filters.
    :param length: environment steps.
    :param total_steps: the agent's heatup and training steps so far (evaluation-only runs: evaluation steps).
    """

    phase: RunPhase
    number: int
    total_reward: float
    shaped_reward: float
    length: int
    total_steps: int


@dataclass(frozen=True)
class Update:
    """One iteration of the online training loop.

    :param env_steps: environment steps played in this iteration (one per active copy).
    :param updates: gradient updates the agent made in it.
    :param total_steps: the agent's heatup and training steps so far.
    :param training_iteration: the agent's gradient updates so far.
    :param done: training done so far in the unit of ``improve_steps`` (see :class:`TrainingStart`).
    :param episodes: training episodes finished so far (heatup's included).
    :param last_evaluation_reward: the mean reward of the last evaluation (None before the first).
    :param acting_seconds: wall-clock seconds this iteration spent getting its steps: acting in this process, or
        waiting for the rollout workers and observing what they played.
    :param learning_seconds: wall-clock seconds the agent's ``train()`` took in it.
    """

    env_steps: int
    updates: int
    total_steps: int
    training_iteration: int
    done: int
    episodes: int
    last_evaluation_reward: float | None
    acting_seconds: float = 0.0
    learning_seconds: float = 0.0


@dataclass(frozen=True)
class Evaluation:
    """A finished evaluation phase.

    :param mean_reward: mean total reward of its episodes (NaN when none finished).
    :param success_rate: share of episodes at or above the environment's reward threshold (NaN without one).
    :param episodes: episodes played.
    :param total_steps: the agent's heatup and training steps when it ran.
    :param seconds: wall-clock seconds the evaluation took.
    """

    mean_reward: float
    success_rate: float
    episodes: int
    total_steps: int
    seconds: float


@dataclass(frozen=True)
class Epoch:
    """A finished batch-RL epoch.

    :param epoch: its number (1 for the first).
    :param updates: gradient updates in its pass over the training split.
    :param row: its CSV row (off-policy estimates and evaluation included when they ran).
    :param seconds: wall-clock seconds of the training pass alone (no evaluation, no checkpoint).
    :param elapsed: wall-clock seconds of the whole epoch: the pass, off-policy evaluation, evaluation in the
        environment, the CSV row and the checkpoint.
    :param training_split: the transitions the epoch trained on (a ``TransitionDataset``, input-filtered).
    """

    epoch: int
    updates: int
    row: dict[str, Any]
    seconds: float
    elapsed: float
    training_split: Any


class RunHooks:
    """Base of hook objects: every event does nothing unless overridden."""

    def on_training_start(self, event: TrainingStart) -> None:
        """Training begins or continues."""

    def on_episode_end(self, event: EpisodeEnd) -> None:
        """A heatup, training or evaluation episode finished."""

    def on_update(self, event: Update) -> None:
        """An iteration of the online training loop finished."""

    def on_evaluation(self, event: Evaluation) -> None:
        """An evaluation phase finished."""

    def on_epoch(self, event: Epoch) -> None:
        """A batch-RL epoch finished."""

    def on_checkpoint(self, files: CheckpointFiles) -> None:
        """A checkpoint was written completely."""

    def on_run_end(self) -> None:
        """The run closed its outputs: it finished, stopped or failed (then its error follows)."""
