"""Online RL: heatup -> (train_and_act -> evaluate)*, with N environment copies acting at once.

The schedule only: building the run, playing episodes (:mod:`rlframe.graph_managers.environment_loop`), evaluating,
the CSV, checkpoints and hooks are :class:`~rlframe.graph_managers.graph_manager.GraphManager`'s, shared with batch RL.

With rollout workers (:meth:`GraphManager.use_workers`, ``--num-workers N``) the same schedule runs with acting
spread over the workers, and the agent here only observes and learns: an on-policy agent (Clipped PPO) plays
synchronous rounds, every worker playing its share of ``num_consecutive_playing_steps`` with the current policy
(``act_for_full_episodes`` is not waited for), then updates and sends the new policy to all; an off-policy one
(DQN) streams, each worker playing chunks that are observed as they arrive, with the policy sent every
``weight_sync_steps``. Heatup and evaluation are shared out among the workers too.

Fixes over Coach (coach.md section 9): evaluation runs on its own environment copies, so a training
episode in progress is paused, not abandoned, at an evaluation boundary; every CSV row means one thing
(a finished heatup/training episode, or one evaluation phase).
"""
from __future__ import annotations

import copy
import time
from typing import Any, Callable

import numpy as np

from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, RunPhase, StepMethod, TrainingSteps
from rlframe.graph_managers.environment_loop import EpisodeLoop, EpisodeTracker, FinishedEpisode
from rlframe.graph_managers.graph_manager import (
    EVALUATION_SEED_OFFSET,
    GraphManager,
    Progress,
    ScheduleParameters,
    check_step_unit,
)
from rlframe.graph_managers.hooks import TrainingStart, Update, bounded
from rlframe.graph_managers.rollout_worker import Rollout, WorkerLost, WorkerSpec
from rlframe.parameters import AgentParameters, PresetValidationParameters, TaskParameters, VisualizationParameters
from rlframe.spaces import SpacesDefinition, spaces_from_gymnasium


class BasicRLGraphManager(GraphManager):
    """One agent, one (vectorised) environment, Coach's online schedule.

    :param agent_params: the agent.
    :param env_params: the environment (``GymVectorEnvironment(level=...)``).
    :param schedule_params: heatup / improve / evaluation schedule.
    :param vis_params: outputs.
    :param preset_validation_params: the preset's golden test (``rlframe-validate``).
    :param name: the graph's name (part of the CSV file name).

    Set on the graph manager (``-cp "weight_sync_steps=EnvironmentSteps(500)"``):

    :param weight_sync_steps: with rollout workers, how often an off-policy agent's (DQN's) policy is sent to them, as
        ``EnvironmentSteps``; None: every ``num_steps_between_copying_online_weights_to_target`` (environment steps,
        or its training steps converted at the preset's ratio), never less than one request (16 steps of each copy).
        An on-policy agent's policy is sent after every update.
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
        self.weight_sync_steps: EnvironmentSteps | None = None

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
        """The training copies of the environment (evaluation copies are made at the first evaluation); in a
        distributed run, the rollout workers with theirs."""
        self._environment_factory()
        if self._workers is None:
            self._train_loop: EpisodeLoop | None = self._episode_loop(0)
            return self._train_loop.pool.spaces(self.env_params.level)
        self._train_loop = None
        # GIFs are recorded only in one process: the workers do not render (the notebooks' presets ask for GIFs)
        self._gifs = None
        env = self._make_env()  # the spaces, and an environment that cannot be made fails here, with its own error
        try:
            spaces = spaces_from_gymnasium(env.observation_space, env.action_space, self.env_params.level)
        finally:
            env.close()
        if self.weight_sync_steps is not None:
            check_step_unit(self.weight_sync_steps, "weight_sync_steps", (EnvironmentSteps,))
        discount = float(self.agent_params.algorithm.discount)
        self._workers.start(WorkerSpec(copy.deepcopy(self.agent_params), self.env_params, self._search_dirs,
                                       self.origin.file, self._num_envs, self._seed, EVALUATION_SEED_OFFSET, discount))
        self._trackers = {w: EpisodeTracker(self._num_envs, discount) for w in self._workers.workers}
        self._streaming: set[int] = set()  # workers holding a training request of the off-policy stream
        self._workers_lost = 0
        self._published_at: int | None = None
        return spaces

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
        if self._workers is not None:
            self._settle_stream()
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
        if self._workers is not None:
            self._remote_heatup(steps)
            return
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
            began = time.perf_counter()
            if self._workers is not None:
                played = self._remote_training_step()
            else:
                assert self._train_loop is not None
                played, _ = self._play(self._train_loop, RunPhase.TRAIN, None)
            self._counters.add(RunPhase.TRAIN, training_steps=played)
            acted = time.perf_counter()
            updates = self._agent.train()
            if updates and self._workers is not None:
                self._publish_after_update()
            learned = time.perf_counter()
            for prefix, values in self._agent.drain_reports():
                self._screen.log_dict(prefix, values)
            if self._hooks:
                event = Update(played, updates, self._agent.total_steps, self._agent.training_iteration,
                               self._counters.get(RunPhase.TRAIN, improve_unit), self._progress.episodes,
                               self._progress.last_evaluation_reward, acted - began, learned - acted)
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

    # ---- acting on rollout workers ----------------------------------------------------------------------------
    def _setup_outputs(self, *args: Any) -> None:
        super()._setup_outputs(*args)
        if self._workers is not None:
            self._screen.line(f"Workers> {self._workers.describe()}")
            if not self._agent.on_policy:
                self._screen.line(f"Workers> each plays {self._request_steps()} steps a request; the policy goes to "
                                  f"them every {self._weight_sync_interval()} environment steps")
            if self.visualization_parameters.dump_gifs:
                self._screen.line("Workers> no GIFs: they are recorded when training in one process (dump_gifs is "
                                  "ignored with rollout workers)")

    def _agent_parameters(self) -> AgentParameters:
        params = super()._agent_parameters()
        if self._workers is not None and getattr(params.algorithm, "act_for_full_episodes", False):
            # A round ends when every worker has played its share: waiting for an episode's end would keep the others
            # idle while one plays on, and the agent bootstraps a cut episode, so nothing is lost by not waiting.
            params.algorithm.act_for_full_episodes = False
        return params

    def _publish(self) -> None:
        """Send the agent's acting state with the next request of every worker."""
        assert self._workers is not None
        self._workers.publish(self._agent.acting_state())
        self._published_at = self._agent.total_steps

    def _publish_after_update(self) -> None:
        """After an update: an on-policy agent's next round must act with it; an off-policy one's stream gets it every
        ``weight_sync_steps`` environment steps."""
        if self._agent.on_policy or self._published_at is None or \
                self._agent.total_steps - self._published_at >= self._weight_sync_interval():
            self._publish()

    def _weight_sync_interval(self) -> int:
        """Environment steps between two policies sent to an off-policy run's workers: ``weight_sync_steps``, else the
        preset's ``num_steps_between_copying_online_weights_to_target`` in environment steps (a target-network period
        is how stale the algorithm already lets its targets be); at least one request."""
        if self.weight_sync_steps is not None:
            return max(int(self.weight_sync_steps.num_steps), self._request_steps())
        algorithm = self.agent_params.algorithm
        period = algorithm.num_steps_between_copying_online_weights_to_target
        playing = algorithm.num_consecutive_playing_steps
        if isinstance(period, EnvironmentSteps):
            steps = int(period.num_steps)
        elif isinstance(period, TrainingSteps) and isinstance(playing, EnvironmentSteps):
            steps = int(period.num_steps * playing.num_steps / max(1, int(algorithm.num_consecutive_training_steps)))
        else:
            steps = 0
        return max(steps, self._request_steps())

    def _request_steps(self) -> int:
        """Environment steps a worker plays per request of an off-policy stream."""
        return self._num_envs * 16

    def _observe_rollout(self, worker: int, rollout: Rollout, phase: RunPhase) -> int:
        """Observe what ``worker`` played, step by step, as if this agent had acted; returns the steps."""
        agent = self._agent
        tracker = self._trackers[worker]
        for index, obs, action, reward, next_obs, terminated, truncated in rollout.steps():
            if phase == RunPhase.TRAIN:
                agent.acted_elsewhere(len(index))
            shaped = agent.observe(index, obs, action, reward, next_obs, terminated, truncated, phase)
            self._counters.add(phase, steps=len(index))
            for episode in tracker.record(index, reward, shaped, terminated | truncated):
                self._counters.add(phase, episodes=1)
                self._episode_ended(episode, phase, False, worker)
        return rollout.num_steps

    def _worker_lost(self, lost: WorkerLost) -> None:
        assert self._workers is not None
        self._workers_lost += 1
        if lost.replaced:
            self._trackers[lost.worker].clear()  # its copies start new episodes
            then = "it plays again"
        else:
            del self._trackers[lost.worker]
            then = f"the run goes on with {len(self._workers.workers)} workers"
        self._screen.line(f"Workers> worker {lost.worker} was lost ({lost.reason}); dropped what it was playing; "
                          f"{then} ({self._workers_lost} lost so far)")

    def _round(self, requests: dict[int, Callable[[], None]]) -> list[tuple[int, Any]] | None:
        """Send every request (worker -> send) and wait for all answers; a lost worker is asked again once Ray has
        restarted it, or left out when it is not replaced. Returns the answers in worker order (the order they are
        observed in, so a seeded run is reproducible), or None when a stop request came first."""
        assert self._workers is not None
        self._settle_stream()
        for send in requests.values():
            send()
        answers: dict[int, Any] = {}
        while len(answers) < len(requests):
            item = self._workers.next_result(self._stop_signals.poll)
            if item is None:
                self._workers.cancel()
                return None
            worker, answer = item
            if isinstance(answer, WorkerLost):
                self._worker_lost(answer)
                if answer.replaced:
                    requests[worker]()
                else:
                    del requests[worker]
            else:
                answers[worker] = answer
        return sorted(answers.items())

    def _settle_stream(self) -> None:
        """Observe the answers an off-policy stream still has coming (before a round, an evaluation or the end)."""
        assert self._workers is not None
        while self._streaming:
            item = self._workers.next_result(self._stop_signals.poll)
            if item is None:
                self._workers.cancel()
                self._streaming.clear()
                return
            worker, answer = item
            self._streaming.discard(worker)
            if isinstance(answer, WorkerLost):
                self._worker_lost(answer)
            else:
                self._counters.add(RunPhase.TRAIN, training_steps=self._observe_rollout(worker, answer, RunPhase.TRAIN))

    def _remote_heatup(self, steps: StepMethod) -> None:
        """Heatup shared out among the workers, each playing its share in whole episodes."""
        workers = self._workers
        assert workers is not None
        remaining = steps.num_steps - self._counters.get(RunPhase.HEATUP, type(steps))
        if remaining <= 0:
            return
        self._publish()
        share = -(-int(remaining) // len(workers.workers))
        by_episodes = isinstance(steps, EnvironmentEpisodes)

        def request(worker: int) -> Callable[[], None]:
            return lambda: workers.play(worker, RunPhase.HEATUP, 0 if by_episodes else share,
                                        share if by_episodes else None, finish_episodes=True)

        answers = self._round({w: request(w) for w in workers.workers})
        for worker, rollout in answers or []:
            self._observe_rollout(worker, rollout, RunPhase.HEATUP)

    def _remote_training_step(self) -> int:
        """Training steps played on the workers: a synchronous round (on-policy), or the next chunk of the stream."""
        workers = self._workers
        assert workers is not None
        if self._published_at is None:
            self._publish()
        algorithm = self.agent_params.algorithm
        if self._agent.on_policy:
            playing = algorithm.num_consecutive_playing_steps
            by_episodes = isinstance(playing, EnvironmentEpisodes)
            share = -(-int(playing.num_steps) // len(workers.workers))

            def request(worker: int) -> Callable[[], None]:
                return lambda: workers.play(worker, RunPhase.TRAIN, 0 if by_episodes else share,
                                            share if by_episodes else None)

            answers = self._round({w: request(w) for w in workers.workers})
            return sum(self._observe_rollout(w, rollout, RunPhase.TRAIN) for w, rollout in answers or [])
        for worker in workers.workers:
            if worker not in self._streaming:
                workers.play(worker, RunPhase.TRAIN, self._request_steps())
                self._streaming.add(worker)
        item = workers.next_result(self._stop_signals.poll)
        if item is None:
            return 0
        worker, answer = item
        self._streaming.discard(worker)
        if isinstance(answer, WorkerLost):
            self._worker_lost(answer)
            return 0
        return self._observe_rollout(worker, answer, RunPhase.TRAIN)

    def _evaluation_phase(self, steps: StepMethod, rows_per_episode: bool) -> dict[str, Any] | None:
        if self._workers is None:
            return super()._evaluation_phase(steps, rows_per_episode)
        workers = self._workers
        started_at = time.perf_counter()
        self._settle_stream()
        self._publish()
        by_episodes = isinstance(steps, EnvironmentEpisodes)
        base, extra = divmod(int(steps.num_steps), len(workers.workers))
        shares = {w: base + (i < extra) for i, w in enumerate(workers.workers)}

        def request(worker: int) -> Callable[[], None]:
            return lambda: workers.evaluate(worker, shares[worker], by_episodes)

        answers = self._round({w: request(w) for w, share in shares.items() if share > 0})
        if answers is None:
            return None
        results: list[FinishedEpisode] = []
        for worker, episodes in answers:
            for episode in episodes:
                self._counters.add(RunPhase.TEST, steps=episode.length, episodes=1)
                self._episode_ended(episode, RunPhase.TEST, rows_per_episode, worker)
                results.append(episode)
        return self._end_evaluation(results, time.perf_counter() - started_at)
