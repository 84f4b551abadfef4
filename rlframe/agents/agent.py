"""The agent base: filters, acting, storing, the training cadence, target-network updates and checkpoint state.

:class:`Agent` implements the graph managers' side of the contract (:mod:`rlframe.agents.contract`) once. What an
algorithm adds (in its own file): how it chooses actions from network outputs (:meth:`Agent.choose_actions`), what
it stores (:meth:`Agent.store`), one gradient update (:meth:`Agent.learn`, or a whole :meth:`Agent.train`), its
networks (``self.networks``), and optionally its policy for export (:meth:`Agent.network_outputs`,
:meth:`Agent.policy_head`), stateful schedules and extra counters. Counting, filtering, signals and state I/O live
here once; ``docs/adding-an-agent.md`` walks through an algorithm's side.

Acting runs N environment copies at once: every method takes a batch with a leading N axis.
"""
from __future__ import annotations

from typing import Any, cast

import numpy as np

from rlframe.agents.contract import AgentCheckpoint, TransitionObserver
from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, RunPhase, StepMethod, TrainingSteps
from rlframe.errors import ParameterValueError
from rlframe.export.graph import ExportError, Head, PolicyGraph, normalization_steps
from rlframe.filters.filter import InputFilter, NoInputFilter
from rlframe.memories.memory import MemoryParameters, check_max_size
from rlframe.networks.network_wrapper import NetworkWrapper, TrainResult
from rlframe.outputs import signals
from rlframe.outputs.checkpoints import with_prefix
from rlframe.parameters import AgentParameters, check_range
from rlframe.schedules import Schedule
from rlframe.spaces import DiscreteActionSpace, SpacesDefinition


class Agent:
    """Base class of rlframe's agents.

    :param agent_params: the preset's agent parameters.
    :param spaces: the environment's spaces.
    :param rng: the agent's random generator (exploration, sampling).
    """

    signal_names: tuple[str, ...] = (signals.LOSS, signals.LEARNING_RATE, signals.GRADS, signals.DISCOUNTED_RETURN)
    #: whether heatup transitions are stored to learn from (an on-policy algorithm learns only from its own actions)
    learns_from_heatup = True
    #: environment copies acting at once when the preset does not set ``env_params.num_envs``
    default_num_envs = 4
    #: whether each update learns only from actions of the policy as it was since the last (a distributed run then
    #: plays synchronous rounds and updates every worker's policy after each)
    on_policy = False

    def __init__(self, agent_params: AgentParameters, spaces: SpacesDefinition, rng: np.random.Generator) -> None:
        self.params = agent_params
        self.algorithm = agent_params.algorithm
        self.spaces = spaces
        self.rng = rng
        self.input_filter: InputFilter = agent_params.input_filter or NoInputFilter()
        self.pre_network_filter: InputFilter = agent_params.pre_network_filter or NoInputFilter()
        self.networks: dict[str, NetworkWrapper] = {}
        self.signals = {name: signals.Signal(name) for name in self.signal_names}
        self.total_steps = 0
        self.training_iteration = 0
        self._target_updated = False
        self._steps_since_training = 0
        self._episodes_since_training = 0
        self._steps_at_target_update = 0
        self._iterations_at_target_update = 0
        self._reports: list[tuple[str, dict[str, Any]]] = []
        #: the probabilities (N, A) of the actions last chosen, where the policy knows them (discrete actions)
        self.last_action_probabilities: np.ndarray | None = None
        self._transition_observers: list[TransitionObserver] = []
        #: the raw observations of the last ``act`` call and what the input filter made of them, so ``observe``
        #: stores exactly what was acted on
        self._acted: tuple[np.ndarray, np.ndarray] | None = None
        self._check_step_unit("num_consecutive_playing_steps", (EnvironmentSteps, EnvironmentEpisodes))
        self._check_step_unit("num_steps_between_copying_online_weights_to_target",
                              (EnvironmentSteps, TrainingSteps, EnvironmentEpisodes))
        self._check_ranges()

    def _check_step_unit(self, field: str, allowed: tuple[type, ...]) -> None:
        value = getattr(self.algorithm, field)
        if not isinstance(value, allowed):
            raise ParameterValueError(
                f"agent_params.algorithm.{field} = {value!r} must be one of "
                f"{', '.join(t.__name__ for t in allowed)}, for example {allowed[0].__name__}(100)."
            )
        # A unit's constructor refuses a negative count, but ``num_steps`` can still be assigned afterwards; a
        # negative period would train (or copy the target) on every step without saying so.
        check_range(f"agent_params.algorithm.{field}.num_steps", cast(StepMethod, value).num_steps, 0, allow_infinity=True,
                    example=100)

    def _check_ranges(self) -> None:
        """Refuse out-of-range values every agent reads (see ``check_range``); subclasses add their own."""
        algorithm = self.algorithm
        # gamma outside [0, 1] makes the discounted return diverge or alternate in sign.
        check_range("agent_params.algorithm.discount", algorithm.discount, 0, 1, example=0.99)
        # ``train`` runs int(n) updates per phase: 0 or a fraction would silently never (or not as asked) learn.
        check_range("agent_params.algorithm.num_consecutive_training_steps", algorithm.num_consecutive_training_steps,
                    1, integer=True, example=1)
        # target = rate * online + (1 - rate) * target: 0 never moves the target, above 1 overshoots it.
        check_range("agent_params.algorithm.rate_for_copying_weights_to_target",
                    algorithm.rate_for_copying_weights_to_target, 0, 1, low_inclusive=False, example=1.0)
        if isinstance(self.params.memory, MemoryParameters):
            check_max_size(self.params.memory.max_size)

    # ---- acting -------------------------------------------------------------------------------------
    def act(self, raw_obs: np.ndarray, phase: RunPhase) -> np.ndarray:
        """Actions for raw observations (N, D): uniform random in heatup, else from the networks."""
        obs = self.input_filter.filter_observation(raw_obs, update=False)
        self._acted = (raw_obs, obs) if phase != RunPhase.TEST else None
        if phase == RunPhase.HEATUP and not self.algorithm.heatup_using_network_decisions:
            actions = self.random_actions(raw_obs.shape[0])
            if isinstance(self.spaces.action, DiscreteActionSpace):
                num_actions = self.spaces.action.num_actions
                self.last_action_probabilities = np.full((raw_obs.shape[0], num_actions), 1.0 / num_actions)
            return actions
        self.before_network_decision(obs, phase)
        update = phase != RunPhase.TEST and self.algorithm.update_pre_network_filters_state_on_inference
        return self.choose_actions(self.pre_network_filter.filter_observation(obs, update=update), phase)

    def before_network_decision(self, obs: np.ndarray, phase: RunPhase) -> None:
        """Called with input-filtered observations (N, D) right before the pre-network filter and the networks
        decide (not for heatup's random actions): an algorithm may prepare its pre-network filter here."""

    def random_actions(self, count: int) -> np.ndarray:
        action_space = self.spaces.action
        if isinstance(action_space, DiscreteActionSpace):
            return self.rng.integers(0, action_space.num_actions, count).astype(np.int64)
        return self.rng.uniform(action_space.low, action_space.high, (count, *action_space.shape)).astype(np.float32)

    def choose_actions(self, obs: np.ndarray, phase: RunPhase) -> np.ndarray:
        """Actions for pre-network-filtered observations (N, D)."""
        raise NotImplementedError

    def exploration_value(self, phase: RunPhase) -> float:
        """The exploration control value shown as ``Epsilon`` in the CSV."""
        return 0.0

    # ---- the policy, for export ---------------------------------------------------------------------
    def policy_outputs(self, raw_obs: np.ndarray) -> list[np.ndarray]:
        """What the exported model computes, computed by the agent itself: raw observations (B, D) through its input
        and pre-network filters (their statistics unchanged), then its networks. The outputs are float32 arrays in
        model order (see :attr:`~rlframe.export.graph.PolicyGraph.outputs`): DQN family ``[q_values (B, A)]``;
        discrete Clipped PPO ``[value (B,), action_probabilities (B, A)]``; continuous ``[value, mean, std]``."""
        obs = self.input_filter.filter_observation(np.asarray(raw_obs, dtype=np.float32), update=False)
        return self.network_outputs(self.pre_network_filter.filter_observation(obs, update=False))

    def network_outputs(self, obs: np.ndarray) -> list[np.ndarray]:
        """:meth:`policy_outputs` for pre-network-filtered observations (B, D)."""
        raise self._not_exportable()

    def policy_head(self) -> Head:
        """The networks after the filters, with a snapshot of their weights (see :mod:`rlframe.export.graph`)."""
        raise self._not_exportable()

    def _not_exportable(self) -> ExportError:
        return ExportError(f"{type(self).__name__} has no exportable policy (it describes no policy head); rlframe "
                           "exports DQN, DDQN, DDQN+BCQ, Clipped PPO and Actor-Critic.")

    def policy_graph(self) -> PolicyGraph:
        """The policy as the exported model computes it: the observation filters of both stages, with a snapshot of
        their statistics, then :meth:`policy_head`."""
        steps = normalization_steps(self.input_filter, self.pre_network_filter, self.spaces.observation_size)
        return PolicyGraph(type(self).__name__, self.spaces.state["observation"], self.spaces.action, steps,
                           self.policy_head())

    # ---- observing ----------------------------------------------------------------------------------
    def shape_reward(self, raw_reward: np.ndarray, update: bool) -> np.ndarray:
        return self.input_filter.filter_reward(raw_reward.astype(np.float32), update=update)

    def observe(
        self, env_index: np.ndarray, raw_obs: np.ndarray, action: np.ndarray, raw_reward: np.ndarray,
        raw_next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, phase: RunPhase,
    ) -> np.ndarray:
        """Filter and store k transitions played in heatup or training by the copies ``env_index`` (k,);
        returns the shaped rewards (k,).

        The stored observations are those :meth:`act` acted on (filtered before this step updated the input
        filter's statistics); the statistics are updated with them afterwards. A batch ``act`` did not see (a
        caller that stores without acting) is filtered now, before the update, the same way.
        """
        for observer in self._transition_observers:
            observer(env_index, raw_obs, action, raw_reward, raw_next_obs, terminated, truncated,
                     self.last_action_probabilities)
        acted = self._acted
        if acted is not None and acted[0] is raw_obs:
            obs = acted[1]
        else:
            obs = self.input_filter.filter_observation(raw_obs, update=False)
        self._acted = None
        self.input_filter.update_statistics(raw_obs)
        next_obs = self.input_filter.filter_observation(raw_next_obs, update=False)
        reward = self.shape_reward(raw_reward, update=True)
        if phase != RunPhase.HEATUP or self.learns_from_heatup:
            self.store(env_index, obs, action, reward, next_obs, terminated, truncated)
        self.total_steps += raw_obs.shape[0]
        if phase == RunPhase.TRAIN:
            self._steps_since_training += raw_obs.shape[0]
            self._episodes_since_training += int(np.count_nonzero(terminated | truncated))
        return reward

    def store(self, env_index: np.ndarray, obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
              next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> None:
        raise NotImplementedError

    def episode_ended(self, discounted_return: float) -> None:
        self.signals[signals.DISCOUNTED_RETURN].add(discounted_return)

    def add_transition_observer(self, observer: TransitionObserver) -> None:
        self._transition_observers.append(observer)

    def remove_transition_observer(self, observer: TransitionObserver) -> None:
        self._transition_observers.remove(observer)

    @property
    def observes_transitions(self) -> bool:
        """Whether someone logs the transitions (an algorithm then keeps ``last_action_probabilities`` up to date)."""
        return bool(self._transition_observers)

    # ---- what the loop reports ----------------------------------------------------------------------
    def signal_columns(self) -> list[str]:
        return [column for signal in self.signals.values() for column in signal.columns()]

    def row_statistics(self) -> dict[str, Any]:
        transitions, episodes = self.memory_sizes()
        row: dict[str, Any] = {"Training Iter": self.training_iteration, "ER #Transitions": transitions,
                               "ER #Episodes": episodes, "Update Target Network": int(self._target_updated)}
        for signal in self.signals.values():
            row.update(signal.stats())
            signal.reset()
        self._target_updated = False
        return row

    # ---- training -----------------------------------------------------------------------------------
    def train(self) -> int:
        """Run the training phases that are due; returns how many gradient updates were made.

        One phase (``num_consecutive_training_steps`` updates) is due per ``num_consecutive_playing_steps``
        played in the training phase, so the ratio of updates to environment steps does not depend on how
        many environments act at once.
        """
        count = self.due_updates()
        if count:
            self.run_updates(count)
            self.signals[signals.LEARNING_RATE].add(self.networks["main"].optimizer.learning_rate)
        return count

    def due_updates(self) -> int:
        """Consume the cadence counters: the gradient updates due now (0 when none is, or before
        :meth:`ready_to_train`)."""
        playing = self.algorithm.num_consecutive_playing_steps
        period = max(1, int(playing.num_steps))
        if isinstance(playing, EnvironmentEpisodes):
            phases, self._episodes_since_training = divmod(self._episodes_since_training, period)
        else:
            phases, self._steps_since_training = divmod(self._steps_since_training, period)
        if not phases or not self.ready_to_train():
            return 0
        return phases * int(self.algorithm.num_consecutive_training_steps)

    def run_updates(self, count: int) -> None:
        """``count`` gradient updates (:meth:`learn`), the target-network schedule checked after each; an algorithm
        may run them as one batch (reading its results back once)."""
        for _ in range(count):
            self.record_update(self.learn())
            self.training_iteration += 1
            self.maybe_update_target()

    def ready_to_train(self) -> bool:
        return True

    def learn(self) -> TrainResult:
        """One gradient update."""
        raise NotImplementedError

    def record_update(self, result: TrainResult) -> None:
        self.signals[signals.LOSS].add(result.loss)
        if result.grad_norm is not None:
            self.signals[signals.GRADS].add(result.grad_norm)

    def drain_reports(self) -> list[tuple[str, dict[str, Any]]]:
        """Screen lines ``(prefix, values)`` the agent produced since the last call (the graph manager prints them)."""
        reports, self._reports = self._reports, []
        return reports

    def maybe_update_target(self) -> None:
        period: StepMethod = self.algorithm.num_steps_between_copying_online_weights_to_target
        if not period.num_steps or not any(net.target is not None for net in self.networks.values()):
            return
        if isinstance(period, TrainingSteps):
            due = self.training_iteration - self._iterations_at_target_update >= period.num_steps
        else:
            due = self.total_steps - self._steps_at_target_update >= period.num_steps
        if due:
            for net in self.networks.values():
                if net.target is not None:
                    net.update_target(float(self.algorithm.rate_for_copying_weights_to_target))
            self._iterations_at_target_update = self.training_iteration
            self._steps_at_target_update = self.total_steps
            self._target_updated = True

    # ---- acting elsewhere ---------------------------------------------------------------------------
    def acting_state(self) -> AgentCheckpoint:
        arrays = {f"network.{name}.{k}": v for name, net in self.networks.items() for k, v in net.online_weights().items()}
        arrays.update({f"input_filter.{k}": v for k, v in self.input_filter.state().items()})
        arrays.update({f"pre_network_filter.{k}": v for k, v in self.pre_network_filter.state().items()})
        return AgentCheckpoint(arrays, {"schedules": {k: s.state() for k, s in self.schedules().items()},
                                        "training_iteration": self.training_iteration})

    def load_acting_state(self, state: AgentCheckpoint) -> None:
        for name, net in self.networks.items():
            net.load_online_weights(with_prefix(state.arrays, f"network.{name}."))
        self.input_filter.load_state(with_prefix(state.arrays, "input_filter."))
        self.pre_network_filter.load_state(with_prefix(state.arrays, "pre_network_filter."))
        for key, schedule in self.schedules().items():
            schedule.load_state(state.values["schedules"][key])
        # an algorithm that prepares its first rollout differently (Clipped PPO's filter fit) sees the learner's progress
        self.training_iteration = int(state.values["training_iteration"])

    def acted_elsewhere(self, count: int) -> None:
        # Every schedule an algorithm checkpoints steps once per training action (exploration, PPO's clip decay).
        for schedule in self.schedules().values():
            schedule.step(count)

    # ---- state --------------------------------------------------------------------------------------
    def save_networks(self, prefix: str) -> None:
        for net in self.networks.values():
            net.save(prefix)

    def checkpoint_state(self) -> AgentCheckpoint:
        arrays: dict[str, np.ndarray] = {}
        for name, net in self.networks.items():
            arrays.update({f"optimizer.{name}.{k}": v for k, v in net.optimizer.state().items()})
        arrays.update({f"input_filter.{k}": v for k, v in self.input_filter.state().items()})
        arrays.update({f"pre_network_filter.{k}": v for k, v in self.pre_network_filter.state().items()})
        values = {"counters": self.counters(), "schedules": {k: s.state() for k, s in self.schedules().items()},
                  "rng": self.rng.bit_generator.state}
        return AgentCheckpoint(arrays, values)

    def load_checkpoint_state(self, prefix: str, state: AgentCheckpoint) -> None:
        for name, net in self.networks.items():
            net.load(prefix)
            net.optimizer.load_state(with_prefix(state.arrays, f"optimizer.{name}."))
        self.input_filter.load_state(with_prefix(state.arrays, "input_filter."))
        self.pre_network_filter.load_state(with_prefix(state.arrays, "pre_network_filter."))
        self.load_counters(state.values["counters"])
        for key, schedule in self.schedules().items():
            schedule.load_state(state.values["schedules"][key])
        self.rng.bit_generator.state = state.values["rng"]

    def filter_dataset(self, obs: np.ndarray, next_obs: np.ndarray, reward: np.ndarray,
                       update: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A dataset's observations, next observations and rewards (T, ...) through the input filter; ``update``
        fits its statistics on the observations and rewards first."""
        return (self.input_filter.filter_observation(obs, update=update),
                self.input_filter.filter_observation(next_obs, update=False),
                self.input_filter.filter_reward(reward, update=update))

    def schedules(self) -> dict[str, Schedule]:
        """Stateful schedules to checkpoint, by name."""
        return {}

    def counters(self) -> dict[str, float]:
        return {
            "total_steps": self.total_steps,
            "training_iteration": self.training_iteration,
            "steps_since_training": self._steps_since_training,
            "episodes_since_training": self._episodes_since_training,
            "steps_at_target_update": self._steps_at_target_update,
            "iterations_at_target_update": self._iterations_at_target_update,
        }

    def load_counters(self, counters: dict[str, Any]) -> None:
        self.total_steps = int(counters["total_steps"])
        self.training_iteration = int(counters["training_iteration"])
        self._steps_since_training = int(counters["steps_since_training"])
        self._episodes_since_training = int(counters["episodes_since_training"])
        self._steps_at_target_update = int(counters["steps_at_target_update"])
        self._iterations_at_target_update = int(counters["iterations_at_target_update"])

    def memory_state(self) -> dict[str, np.ndarray]:
        return {}

    def load_memory_state(self, state: dict[str, np.ndarray]) -> None:
        pass

    def memory_sizes(self) -> tuple[int, int]:
        """(transitions, episodes) held in memory, for the CSV's ``ER #`` columns."""
        return 0, 0
