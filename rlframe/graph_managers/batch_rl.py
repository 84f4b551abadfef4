"""Batch (offline) RL: train a DQN-family agent on a logged dataset, epoch by epoch, with off-policy evaluation.

The loop (coach.md sections 1.5 and 5, with Coach's defects fixed):

1. read the dataset (``agent_params.memory.load_memory_from_file_path``), apply the agent's input filter,
   and split its episodes into training and evaluation sets (``train_to_eval_ratio``, seeded);
2. fit the reward model r_hat(s, a) on the training split for ``reward_model_num_epochs`` passes, and let
   the agent build what it needs from the training split (BCQ's action filter);
3. for each epoch (``improve_steps = TrainingSteps(n)`` gives n epochs): one pass over the training split;
   every ``steps_between_evaluation_periods`` epochs, off-policy evaluation on the evaluation split (IPS,
   DM, DR, WIS, Sequential DR, see :mod:`rlframe.off_policy_evaluation`) and, when the preset has an
   environment, ``evaluation_steps`` of evaluation in it; then one CSV row and a checkpoint.

Without a dataset, a preset with an environment generates one first: ``heatup_steps`` of uniformly random
actions, or, with ``experience_generating_agent_params``, an agent trained online by its own schedule (as
Coach's ``CartPole_DDQN_BCQ_BatchRL``). Every heatup and training transition is kept with the probabilities
the agent acted with (Coach logged a softmax of Q that the epsilon-greedy agent never used), and the dataset
is saved as ``generated_dataset.npz`` in the experiment directory, where a resumed run finds it.

The epoch's OPE values and evaluation reward are on that epoch's CSV row (Coach wrote them one row ahead).
With an environment and no dataset (``preset-cartpole-ddqnbcq-env``), the graph only evaluates checkpoints
(``rlframe-train --evaluate -crd ...``): it builds the same networks, ``main`` and ``reward_model``, so
the checkpoint of the dataset preset restores into it.
"""
from __future__ import annotations

import copy
import math
import os
import time
from typing import Any, Callable

import numpy as np

from rlframe.agents.contract import OfflineLearner
from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, RunPhase, TrainingSteps
from rlframe.errors import ParameterValueError
from rlframe.graph_managers.basic_rl import BasicRLGraphManager
from rlframe.graph_managers.environment_loop import EpisodeLoop
from rlframe.graph_managers.graph_manager import GraphManager, Progress, ScheduleParameters, check_step_unit
from rlframe.graph_managers.hooks import Epoch, TrainingStart, bounded
from rlframe.memories.dataset import (
    CsvDataset,
    TransitionDataset,
    TransitionLog,
    load_csv_dataset,
    load_dataset,
    resolve_dataset_path,
    save_dataset,
    split_episodes,
)
from rlframe.memories.memory import EpisodicExperienceReplayParameters
from rlframe.off_policy_evaluation import OffPolicyEstimates, off_policy_estimates
from rlframe.parameters import AgentParameters, PresetValidationParameters, TaskParameters, VisualizationParameters
from rlframe.spaces import SpacesDefinition

OPE_COLUMNS = {
    "ips": "Inverse Propensity Score",
    "dm": "Direct Method Reward",
    "dr": "Doubly Robust",
    "wis": "Weighted Importance Sampling",
    "sequential_dr": "Sequential Doubly Robust",
}

#: the off-policy estimate that picks the best checkpoint: the (discounted) return, not an immediate reward
BEST_BY = (OPE_COLUMNS["sequential_dr"], "sequential_dr")
BEST_BY_FALLBACK = (OPE_COLUMNS["wis"], "wis")


class BatchRLGraphManager(GraphManager):
    """A DQN-family agent trained on a dataset (coach.md section 1.5).

    :param agent_params: a DQN, DDQN or DDQN+BCQ agent with ``EpisodicExperienceReplayParameters`` memory
        whose ``load_memory_from_file_path`` is a :class:`~rlframe.memories.dataset.CsvDataset`.
    :param env_params: an environment to evaluate the policy in after each epoch, or None.
    :param schedule_params: ``improve_steps = TrainingSteps(epochs)``, ``steps_between_evaluation_periods =
        TrainingSteps(epochs between evaluations)``, ``evaluation_steps`` in the environment.
    :param spaces_definition: the spaces, required when ``env_params`` is None.
    :param reward_model_num_epochs: passes over the training split to fit the reward model.
    :param train_to_eval_ratio: the share of transitions (whole episodes) trained on; the rest is for OPE.
    :param experience_generating_agent_params: an agent (DQN-family) to generate the dataset by training online,
        when the preset has an environment and no dataset.
    :param experience_generating_schedule_params: that agent's schedule (heatup, improve, evaluation).
    """

    index_column = "Epoch"
    episode_rows = False
    GENERATED_DATASET = "generated_dataset.npz"

    def __init__(self, agent_params: AgentParameters, env_params: Any, schedule_params: ScheduleParameters,
                 vis_params: VisualizationParameters | None = None,
                 preset_validation_params: PresetValidationParameters | None = None,
                 name: str = "batch_rl_graph", spaces_definition: SpacesDefinition | None = None,
                 reward_model_num_epochs: int = 100, train_to_eval_ratio: float = 0.8,
                 experience_generating_agent_params: AgentParameters | None = None,
                 experience_generating_schedule_params: ScheduleParameters | None = None) -> None:
        super().__init__(
            name, agent_params, env_params, schedule_params,
            vis_params if vis_params is not None else VisualizationParameters(),
            preset_validation_params if preset_validation_params is not None else PresetValidationParameters(),
        )
        self.spaces_definition = spaces_definition
        self.reward_model_num_epochs = reward_model_num_epochs
        self.train_to_eval_ratio = train_to_eval_ratio
        self.experience_generating_agent_params = experience_generating_agent_params
        self.experience_generating_schedule_params = experience_generating_schedule_params

    # ---- building -----------------------------------------------------------------------------------
    def _check_schedule(self) -> None:
        self._epochs_for = check_step_unit(self.improve_steps, "improve_steps (epochs)", (TrainingSteps,))
        check_step_unit(self.steps_between_evaluation_periods or TrainingSteps(1),
                        "steps_between_evaluation_periods (epochs)", (TrainingSteps,))
        if self.env_params is not None:
            check_step_unit(self.evaluation_steps or EnvironmentEpisodes(1), "evaluation_steps")
        if not isinstance(self.agent_params.memory, EpisodicExperienceReplayParameters):
            raise ParameterValueError(
                f"BatchRLGraphManager needs agent_params.memory = EpisodicExperienceReplayParameters() (episodes for "
                f"off-policy evaluation); the preset has {type(self.agent_params.memory).__name__}."
            )
        if self.experience_generating_agent_params is not None and not isinstance(
                self.experience_generating_schedule_params, ScheduleParameters):
            raise ParameterValueError(
                "experience_generating_agent_params needs experience_generating_schedule_params = ScheduleParameters() "
                "(heatup_steps, improve_steps, steps_between_evaluation_periods, evaluation_steps)."
            )

    def _create_environments(self) -> SpacesDefinition:
        self._train_loop: EpisodeLoop | None = None
        if self.env_params is not None:
            self._environment_factory()
            loop = self._episode_loop(0)
            spaces = loop.pool.spaces(self.env_params.level)
            if self._generates_dataset():
                self._train_loop = loop  # random heatup collects the dataset on these copies
            else:
                loop.close()  # the environment only evaluates, on copies made at the first evaluation
            return spaces
        if not isinstance(self.spaces_definition, SpacesDefinition):
            raise ParameterValueError(
                "BatchRLGraphManager with env_params=None needs spaces_definition=SpacesDefinition(state=StateSpace("
                "{'observation': VectorObservationSpace(shape=D)}), goal=None, action=DiscreteActionSpace(A), "
                "reward=RewardSpace(1))."
            )
        self._gifs = None
        return self.spaces_definition

    def _agent_parameters(self) -> AgentParameters:
        params = super()._agent_parameters()
        wrappers = params.network_wrappers
        if "reward_model" not in wrappers:
            # As Coach: the reward model is a copy of the main network, so both presets of a pair build it.
            reward_model = copy.deepcopy(wrappers["main"])
            reward_model.create_target_network = False
            wrappers["reward_model"] = reward_model
        return params

    def _create_agent(self, spaces: SpacesDefinition, rng: np.random.Generator) -> None:
        super()._create_agent(spaces, rng)
        agent = self._agent
        if not isinstance(agent, OfflineLearner):
            raise ParameterValueError(
                f"BatchRLGraphManager trains agents that learn from a dataset (DQN, DDQN, DDQN+BCQ); the preset's agent "
                f"is {type(self.agent_params).__name__}."
            )
        #: the agent as the offline learner it is (the same object as ``_agent``)
        self._learner: OfflineLearner = agent
        self._rng = rng
        self._epoch = 0
        self._train: TransitionDataset | None = None
        self._eval: TransitionDataset | None = None
        #: the checkpoint whose off-policy estimate is the best so far (kept by retention), and that estimate
        self._best: dict[str, Any] | None = None

    def _restore(self, directory: str, task: TaskParameters) -> None:
        state = self.restore_checkpoint(directory, restore_memory=False)
        if task.evaluate_only is not None:
            return
        graph = state["graph"]
        self._epoch = int(graph["epoch"])
        self._counters.counts = graph["counters"]
        self._wall_clock_offset = float(graph["wall_clock"])
        self._evaluations = int(graph["evaluations"])
        self._rng.bit_generator.state = graph["rng"]
        self._best = graph.get("best_checkpoint")
        self._resume_csv(self._epoch)

    def _checkpoint_state(self) -> dict[str, Any]:
        return {"graph": {
            "epoch": self._epoch, "counters": self._counters.counts, "wall_clock": self.wall_clock,
            "evaluations": self._evaluations, "seed": self._seed, "rng": self._rng.bit_generator.state,
            "best_checkpoint": self._best,
        }}

    def _protected_checkpoints(self) -> set[str]:
        return {self._best["name"]} if self._best else set()

    def _train_env_steps(self) -> int:
        return self._epoch  # checkpoints are named <id>_Step-<epoch>.ckpt

    # ---- the dataset --------------------------------------------------------------------------------
    def _generates_dataset(self) -> bool:
        no_file = not isinstance(self.agent_params.memory.load_memory_from_file_path, CsvDataset)
        task = self.task_parameters
        return no_file and self.env_params is not None and task is not None and task.evaluate_only is None

    def _obtain_dataset(self) -> None:
        """Read the dataset (or generate it), filter it, and split it (the same split on a resumed run: it is
        drawn from the seed alone)."""
        source = self.agent_params.memory.load_memory_from_file_path
        if isinstance(source, CsvDataset):
            where = resolve_dataset_path(source.filepath, self.origin.directory)
            data = load_csv_dataset(source, where, self._agent.spaces)
        elif self.env_params is not None:
            where = os.path.join(self.experiment_path, self.GENERATED_DATASET)
            generated = load_dataset(where) if self._epoch > 0 and os.path.isfile(where) else self._generate_dataset(where)
            if generated is None:
                return  # a stop cut the generation short
            data = generated
        else:
            raise ParameterValueError(
                f"agent_params.memory.load_memory_from_file_path = {source!r} and env_params = None: a batch-RL run needs "
                "a dataset; set it to CsvDataset('data.csv') (or pass --dataset data.csv), or give an environment to "
                "generate one."
            )
        data.obs, data.next_obs, data.reward = self._learner.filter_dataset(data.obs, data.next_obs, data.reward,
                                                                          update=self._epoch == 0)
        split_rng = np.random.default_rng(self._seed)
        self._train, self._eval = split_episodes(data, float(self.train_to_eval_ratio), split_rng, where)
        self._screen.line(
            f"Dataset> {where}: {len(data):,} transitions in {data.num_episodes:,} episodes; training "
            f"{len(self._train):,} transitions ({self._train.num_episodes:,} episodes), off-policy evaluation "
            f"{len(self._eval):,} ({self._eval.num_episodes:,} episodes)"
        )

    def _generate_dataset(self, path: str) -> TransitionDataset | None:
        """Play in the environment and keep every heatup and training transition (see the module docstring).

        Returns None when a stop request cut it short: a partial dataset is not kept, and the steps that made
        it are not counted, so a resumed run generates the whole dataset again.
        """
        log = TransitionLog()
        if self.experience_generating_agent_params is not None:
            assert isinstance(self.experience_generating_schedule_params, ScheduleParameters)  # _check_schedule
            generator = BasicRLGraphManager(self.experience_generating_agent_params, self.env_params,
                                            self.experience_generating_schedule_params,
                                            name="experience_generating_graph")
            generator.origin.directory = self.origin.directory
            # start_over: what an earlier, stopped generation left there is moved aside, not mixed in.
            generation_path = os.path.join(self.experiment_path, "experience_generation")
            generator.create_graph(TaskParameters(experiment_path=generation_path,
                                                  seed=self._seed, start_over=True), self._stop_signals)
            generator.agent.add_transition_observer(log)
            self._screen.line(f"Dataset> training the experience-generating agent ({type(generator.agent).__name__}); "
                              f"its outputs are in {generator.experiment_path}")
            try:
                generator.improve()
            finally:
                generator.close()
            how = "by the experience-generating agent"
        else:
            heatup = self.heatup_steps
            if heatup is None or heatup.num_steps <= 0:
                raise ParameterValueError(
                    "This batch-RL preset has an environment but no dataset: set heatup_steps (e.g. "
                    "EnvironmentSteps(10000)) "
                    "to collect random data, experience_generating_agent_params to train an agent for it, or "
                    "agent_params.memory.load_memory_from_file_path = CsvDataset('data.csv')."
                )
            check_step_unit(heatup, "heatup_steps", (EnvironmentSteps, EnvironmentEpisodes))
            counted = copy.deepcopy(self._counters.counts), self._agent.counters()
            self._agent.add_transition_observer(log)
            try:
                assert self._train_loop is not None
                self._heatup(self._train_loop, heatup)
            finally:
                self._agent.remove_transition_observer(log)
            if self._stop_signals.requested:
                self._counters.counts = counted[0]
                self._agent.load_counters(counted[1])
            how = "by uniformly random actions"
        if self._stop_signals.requested:
            self._screen.line("Dataset> generation stopped before it was complete; a resumed run generates it again")
            return None
        data = log.dataset()
        save_dataset(data, path)
        self._screen.line(f"Dataset> generated {len(data):,} transitions in {data.num_episodes:,} episodes {how}; "
                          f"saved to {path}")
        return data

    def _prepare(self) -> None:
        """Fit the reward model (unless restored), let the agent prepare, and cache OPE's fixed inputs."""
        agent = self._learner
        assert self._train is not None and self._eval is not None
        if self._epoch == 0:
            epochs = int(self.reward_model_num_epochs)
            losses = agent.fit_reward_model(self._train, epochs, self._rng)
            if losses:
                self._screen.line(f"Reward model> {epochs} epochs, final loss={losses[-1]:.6g}")
        for line in agent.prepare_offline(self._train):
            self._screen.line(line)

    # ---- running ------------------------------------------------------------------------------------
    def improve(self, until: Callable[[Progress], bool] | None = None) -> None:
        """Train for ``improve_steps`` epochs (or until ``until``), evaluating as scheduled. A stop request is
        honoured between epochs (each epoch ends with its checkpoint)."""
        self._obtain_dataset()
        if self._train is None:  # stopped while generating the dataset
            self.save_checkpoint()
            return
        self._progress.episodes = self._epoch  # a stop condition counts epochs here, not the data's episodes
        self._until = until
        self._prepare()
        epochs = int(self._epochs_for.num_steps)
        event = TrainingStart(bounded(epochs), "epoch", self._epoch)
        for hooks in self._hooks:
            hooks.on_training_start(event)
        every = int((self.steps_between_evaluation_periods or TrainingSteps(1)).num_steps) or 1
        while self._epoch < epochs and not self._should_stop():
            self._run_epoch(evaluate=(self._epoch + 1) % every == 0)
        if self._epoch == 0:
            self.save_checkpoint()

    def _run_epoch(self, evaluate: bool) -> None:
        agent = self._learner
        assert self._train is not None
        started_at = time.perf_counter()
        updates = agent.train_epoch(self._train)
        seconds = time.perf_counter() - started_at
        self._epoch += 1
        self._progress.episodes = self._epoch  # a stop condition's "episodes" are epochs here
        self._counters.add(RunPhase.TRAIN, training_steps=1)
        row: dict[str, Any] = {
            "Epoch": self._epoch, "Episode #": 0, "In Heatup": 0, "Total steps": agent.total_steps, "Epsilon": 0.0,
        }
        if evaluate:
            estimates = self.off_policy_evaluation()
            row.update({OPE_COLUMNS[k]: v for k, v in estimates._asdict().items()})
            self._screen.log_dict("Off-Policy Evaluation", {
                "Epoch": self._epoch, "IPS": estimates.ips, "DM": estimates.dm, "DR": estimates.dr,
                "WIS": estimates.wis, "Sequential-DR": estimates.sequential_dr,
            })
            self._track_best(estimates)
            if self.env_params is not None and self.evaluation_steps is not None and self.evaluation_steps.num_steps > 0:
                evaluation = self._evaluation_phase(self.evaluation_steps, rows_per_episode=False)
                # An evaluation a stop cut short leaves the row without one.
                if evaluation is not None and not math.isnan(evaluation["Evaluation Reward"]):
                    row.update({k: evaluation[k] for k in ("Evaluation Reward", "Shaped Evaluation Reward", "Success Rate")})
        row["Wall-Clock Time"] = self.wall_clock
        # The memory of a batch-RL agent is the training split.
        row.update({**agent.row_statistics(), "ER #Transitions": len(self._train), "ER #Episodes": self._train.num_episodes})
        self._screen.log_dict("Training", {"Epoch": self._epoch, "Updates": updates,
                                           "Training iteration": agent.training_iteration})
        if self._csv is not None:
            self._csv.add_row(row)
        self.save_checkpoint()
        event = Epoch(self._epoch, updates, dict(row), seconds, time.perf_counter() - started_at, self._train)
        for hooks in self._hooks:
            hooks.on_epoch(event)
        if self._until is not None and self._until(self._progress):
            self._stop = True

    def _track_best(self, estimates: OffPolicyEstimates) -> None:
        """Remember the checkpoint this epoch is about to write if its return estimate (Sequential DR, or WIS
        when that is undefined) is the best so far: retention keeps it, and the log names it."""
        estimator, value = BEST_BY
        score = getattr(estimates, value)
        if not math.isfinite(score):
            estimator, value = BEST_BY_FALLBACK
            score = getattr(estimates, value)
        if not math.isfinite(score) or (self._best is not None and score <= self._best["value"]):
            return
        name = self.next_checkpoint_name()
        self._best = {"name": name, "epoch": self._epoch, "estimator": estimator, "value": float(score)}
        self._screen.line(f"Checkpoint> best by off-policy evaluation so far ({estimator}={score:.2f}): {name}")

    def off_policy_evaluation(self) -> OffPolicyEstimates:
        """IPS, DM, DR, WIS and Sequential DR of the current policy, softmax(Q / softmax_temperature), on the
        evaluation split."""
        assert self._eval is not None
        agent = self._learner
        q, reward_estimates = agent.evaluation_estimates(self._eval.obs)
        return off_policy_estimates(
            q_estimates=q, reward_estimates=reward_estimates, behaviour_probs=self._eval.behaviour_probs,
            action=self._eval.action, reward=self._eval.reward, episode_id=self._eval.episode_id,
            discount=float(self.agent_params.algorithm.discount),
            softmax_temperature=agent.softmax_temperature,
        )
