"""Online RL: heatup -> (train_and_act -> evaluate)*, with N environment copies acting at once.

Fixes over Coach (coach.md section 9): evaluation runs on its own environment copies, so a training
episode in progress is paused, not abandoned, at an evaluation boundary; every CSV row means one thing
(a finished heatup/training episode, or one evaluation phase).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import mxnet as mx
import numpy as np

from rlframe.agents.agent import Agent
from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, RunPhase, StepMethod
from rlframe.environments.gym_environment import EnvironmentPool, make_env_factory
from rlframe.errors import ParameterValueError, RlframeError, StorageError
from rlframe.graph_managers.hooks import EpisodeEnd, Evaluation, Update
from rlframe.graph_managers.graph_manager import (
    GraphManager,
    PhaseCounters,
    Progress,
    ScheduleParameters,
    check_step_unit,
)
from rlframe.outputs.checkpoints import CheckpointFiles
from rlframe.outputs.gifs import EpisodeRecorder
from rlframe.parameters import AgentParameters, PresetValidationParameters, TaskParameters, VisualizationParameters
from rlframe.shipped import shipped_dir
from rlframe.spaces import SpacesDefinition
from rlframe.stopping import RunStopped, StopSignals, signal_name

AGENT_NAME = "main_level/agent"
EVALUATION_SEED_OFFSET = 10000


@dataclass
class FinishedEpisode:
    env_index: int
    total_reward: float
    shaped_reward: float
    length: int
    discounted_return: float


class EpisodeTracker:
    """Running totals of the episode each environment copy is in."""

    def __init__(self, num_envs: int, discount: float) -> None:
        self.discount = discount
        self.reward = np.zeros(num_envs)
        self.shaped = np.zeros(num_envs)
        self.length = np.zeros(num_envs, dtype=np.int64)
        self.discounted = np.zeros(num_envs)
        self.discount_power = np.ones(num_envs)

    def record(self, index: np.ndarray, reward: np.ndarray, shaped: np.ndarray, done: np.ndarray) -> list[FinishedEpisode]:
        self.reward[index] += reward
        self.shaped[index] += shaped
        self.length[index] += 1
        self.discounted[index] += self.discount_power[index] * reward
        self.discount_power[index] *= self.discount
        finished = []
        for i in index[done]:
            finished.append(FinishedEpisode(int(i), float(self.reward[i]), float(self.shaped[i]), int(self.length[i]), float(self.discounted[i])))
            self.reward[i] = self.shaped[i] = self.discounted[i] = 0.0
            self.length[i] = 0
            self.discount_power[i] = 1.0
        return finished

    def clear(self) -> None:
        self.__init__(len(self.reward), self.discount)  # type: ignore[misc]


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
        check_step_unit(self.heatup_steps or EnvironmentSteps(0), "heatup_steps", (EnvironmentSteps, EnvironmentEpisodes))
        check_step_unit(self.improve_steps, "improve_steps")
        check_step_unit(self.steps_between_evaluation_periods, "steps_between_evaluation_periods")
        check_step_unit(self.evaluation_steps or EnvironmentEpisodes(0), "evaluation_steps", (EnvironmentSteps, EnvironmentEpisodes))

    def create_graph(self, task_parameters: TaskParameters, stop: StopSignals | None = None) -> "BasicRLGraphManager":
        """Build environments and agent, lock the experiment folder and open the outputs; restore a checkpoint
        when the task names one. ``stop``: the stop request the loop reads (``run`` passes its own)."""
        self.task_parameters = task = task_parameters
        self._stop_signals = stop or StopSignals.current()
        self._last_checkpoint: CheckpointFiles | None = None  # a run that fails before its outputs are open names none
        self.check_task(task)
        self._check_schedule()
        rng = self._seed_run(task)
        spaces = self._create_environments()
        self._create_agent(spaces, rng)
        self._open_experiment(task)
        self._setup_outputs(task, self._agent.signal_columns(), self.index_column)
        restore_dir = task.checkpoint_restore_dir or task.checkpoint_restore_path
        if restore_dir:
            self._restore(restore_dir, task)
        return self

    def build_agent(self) -> Agent:
        """The agent as :meth:`create_graph` builds it, from one copy of the environment (only its spaces are needed),
        writing nothing: for exporting a checkpoint's policy (:meth:`load_policy`)."""
        self.task_parameters = task = TaskParameters(evaluate_only=0, seed=0)
        self._stop_signals = StopSignals.current()
        self._single_copy = True
        rng = self._seed_run(task)
        spaces = self._create_environments()
        self._create_agent(spaces, rng)
        self.close()
        return self._agent

    #: the CSV's index column
    index_column = "Episode #"
    #: whether finished heatup and training episodes get CSV rows (a batch-RL CSV has one row per epoch; evaluation-only
    #: runs write a row per episode either way)
    episode_rows = True

    def _seed_run(self, task: TaskParameters) -> np.random.Generator:
        seed = task.seed if task.seed is not None else int(np.random.SeedSequence().entropy % (2**31))
        task.seed = seed
        mx.random.seed(seed)
        self._seed = seed
        return np.random.default_rng(seed)

    def _create_environments(self) -> SpacesDefinition:
        """The training copies of the environment; returns its spaces."""
        search_dirs = [d for d in (self.origin.directory, shipped_dir("environments")) if d is not None]
        self._render = bool(self.visualization_parameters.dump_gifs)
        self._make_env = make_env_factory(self.env_params, search_dirs, self._render)
        num_envs = 1 if self._single_copy else self.env_params.num_envs or self.agent_params.agent_class.default_num_envs
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ParameterValueError(f"env_params.num_envs = {num_envs!r}: use a positive integer such as 8.")
        self._num_envs = num_envs
        self._train_pool = EnvironmentPool(self._make_env, num_envs, self._seed)
        self._stop_signals.reassert()
        self._eval_pool: EnvironmentPool | None = None
        return self._train_pool.spaces(self.env_params.level)

    def _agent_parameters(self) -> AgentParameters:
        """The parameters the agent is built from: a copy of the preset's, so building and running (filter
        statistics, schedule counters, networks an algorithm adds) never change the preset's objects."""
        return copy.deepcopy(self.agent_params)

    def _create_agent(self, spaces: SpacesDefinition, rng: np.random.Generator) -> None:
        self._agent: Agent = self.agent_params.agent_class(self._agent_parameters(), spaces, rng)
        self._discount = float(self.agent_params.algorithm.discount)
        self._train_tracker = EpisodeTracker(getattr(self, "_num_envs", 1), self._discount)
        self._recorders: dict[int, dict[int, EpisodeRecorder]] = {}
        self._best_gif_reward: dict[str, float] = {}
        self._counters = PhaseCounters()
        self._progress = Progress()
        self._first_checkpoint_id = 0
        self._evaluations = 0
        self._period_start: int | None = None
        self._evaluation_pending = False
        self._until: Callable[[Progress], bool] | None = None
        self._stop = False
        self._success_threshold = self._reward_threshold()

    def _reward_threshold(self) -> float | None:
        if self.env_params is None:
            return None
        if self.env_params.custom_reward_threshold is not None:
            return float(self.env_params.custom_reward_threshold)
        if getattr(self, "_train_pool", None) is not None:
            spec = getattr(self._train_pool.envs[0], "spec", None)
        else:  # a batch-RL graph that only evaluates: read the spec from a copy made for the purpose
            env = self._make_env()
            spec = getattr(env, "spec", None)
            env.close()
        threshold = getattr(spec, "reward_threshold", None)
        return float(threshold) if threshold is not None else None

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
        self._best_gif_reward = {k: float(v) for k, v in graph["best_gif_reward"].items()}
        self._period_start = graph.get("period_start")
        self._evaluation_pending = bool(graph.get("evaluation_pending", False))
        self._resume_csv(self._progress.episodes)

    def _checkpoint_state(self) -> dict[str, Any]:
        return {"graph": {
            "counters": self._counters.counts,
            "episodes": self._progress.episodes,
            "wall_clock": self.wall_clock,
            "evaluations": self._evaluations,
            "best_gif_reward": self._best_gif_reward,
            "seed": self._seed,
            "period_start": self._period_start,
            "evaluation_pending": self._evaluation_pending,
        }}

    def _train_env_steps(self) -> int:
        return self._counters.get(RunPhase.TRAIN, EnvironmentSteps)

    # ---- running ------------------------------------------------------------------------------------
    def run(self, task_parameters: TaskParameters, until: Callable[[Progress], bool] | None = None) -> Progress:
        """Build, then train (or only evaluate, with ``evaluate_only``), then close.

        On SIGTERM or SIGINT the run finishes its step, writes a final checkpoint, flushes the CSV, prints one
        line and raises :class:`~rlframe.stopping.RunStopped`. An error after the outputs are open is also
        written to ``log.txt``; a file that cannot be written ends the run with the last complete checkpoint
        named (:class:`~rlframe.errors.StorageError`).
        """
        failed = True
        with StopSignals() as stop:
            try:
                self.create_graph(task_parameters, stop)
                if task_parameters.evaluate_only is not None:
                    steps = task_parameters.evaluate_only
                    self.evaluate(EnvironmentSteps(steps) if steps else (self.evaluation_steps or EnvironmentEpisodes(1)),
                                  rows_per_episode=True)
                else:
                    self.improve(until)
                if stop.signum is not None:
                    self._screen.line(self.stopped_line(stop.signum))
                failed = False
            except StorageError as exc:
                raise self._note_failure(StorageError(f"{exc} The run stopped; {self.last_checkpoint_text()}.")) from exc
            except RlframeError as exc:
                raise self._note_failure(exc)
            finally:
                self.close(failed)
        if stop.signum is not None:
            raise RunStopped(stop.signum, self.stopped_line(stop.signum))
        return self._progress

    def stopped_line(self, signum: int) -> str:
        """The line a run stopped by ``signum`` ends with: what was finished and kept."""
        if self._task.evaluate_only is not None:
            done = self._counters.get(RunPhase.TEST, EnvironmentEpisodes)
            return f"Stopped by {signal_name(signum)} after {done} evaluation episodes; the CSV is written."
        return f"Stopped by {signal_name(signum)}: finished the current step; {self.last_checkpoint_text()}."

    def _note_failure(self, exc: RlframeError) -> RlframeError:
        """Keep the error a run ends with in ``log.txt`` too (the command-line tool prints it on stderr)."""
        if getattr(self, "_screen", None) is not None:
            self._screen.log_only(f"error: {exc}")
        return exc

    def improve(self, until: Callable[[Progress], bool] | None = None) -> None:
        """Heatup, then alternate training periods and evaluations until ``improve_steps`` (or ``until``)."""
        self._until = until
        self._start_bar()
        self.heatup(self.heatup_steps or EnvironmentSteps(0))
        evaluates = self.evaluation_steps is not None and self.evaluation_steps.num_steps > 0
        # A stopped run's checkpoint records how far the current period got (and whether its evaluation is
        # still due), so a resumed run continues the same schedule.
        while not self._should_stop():
            if not self._evaluation_pending:
                if self._improve_done():
                    break
                self._evaluation_pending = self.train_and_act(self.steps_between_evaluation_periods)
                if self._should_stop():
                    break
            if evaluates:
                self.evaluate(self.evaluation_steps)  # clears the pending flag unless a stop cut it short
            else:
                self._evaluation_pending = False
        self.save_checkpoint()

    def _start_bar(self) -> None:
        improve = self.improve_steps
        total = improve.num_steps if improve.num_steps < 1e9 else None
        unit = {"EnvironmentEpisodes": "episode", "Time": "s"}.get(type(improve).__name__, "step")
        self._screen.start_bar(total, unit)
        self._screen.advance(self._counters.get(RunPhase.TRAIN, type(improve)))

    def _improve_done(self) -> bool:
        improve = self.improve_steps
        return self._counters.get(RunPhase.TRAIN, type(improve)) >= improve.num_steps

    def _should_stop(self) -> bool:
        return self._stop_signals.poll() or self._stop or (self._until is not None and self._until(self._progress))

    def heatup(self, steps: StepMethod) -> None:
        """Act uniformly at random (unless the algorithm says otherwise) for whole episodes until ``steps``."""
        unit = type(steps)
        pool = self._train_pool
        if self._counters.get(RunPhase.HEATUP, unit) >= steps.num_steps:
            return  # nothing to do, or a resumed run whose heatup is already done
        while not self._stop_signals.poll():
            reached = self._counters.get(RunPhase.HEATUP, unit) >= steps.num_steps
            if reached and not pool.active.any():
                break
            self._play(pool, self._train_tracker, RunPhase.HEATUP, 0 if reached else None)
        pool.reopen()

    def train_and_act(self, steps: StepMethod) -> bool:
        """Act and train for ``steps`` (counted in the training phase, from the start of the current period);
        returns whether the period is complete (False when a stop or ``improve_steps`` cut it short)."""
        unit = type(steps)
        if self._period_start is None:
            self._period_start = self._counters.get(RunPhase.TRAIN, unit)
        start = self._period_start
        improve_unit = type(self.improve_steps)
        while self._counters.get(RunPhase.TRAIN, unit) - start < steps.num_steps:
            before = self._counters.get(RunPhase.TRAIN, improve_unit)
            played, _ = self._play(self._train_pool, self._train_tracker, RunPhase.TRAIN, None)
            self._counters.add(RunPhase.TRAIN, training_steps=played)
            updates = self._agent.train()
            for prefix, values in self._agent.drain_reports():
                self._screen.log_dict(prefix, values)
            if self._hooks:
                event = Update(played, updates, self._agent.total_steps, self._agent.training_iteration)
                for hooks in self._hooks:
                    hooks.on_update(event)
            self.maybe_save_checkpoint()
            self._screen.advance(self._counters.get(RunPhase.TRAIN, improve_unit) - before,
                                 episode=self._progress.episodes, evaluation_reward=self._progress.last_evaluation_reward)
            if self._improve_done() or self._should_stop():
                break
        complete = self._counters.get(RunPhase.TRAIN, unit) - start >= steps.num_steps or self._improve_done()
        if complete:
            self._period_start = None
        return complete

    def evaluate(self, steps: StepMethod, rows_per_episode: bool = False) -> float:
        """Run whole evaluation episodes on separate environment copies; returns the mean total reward.

        A stop request ends it after the current step with no evaluation row (NaN is returned); while
        training, its steps and episodes are not counted either, so the resumed run evaluates again.
        """
        if self._eval_pool is None:
            self._eval_pool = EnvironmentPool(self._make_env, self._num_envs, self._seed + EVALUATION_SEED_OFFSET)
            self._stop_signals.reassert()
            self._eval_tracker = EpisodeTracker(self._eval_pool.num_envs, self._discount)
        pool, tracker = self._eval_pool, self._eval_tracker
        started_at = time.perf_counter()
        tracker.clear()
        by_episodes = isinstance(steps, EnvironmentEpisodes)
        target = int(steps.num_steps)
        pool.restart(min(pool.num_envs, target) if by_episodes else pool.num_envs)
        started = int(pool.active.sum())
        start_steps = self._counters.get(RunPhase.TEST, EnvironmentSteps)
        counted = copy.deepcopy(self._counters.counts[RunPhase.TEST.name])
        results: list[FinishedEpisode] = []
        while pool.active.any():
            if self._stop_signals.poll():
                if self._task.evaluate_only is None:
                    self._counters.counts[RunPhase.TEST.name] = counted
                return math.nan
            if by_episodes:
                quota = target - started
            else:
                quota = 0 if self._counters.get(RunPhase.TEST, EnvironmentSteps) - start_steps >= target else None
            _, finished = self._play(pool, tracker, RunPhase.TEST, quota, rows_per_episode)
            started += int(pool.episode_started.sum())
            results.extend(finished)
        return self._end_evaluation(results, time.perf_counter() - started_at)

    def _end_evaluation(self, results: list[FinishedEpisode], seconds: float) -> float:
        self._evaluations += 1
        self._evaluation_pending = False
        rewards = np.array([r.total_reward for r in results])
        mean = float(rewards.mean()) if len(rewards) else math.nan
        success = (
            float(np.mean(rewards >= self._success_threshold)) if self._success_threshold is not None and len(rewards) else math.nan
        )
        self._progress.last_evaluation_reward = mean
        self._progress.last_success_rate = success
        self._progress.evaluations.append((self._progress.episodes, mean))
        self._record_evaluation({
            "Episode #": self._progress.episodes,
            "Training Iter": self._agent.training_iteration,
            "Epoch": 0,
            "In Heatup": 0,
            "Total steps": self._agent.total_steps,
            "Wall-Clock Time": self.wall_clock,
            "Evaluation Reward": mean,
            "Shaped Evaluation Reward": float(np.mean([r.shaped_reward for r in results])) if results else math.nan,
            "Success Rate": success,
        })
        self._screen.line(
            f"## agent: Finished evaluation phase. Success rate = {success:.2f}, Avg Total Reward = {mean:.2f}"
        )
        if (self._task.apply_stop_condition and not math.isnan(success)
                and success >= float(self.env_params.target_success_rate)):
            self._screen.line("## agent: Reached the target success rate; stopping.")
            self._stop = True
        event = Evaluation(mean, success, len(results), self._agent.total_steps, seconds)
        for hooks in self._hooks:
            hooks.on_evaluation(event)
        return mean

    def _record_evaluation(self, row: dict[str, Any]) -> None:
        """An evaluation phase's CSV row (none when only evaluating)."""
        if self._task.evaluate_only is None and self._csv is not None:
            self._csv.add_row(row)

    # ---- one step of N environments -----------------------------------------------------------------
    def _play(self, pool: EnvironmentPool, tracker: EpisodeTracker, phase: RunPhase,
              max_new_episodes: int | None, rows_per_episode: bool = False) -> tuple[int, list[FinishedEpisode]]:
        """Act once in every active copy and handle finished episodes; returns (steps played, finished)."""
        index = np.flatnonzero(pool.active)
        obs = pool.obs[index].copy()
        agent = self._agent
        if self._render:
            self._start_recorders(pool, phase)
        actions = agent.act(obs, phase)
        result = pool.step(actions, max_new_episodes)
        done = result.terminated | result.truncated
        if phase == RunPhase.TEST:
            shaped = agent.shape_reward(result.reward, update=False)
        else:
            shaped = agent.observe(index, obs, actions, result.reward, result.next_obs, result.terminated,
                                   result.truncated, phase)
        finished = tracker.record(index, result.reward, shaped, done)
        self._counters.add(phase, steps=len(index))
        for episode in finished:
            self._counters.add(phase, episodes=1)  # one at a time, so each episode gets its own number
            self._episode_ended(episode, phase, rows_per_episode)
        if self._render:
            self._record_frames(pool, phase, index, finished)
        return len(index), finished

    def _episode_ended(self, episode: FinishedEpisode, phase: RunPhase, rows_per_episode: bool) -> None:
        agent = self._agent
        if phase != RunPhase.TEST:
            self._progress.episodes += 1
            agent.episode_ended(episode.discounted_return)
        number = self._episode_number(phase)
        self._screen.log_dict(phase.value, {
            "Name": AGENT_NAME, "Worker": self._task.task_index, "Episode": number,
            "Total reward": round(episode.total_reward, 2), "Exploration": round(agent.exploration_value(phase), 2),
            "Steps": self._total_steps(), "Training iteration": agent.training_iteration,
        })
        if self._csv is not None and (rows_per_episode or (self.episode_rows and phase != RunPhase.TEST)):
            self._csv.add_row(self._episode_row(episode, phase, number))
        if self._hooks:
            event = EpisodeEnd(phase, number, episode.total_reward, episode.shaped_reward, episode.length,
                               self._total_steps())
            for hooks in self._hooks:
                hooks.on_episode_end(event)
        if self._until is not None and phase != RunPhase.TEST and self._until(self._progress):
            self._stop = True

    def _episode_row(self, episode: FinishedEpisode, phase: RunPhase, number: int) -> dict[str, Any]:
        agent = self._agent
        row: dict[str, Any] = {
            "Episode #": number,
            "Epoch": 0,
            "In Heatup": int(phase == RunPhase.HEATUP),
            "Episode Length": episode.length,
            "Total steps": self._total_steps(),
            "Epsilon": agent.exploration_value(phase),
            "Wall-Clock Time": self.wall_clock,
            **agent.row_statistics(),
        }
        if phase == RunPhase.TRAIN:
            row["Shaped Training Reward"] = episode.shaped_reward
            row["Training Reward"] = episode.total_reward
        elif phase == RunPhase.TEST:
            row["Evaluation Reward"] = episode.total_reward
            row["Shaped Evaluation Reward"] = episode.shaped_reward
        return row

    # ---- GIFs ---------------------------------------------------------------------------------------
    def _start_recorders(self, pool: EnvironmentPool, phase: RunPhase) -> None:
        """Start recording the episodes that begin now, if the dump filters may want this phase."""
        if not all(f.should_capture(phase) for f in self.visualization_parameters.video_dump_filters):
            return
        recorders = self._recorders.setdefault(id(pool), {})
        frame_skip = int(getattr(self.env_params, "frame_skip", 1) or 1)
        for i in np.flatnonzero(pool.episode_started & pool.active):
            recorder = EpisodeRecorder(frame_skip)
            recorder.step(partial(pool.render, int(i)))
            recorders[int(i)] = recorder

    def _record_frames(self, pool: EnvironmentPool, phase: RunPhase, index: np.ndarray, finished: list[FinishedEpisode]) -> None:
        recorders = self._recorders.get(id(pool), {})
        ended = {e.env_index: e for e in finished}
        for i in index:
            if int(i) in recorders and int(i) not in ended:
                recorders[int(i)].step(partial(pool.render, int(i)))
        for i, episode in ended.items():
            recorder = recorders.pop(i, None)
            if recorder is None:
                continue
            best = self._best_gif_reward.get(phase.name, -math.inf)
            number = self._episode_number(phase)
            filters = self.visualization_parameters.video_dump_filters
            if all(f.should_dump(phase, number, episode.total_reward, best) for f in filters):
                recorder.save(self._gif_dir, number, episode.total_reward)
            self._best_gif_reward[phase.name] = max(best, episode.total_reward)

    def _total_steps(self) -> int:
        """The step count a line or row shows: the agent's heatup and training steps, or, in a run that only
        evaluates, the evaluation steps played so far (as Coach's evaluate-only runs count them)."""
        if self._task.evaluate_only is not None:
            return self._counters.get(RunPhase.TEST, EnvironmentSteps)
        return self._agent.total_steps

    def _episode_number(self, phase: RunPhase) -> int:
        if phase == RunPhase.TEST:
            return self._counters.get(RunPhase.TEST, EnvironmentEpisodes)
        return self._progress.episodes

    def close(self, failed: bool = False) -> None:
        """Flush the CSV, close the environments and the log, and release the experiment folder. After a
        failure the CSV is written only if it has rows, and a failing write is not raised over the first error."""
        try:
            if getattr(self, "_csv", None) is not None:
                try:
                    self._csv.flush(create=not failed)
                except StorageError:
                    if not failed:
                        raise
        finally:
            for pool in (getattr(self, "_train_pool", None), getattr(self, "_eval_pool", None)):
                if pool is not None:
                    pool.close()
            if getattr(self, "_screen", None) is not None:
                self._screen.close()
            if getattr(self, "_folder", None) is not None:
                self._folder.close()
