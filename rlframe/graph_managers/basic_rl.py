"""Online RL: heatup -> (train_and_act -> evaluate)*, with N environment copies acting at once.

The schedule only: building the run, playing episodes (:mod:`rlframe.graph_managers.environment_loop`), evaluating,
the CSV, checkpoints and hooks are :class:`~rlframe.graph_managers.graph_manager.GraphManager`'s, shared with batch RL.

Fixes over Coach (coach.md section 9): evaluation runs on its own environment copies, so a training
episode in progress is paused, not abandoned, at an evaluation boundary; every CSV row means one thing
(a finished heatup/training episode, or one evaluation phase).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, RunPhase, StepMethod
from rlframe.graph_managers.environment_loop import EpisodeLoop
from rlframe.graph_managers.graph_manager import GraphManager, Progress, ScheduleParameters, check_step_unit
from rlframe.graph_managers.hooks import TrainingStart, Update, bounded
from rlframe.parameters import AgentParameters, PresetValidationParameters, TaskParameters, VisualizationParameters
from rlframe.spaces import SpacesDefinition


class BasicRLGraphManager(GraphManager):
    """One agent, one (vectorised) environment, Coach's online schedule.

    :param agent_params: the agent.
    :param env_params: the environment (``GymVectorEnvironment(level=...)``).
    :param schedule_params: heatup / improve / evaluation schedule.
    :param vis_params: outputs.
    :param preset_validation_params: the preset's golden test (``rlframe-validate``).
    :param name: the graph's name (part of the CSV file name).
    """

    def __init__(self, agent_params: AgentParameters, env_params: Any, schedule_params: ScheduleParameters,
                 vis_params: VisualizationParameters | None = None,
                 preset_validation_params: PresetValidationParameters | None = None,
                 name: str = "simple_rl_graph") -> None:
        super().__init__(
            name, agent_params, env_params, schedule_params,
            vis_params if vis_params is not None else VisualizationParameters(),
            preset_validation_params if preset_validation_params is not None else PresetValidationParameters(),
        )

    # ---- building -----------------------------------------------------------------------------------
    def _check_schedule(self) -> None:
        # The run reads these checked copies (the fields themselves may be None in a preset).
        self._heatup_for = check_step_unit(self.heatup_steps or EnvironmentSteps(0), "heatup_steps",
                                           (EnvironmentSteps, EnvironmentEpisodes))
        self._improve_for = check_step_unit(self.improve_steps, "improve_steps")
        self._period = check_step_unit(self.steps_between_evaluation_periods, "steps_between_evaluation_periods")
        self._evaluation_for = check_step_unit(self.evaluation_steps or EnvironmentEpisodes(0), "evaluation_steps",
                                               (EnvironmentSteps, EnvironmentEpisodes))

    def _create_environments(self) -> SpacesDefinition:
        """The training copies of the environment (evaluation copies are made at the first evaluation)."""
        self._environment_factory()
        self._train_loop: EpisodeLoop | None = self._episode_loop(0)
        return self._train_loop.pool.spaces(self.env_params.level)

    def _create_agent(self, spaces: SpacesDefinition, rng: np.random.Generator) -> None:
        super()._create_agent(spaces, rng)
        self._period_start: int | None = None
        self._evaluation_pending = False

    def _restore(self, directory: str, task: TaskParameters) -> None:
        training = task.evaluate_only is None
        state = self.restore_checkpoint(directory, restore_memory=training and task.restore_memory)
        if not training:
            return
        graph = state["graph"]
        self._counters.counts = graph["counters"]
        self._progress.episodes = int(graph["episodes"])
        self._wall_clock_offset = float(graph["wall_clock"])
        self._evaluations = int(graph["evaluations"])
        if self._gifs is not None:
            self._gifs.best_reward = {k: float(v) for k, v in graph["best_gif_reward"].items()}
        self._period_start = graph.get("period_start")
        self._evaluation_pending = bool(graph.get("evaluation_pending", False))
        self._resume_csv(self._progress.episodes)

    def _checkpoint_state(self) -> dict[str, Any]:
        return {"graph": {
            "counters": self._counters.counts,
            "episodes": self._progress.episodes,
            "wall_clock": self.wall_clock,
            "evaluations": self._evaluations,
            "best_gif_reward": self._gifs.best_reward if self._gifs is not None else {},
            "seed": self._seed,
            "period_start": self._period_start,
            "evaluation_pending": self._evaluation_pending,
        }}

    def _train_env_steps(self) -> int:
        return self._counters.get(RunPhase.TRAIN, EnvironmentSteps)

    def improve(self, until: Callable[[Progress], bool] | None = None) -> None:
        """Heatup, then alternate training periods and evaluations until ``improve_steps`` (or ``until``)."""
        self._until = until
        self._announce_training()
        self.heatup(self._heatup_for)
        evaluates = self._evaluation_for.num_steps > 0
        # A stopped run's checkpoint records how far the current period got (and whether its evaluation is
        # still due), so a resumed run continues the same schedule.
        while not self._should_stop():
            if not self._evaluation_pending:
                if self._improve_done():
                    break
                self._evaluation_pending = self.train_and_act(self._period)
                if self._should_stop():
                    break
            if evaluates:
                self.evaluate(self._evaluation_for)  # clears the pending flag unless a stop cut it short
            else:
                self._evaluation_pending = False
        self.save_checkpoint()

    def _announce_training(self) -> None:
        improve = self._improve_for
        unit = {"EnvironmentEpisodes": "episode", "Time": "s"}.get(type(improve).__name__, "step")
        event = TrainingStart(bounded(improve.num_steps), unit, self._counters.get(RunPhase.TRAIN, type(improve)))
        for hooks in self._hooks:
            hooks.on_training_start(event)

    def _improve_done(self) -> bool:
        improve = self._improve_for
        return self._counters.get(RunPhase.TRAIN, type(improve)) >= improve.num_steps

    def heatup(self, steps: StepMethod) -> None:
        """Act uniformly at random (unless the algorithm says otherwise) for whole episodes until ``steps``."""
        assert self._train_loop is not None
        self._heatup(self._train_loop, steps)

    def train_and_act(self, steps: StepMethod) -> bool:
        """Act and train for ``steps`` (counted in the training phase, from the start of the current period);
        returns whether the period is complete (False when a stop or ``improve_steps`` cut it short)."""
        unit = type(steps)
        if self._period_start is None:
            self._period_start = self._counters.get(RunPhase.TRAIN, unit)
        start = self._period_start
        improve_unit = type(self._improve_for)
        while self._counters.get(RunPhase.TRAIN, unit) - start < steps.num_steps:
            assert self._train_loop is not None
            played, _ = self._play(self._train_loop, RunPhase.TRAIN, None)
            self._counters.add(RunPhase.TRAIN, training_steps=played)
            updates = self._agent.train()
            for prefix, values in self._agent.drain_reports():
                self._screen.log_dict(prefix, values)
            if self._hooks:
                event = Update(played, updates, self._agent.total_steps, self._agent.training_iteration,
                               self._counters.get(RunPhase.TRAIN, improve_unit), self._progress.episodes,
                               self._progress.last_evaluation_reward)
                for hooks in self._hooks:
                    hooks.on_update(event)
            self.maybe_save_checkpoint()
            if self._improve_done() or self._should_stop():
                break
        complete = self._counters.get(RunPhase.TRAIN, unit) - start >= steps.num_steps or self._improve_done()
        if complete:
            self._period_start = None
        return complete

    def _evaluation_done(self, row: dict[str, Any]) -> None:
        super()._evaluation_done(row)
        self._evaluation_pending = False
