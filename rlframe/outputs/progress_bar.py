"""The command-line progress bar: a run hook that draws training progress with tqdm below the log lines.

``rlframe-train`` adds it on a terminal (``--progress bar`` always, ``--progress lines`` never); the Coach-style
launchers add it when their output is a terminal. Log lines reach the terminal through ``tqdm.write`` (see
:class:`rlframe.outputs.screen.Screen`), which lifts the bar out of their way.
"""
from __future__ import annotations

import math
import sys
from typing import Any, TextIO

from tqdm import tqdm

from rlframe.graph_managers.hooks import Epoch, Evaluation, RunHooks, TrainingStart, Update
from rlframe.outputs.screen import format_value


class ProgressBar(RunHooks):
    """Training progress in the unit of ``improve_steps`` (batch RL: epochs), with the episode count and the last
    evaluation reward beside it.

    :param stream: where the bar is drawn (stdout by default: the log lines' stream).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._bar: tqdm | None = None
        self._postfix: dict[str, str] = {}

    def on_training_start(self, event: TrainingStart) -> None:
        self.on_run_end()
        self._bar = tqdm(total=event.total, initial=event.done, unit=event.unit, dynamic_ncols=True, file=self.stream,
                         leave=True)

    def on_update(self, event: Update) -> None:
        self._advance(event.done - self._position(), episode=event.episodes, evaluation_reward=event.last_evaluation_reward)

    def on_evaluation(self, event: Evaluation) -> None:
        self._advance(0, evaluation_reward=None if math.isnan(event.mean_reward) else event.mean_reward)

    def on_epoch(self, event: Epoch) -> None:
        reward = event.row.get("Evaluation Reward")
        self._advance(1, evaluation_reward=reward if reward is not None and not math.isnan(reward) else None)

    def on_run_end(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _position(self) -> int:
        return int(self._bar.n) if self._bar is not None else 0

    def _advance(self, count: int, **postfix: Any) -> None:
        if self._bar is None:
            return
        self._postfix.update({k: format_value(v) for k, v in postfix.items() if v is not None})
        self._bar.set_postfix(self._postfix, refresh=False)
        if count:
            self._bar.update(count)
