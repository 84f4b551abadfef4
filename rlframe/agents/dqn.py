"""DQN (Mnih et al. 2015) and the Double-DQN target (van Hasselt et al. 2016) on MXNet Gluon.

How it runs: the graph manager calls ``act`` for N environments at once (epsilon-greedy over the online
network's Q-values), then ``observe`` stores the N transitions in a uniform replay ring buffer; ``train``
runs ``num_consecutive_training_steps`` updates per ``num_consecutive_playing_steps`` played. An update
samples ``batch_size`` transitions and minimises the squared (or Huber) TD error of the taken action:

    td_target = reward + discount * Q_target(next_obs, a*),   discount = gamma * (1 - terminated)
    a* = argmax_a Q_target(next_obs, a)      (DQN)
    a* = argmax_a Q_online(next_obs, a)      (DDQN)

Deliberate differences from Coach: a time-limit truncation is not terminal (it bootstraps), and
``replace_mse_with_huber_loss`` and ``l2_regularization`` are honoured (Coach's MXNet backend ignored both).

Where the time goes (what makes it fast, as Clipped PPO): acting runs a numpy copy of the online network, taken
again only after its weights changed (``NetworkWrapper.online_snapshot``); the K updates of one ``train`` call
sample their K minibatches in one draw, copy them into MXNet as one array, and run as a bound executor each
(``NetworkWrapper.update``) without waiting for one another; their losses and gradient norms are read back once,
after the last. Shapes: B = batch, A = actions, D = observation size, K = updates of one call (legend in
``rlframe.core_types``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from mxnet import gluon, nd

from rlframe.agents.agent import Agent
from rlframe.agents.dataset_models import DatasetModel, reward_model
from rlframe.core_types import EnvironmentSteps, RunPhase
from rlframe.errors import ParameterValueError
from rlframe.exploration.e_greedy import EGreedy
from rlframe.exploration.parameters import EGreedyParameters
from rlframe.exploration.policy import resolve_exploration
from rlframe.export.graph import QValues
from rlframe.memories.dataset import TransitionDataset, minibatch_rows
from rlframe.memories.experience_replay import (
    ExperienceReplay,
    ExperienceReplayParameters,
    TransitionBatch,
    transition_capacity,
)
from rlframe.networks.blocks import MLP, observation_embedder, q_head_output
from rlframe.networks.columns import Columns
from rlframe.networks.distributions import chunked
from rlframe.networks.network_wrapper import NetworkWrapper, TrainResult
from rlframe.networks.parameters import FCMiddlewareParameters, InputEmbedderParameters, NetworkParameters, QHeadParameters
from rlframe.outputs import signals
from rlframe.parameters import AgentParameters, AlgorithmParameters, MiddlewareScheme
from rlframe.schedules import LinearSchedule, Schedule
from rlframe.spaces import DiscreteActionSpace, SpacesDefinition

#: minibatches of a batch-RL epoch packed and copied into MXNet at once (bounds the packed array's memory)
EPOCH_BLOCK = 256


def td_target(F: Any, reward: Any, discount: Any, next_q_target: Any, next_q_online: Any = None,
              next_allowed: Any = None) -> Any:
    """Bellman targets (B,) from rewards (B,), per-row discounts (B,) = gamma * (1 - terminated) and
    next-state Q-values (B, A). With ``next_q_online`` the next action is chosen by the online network
    (Double DQN); otherwise by the target network. ``next_allowed`` (B, A) of 1/0 restricts the choice to
    the actions marked 1 (BCQ's action drop; every row needs one). ``F`` is ``mxnet.nd`` or ``mxnet.sym``."""
    selector = next_q_target if next_q_online is None else next_q_online
    if next_allowed is not None:
        selector = F.where(next_allowed, selector, F.ones_like(selector) * -1e30)
    next_action = F.argmax(selector, axis=1)
    return reward + discount * F.pick(next_q_target, next_action, axis=1)


def td_loss(F: Any, q_taken: Any, target: Any, use_huber: bool) -> Any:
    """Per-sample loss (B,): squared TD error, or Huber with delta 1."""
    error = q_taken - F.stop_gradient(target)
    if not use_huber:
        return F.square(error)
    abs_error = F.abs(error)
    return F.where(abs_error <= 1.0, 0.5 * F.square(error), abs_error - 0.5)


def transition_columns(obs_size: int, num_masked_actions: int = 0) -> Columns:
    """The packed layout of a DQN minibatch, (B, 2D + 3 [+ A]) float32: ``obs`` (D), ``next_obs`` (D), ``action``,
    ``reward``, ``discount`` = gamma * (1 - terminated), and with ``num_masked_actions`` = A, ``next_allowed`` (A)
    marking with 1 the next actions the target may choose (BCQ)."""
    widths = {"obs": obs_size, "next_obs": obs_size, "action": 1, "reward": 1, "discount": 1}
    if num_masked_actions:
        widths["next_allowed"] = num_masked_actions
    return Columns(**widths)


class QLoss(gluon.HybridBlock):
    """The TD loss of a batch as one graph (bound once as an executor): online forward, target forward,
    target, loss (B,).

    Its one input is a minibatch packed as ``layout`` says (see :func:`transition_columns`), so an update
    copies one array into MXNet instead of five.
    """

    def __init__(self, online: gluon.HybridBlock, target: gluon.HybridBlock, layout: Columns, double: bool,
                 use_huber: bool) -> None:
        super().__init__(prefix="qloss_")
        self.online = online
        self.target = target
        self.layout = layout
        self._double = double
        self._use_huber = use_huber

    def hybrid_forward(self, F: Any, packed: Any) -> Any:
        layout = self.layout
        obs, next_obs = layout.slice(F, packed, "obs"), layout.slice(F, packed, "next_obs")
        action, reward, discount = (layout.column(F, packed, name) for name in ("action", "reward", "discount"))
        allowed = layout.slice(F, packed, "next_allowed") if "next_allowed" in layout.widths else None
        if self._double:
            # One online pass over obs and next_obs together (2B rows) instead of two calls.
            both = self.online(F.concat(obs, next_obs, dim=0))
            q, next_q_online = F.split(both, num_outputs=2, axis=0)
        else:
            q, next_q_online = self.online(obs), None
        target = td_target(F, reward, discount, self.target(next_obs), next_q_online, allowed)
        return td_loss(F, F.pick(q, action, axis=1), target, self._use_huber)


class DQNAlgorithmParameters(AlgorithmParameters):
    """DQN's algorithm defaults: copy the target every 10,000 steps, train once every 4 steps.

    :param supports_parameter_noise: accepted for Coach compatibility, not used (rlframe has no parameter-noise
        exploration).
    """

    def __init__(self) -> None:
        super().__init__()
        self.num_steps_between_copying_online_weights_to_target = EnvironmentSteps(10000)
        self.num_consecutive_playing_steps = EnvironmentSteps(4)
        self.discount = 0.99
        self.supports_parameter_noise = True


class DQNNetworkParameters(NetworkParameters):
    """Medium embedder (Dense 256), Medium middleware (Dense 512), a Q head, Adam, batch 32, Huber loss."""

    def __init__(self) -> None:
        super().__init__()
        self.input_embedders_parameters = {"observation": InputEmbedderParameters()}
        self.middleware_parameters = FCMiddlewareParameters(scheme=MiddlewareScheme.Medium)
        self.heads_parameters = [QHeadParameters()]
        self.optimizer_type = "Adam"
        self.batch_size = 32
        self.replace_mse_with_huber_loss = True
        self.create_target_network = True
        self.should_get_softmax_probabilities = False


class DQNAgentParameters(AgentParameters):
    """DQN: e-greedy from 1 to 0.1 over 1M steps (0.05 in evaluation), uniform replay of 1M transitions."""

    def __init__(self) -> None:
        exploration = EGreedyParameters()
        exploration.epsilon_schedule = LinearSchedule(1, 0.1, 1000000)
        exploration.evaluation_epsilon = 0.05
        super().__init__(
            algorithm=DQNAlgorithmParameters(),
            exploration=exploration,
            memory=ExperienceReplayParameters(),
            networks={"main": DQNNetworkParameters()},
        )

    @property
    def agent_class(self) -> type:
        return DQNAgent


class DQNAgent(Agent):
    """DQN over a discrete action space."""

    signal_names = Agent.signal_names + (signals.Q,)
    double_q = False
    masks_next_actions = False  # BCQ: the target's next action is chosen among those next_allowed marks

    def __init__(self, agent_params: AgentParameters, spaces: SpacesDefinition, rng: np.random.Generator) -> None:
        super().__init__(agent_params, spaces, rng)
        if not isinstance(spaces.action, DiscreteActionSpace):
            raise ParameterValueError(
                f"{type(self).__name__} needs a discrete action space; the environment's is {spaces.action!r}. "
                "Use Clipped PPO for continuous actions."
            )
        num_actions = spaces.action.num_actions
        self.num_actions = num_actions  # A
        net_params: NetworkParameters = agent_params.network_wrappers["main"]
        head = net_params.heads_parameters[0] if net_params.heads_parameters else QHeadParameters()
        output = q_head_output(head, num_actions, "network_wrappers['main'].heads_parameters[0]")
        embedder = observation_embedder(net_params)

        def build(prefix: str) -> gluon.HybridBlock:
            return MLP(embedder, net_params.middleware_parameters, num_actions, spaces.observation_size,
                       output=output, prefix=prefix)

        self.network = NetworkWrapper("main", net_params, build, spaces.observation_size)
        if self.network.target is None:
            raise ParameterValueError(
                "network_wrappers['main'].create_target_network = False: DQN needs a target network; set it to True."
            )
        self.networks["main"] = self.network
        self.layout = transition_columns(spaces.observation_size, num_actions if self.masks_next_actions else 0)
        self.loss = QLoss(self.network.online, self.network.target, self.layout, self.double_q,
                          bool(net_params.replace_mse_with_huber_loss))
        exploration, exploration_where = resolve_exploration(agent_params.exploration, spaces)
        if not isinstance(exploration, EGreedyParameters):
            raise ParameterValueError(
                f"{exploration_where} is {type(exploration).__name__}; {type(self).__name__} uses EGreedyParameters."
            )
        self.exploration = EGreedy(exploration, num_actions, rng, exploration_where)
        # BatchRLGraphManager adds this network (off-policy evaluation, BCQ's state embedding).
        self.reward_model: DatasetModel | None = None
        if "reward_model" in agent_params.network_wrappers:
            self.reward_model = reward_model(agent_params.network_wrappers["reward_model"], spaces.observation_size,
                                             num_actions)
            self.networks["reward_model"] = self.reward_model.network
        capacity = transition_capacity(agent_params.memory.max_size, "agent_params.memory.max_size")
        self.memory = ExperienceReplay(capacity, spaces.state["observation"].shape, (), np.int64)

    def choose_actions(self, obs: np.ndarray, phase: RunPhase) -> np.ndarray:
        # A numpy copy of the online network, taken again after every change of its weights (an update, a
        # load): a step of a few copies costs ~20 us instead of ~400 us through MXNet.
        q_values = self.network.online_snapshot(MLP.numpy_forward)(obs)
        self.signals[signals.Q].add_many(q_values.max(axis=1))
        if self.observes_transitions:  # someone records a dataset: keep the behaviour probabilities
            self.last_action_probabilities = self.exploration.probabilities(q_values, phase)
        return self.exploration.choose(q_values, phase)

    def exploration_value(self, phase: RunPhase) -> float:
        return self.exploration.epsilon(phase)

    def network_outputs(self, obs: np.ndarray) -> list[np.ndarray]:
        return [self.network.predict(obs)]

    def policy_head(self) -> QValues:
        return QValues(self.network.online.describe(), float(self.network.params.softmax_temperature))

    def store(self, env_index: np.ndarray, obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
              next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> None:
        self.memory.store(TransitionBatch(obs, action, reward, next_obs, terminated, truncated))

    def ready_to_train(self) -> bool:
        return len(self.memory) >= self.network.params.batch_size

    def learn(self) -> TrainResult:
        """One update on a minibatch sampled from the replay memory, waiting for its loss."""
        batch = self.memory.sample(int(self.network.params.batch_size), self.rng)
        return self.network.train_step(self.loss, self.pack(batch))

    def run_updates(self, count: int) -> None:
        """The K = ``count`` updates of one training call at once (see the module docstring)."""
        batch = self.memory.sample(count * int(self.network.params.batch_size), self.rng)
        self.update_on(self.pack(batch), count, check_target=True)

    def pack(self, batch: TransitionBatch, next_allowed: np.ndarray | None = None) -> np.ndarray:
        """``batch`` (K * B transitions, K minibatches one after the other) as the loss block's packed input
        (K * B, C); ``next_allowed`` (K * B, A) for BCQ."""
        filtered = self.pre_network_filter.filter_observation
        if self.algorithm.update_pre_network_filters_state_on_train:
            # One minibatch at a time, as the updates would see the filter's statistics one by one.
            size = int(self.network.params.batch_size)
            obs = np.concatenate([filtered(batch.obs[i:i + size], update=True) for i in range(0, len(batch.obs), size)])
        else:
            obs = filtered(batch.obs, update=False)
        discount = float(self.algorithm.discount) * (1.0 - batch.terminated.astype(np.float32))
        columns = {"obs": obs, "next_obs": filtered(batch.next_obs, update=False), "action": batch.action,
                   "reward": batch.reward, "discount": discount}
        if next_allowed is not None:
            columns["next_allowed"] = next_allowed
        return self.layout.pack(**columns)

    def update_on(self, packed: np.ndarray, count: int, check_target: bool) -> None:
        """``count`` updates on ``packed`` (count * B, C), minibatch i in rows [i * B, (i + 1) * B), each
        followed by the target-network check when ``check_target``; the losses and gradient norms are read back
        once, after the last (reading each as it comes would make Python wait for every update)."""
        size = int(self.network.params.batch_size)
        minibatches = nd.array(packed, dtype=np.float32).reshape((count, size, packed.shape[1]))
        losses, grad_norms = [], []
        for i in range(count):
            outputs, grad_norm = self.network.update(self.loss, minibatches[i])
            losses.append(outputs[0].copy())  # the executor overwrites its outputs in the next update
            grad_norms.append(grad_norm)
            self.training_iteration += 1
            if check_target:
                self.maybe_update_target()
        measured = [g for g in grad_norms if g is not None]
        values = nd.concat(*losses, *measured, dim=0).asnumpy().tolist()
        norms = iter(values[count:])
        for loss, grad_norm in zip(values[:count], grad_norms):
            self.record_update(TrainResult(loss, None if grad_norm is None else next(norms), []))

    # ---- batch RL (rlframe.agents.contract.OfflineLearner) ------------------------------------------
    def fit_reward_model(self, train: TransitionDataset, epochs: int, rng: np.random.Generator) -> list[float]:
        if self.reward_model is None:
            raise ParameterValueError("Off-policy evaluation needs network_wrappers['reward_model']; "
                                      "BatchRLGraphManager adds it.")
        return self.reward_model.fit(train, self.pre_network_filter.filter_observation(train.obs, update=False),
                                     epochs, rng)

    def evaluation_estimates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.reward_model is None:
            raise ParameterValueError("Off-policy evaluation needs network_wrappers['reward_model']; "
                                      "BatchRLGraphManager adds it.")
        filtered = self.pre_network_filter.filter_observation(obs, update=False)
        return chunked(self.network.predict, filtered), self.reward_model.predict(filtered)

    @property
    def softmax_temperature(self) -> float:
        return float(self.network.params.softmax_temperature)

    def prepare_offline(self, train: TransitionDataset) -> list[str]:
        """Called once before the first epoch of batch RL with the training split (BCQ builds its action
        filter here); returns lines for the log."""
        return []

    def next_allowed(self, rows: np.ndarray) -> np.ndarray | None:
        """(B, A) next actions the target may choose for training transitions ``rows``; None: all of them."""
        return None

    def train_epoch(self, train: TransitionDataset) -> int:
        """One pass over ``train`` in shuffled minibatches of ``batch_size`` (see ``minibatch_rows``); returns
        the number of updates. As in Coach's batch mode, the target-network schedule is checked once, after
        the pass (copying every 50 updates inside the pass instead cost ~40 reward on the CartPole notebook).
        The pass runs in blocks of ``EPOCH_BLOCK`` minibatches, each packed and copied into MXNet at once."""
        minibatches = minibatch_rows(len(train), int(self.network.params.batch_size), self.rng)
        for start in range(0, len(minibatches), EPOCH_BLOCK):
            block = minibatches[start:start + EPOCH_BLOCK]
            rows = block.reshape(-1)
            self.update_on(self.pack(train.batch(rows), self.next_allowed(rows)), len(block), check_target=False)
        self.maybe_update_target()
        self.signals[signals.LEARNING_RATE].add(self.network.optimizer.learning_rate)
        return len(minibatches)

    def schedules(self) -> dict[str, Schedule]:
        return {"epsilon_schedule": self.exploration.epsilon_schedule}

    def memory_state(self) -> dict[str, np.ndarray]:
        return self.memory.state()

    def load_memory_state(self, state: dict[str, np.ndarray]) -> None:
        self.memory.load_state(state)

    def memory_sizes(self) -> tuple[int, int]:
        return len(self.memory), self.memory.num_episodes
