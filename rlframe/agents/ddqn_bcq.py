"""DDQN + BCQ for discrete actions (Fujimoto et al. 2019, arXiv:1910.01708, in Coach's action-dropping form).

Batch RL only (``BatchRLGraphManager``). It is Double DQN whose target may only choose next actions the
dataset makes familiar: before the first epoch, an action filter marks for every training transition's next
state s' which actions are allowed, and the target becomes

    y = r + gamma * (1 - terminated) * Q_target(s', argmax over allowed a of Q_online(s', a)).

Two filters (``algorithm.action_drop_method_parameters``), both fitted on the training split only:

* :class:`KNNParameters`: one nearest-neighbour index per action over the states (or, with
  ``use_state_embedding_instead_of_state``, the reward model's last hidden layer) where the dataset took that
  action. ``average_dist`` is the sum over actions of every training state's distance to its nearest
  neighbour in that action's index, divided by the number of transitions; action a is dropped at s' when
  its nearest neighbour is farther than ``average_dist_coefficient * average_dist``. Two departures from
  Coach, both measured on the CartPole notebook's data (final reward ~155 -> ~195 over seeds 0-7): a state
  is never its own neighbour (a next state is usually a dataset state too, and finding itself at distance 0
  kept only the action the behaviour policy happened to log there), and when every training reward is the
  same the reward model has learnt nothing about states, so raw states are used instead of its embedding.
* :class:`NNImitationModelParameters`: an imitation model (softmax over actions, trained for
  ``imitation_model_num_epochs``) drops action a at s' when its probability is below
  ``mask_out_actions_threshold`` (an absolute threshold, as Coach's).

A next state where every action is dropped gets one allowed action drawn uniformly at random for each update
(Coach replaced that row's Q-values by random numbers, which amounts to the same choice).

The action filter shapes only the training targets: the agent acts, and is exported (:mod:`rlframe.export`), as
DQN is, by the main network's Q-values.
"""
from __future__ import annotations

import copy

import numpy as np
from sklearn.neighbors import NearestNeighbors

from rlframe.agents.dataset_models import DatasetModel, imitation_model
from rlframe.agents.ddqn import DDQNAgent, DDQNAgentParameters
from rlframe.agents.dqn import DQNAlgorithmParameters
from rlframe.core_types import EnvironmentSteps
from rlframe.errors import ParameterValueError
from rlframe.memories.dataset import TransitionDataset
from rlframe.networks.distributions import softmax
from rlframe.networks.parameters import ClassificationHeadParameters, NetworkParameters
from rlframe.parameters import AgentParameters, Parameters
from rlframe.spaces import SpacesDefinition


class KNNParameters(Parameters):
    """Drop next actions whose nearest logged neighbour is far (see the module docstring).

    :param average_dist_coefficient: multiplies ``average_dist`` to give the distance threshold.
    :param knn_size: at most this many states per action are indexed (the first ones of the training split).
    :param use_state_embedding_instead_of_state: measure distances between the reward model's hidden
        activations instead of raw (pre-network-filtered) observations.
    """

    def __init__(self, average_dist_coefficient: float = 1.0, knn_size: int = 50000,
                 use_state_embedding_instead_of_state: bool = True) -> None:
        self.average_dist_coefficient = average_dist_coefficient
        self.knn_size = knn_size
        self.use_state_embedding_instead_of_state = use_state_embedding_instead_of_state


class NNImitationModelParameters(Parameters):
    """Drop next actions the imitation model gives a probability below ``mask_out_actions_threshold``.

    :param imitation_model_num_epochs: passes over the training split to fit the imitation model.
    :param mask_out_actions_threshold: the probability under which an action is dropped.
    """

    def __init__(self, imitation_model_num_epochs: int = 100, mask_out_actions_threshold: float = 0.35) -> None:
        self.imitation_model_num_epochs = imitation_model_num_epochs
        self.mask_out_actions_threshold = mask_out_actions_threshold


class DDQNBCQAlgorithmParameters(DQNAlgorithmParameters):
    """DQN's algorithm parameters, a target copy every 30,000 steps and the action filter.

    :param action_drop_method_parameters: :class:`KNNParameters` or :class:`NNImitationModelParameters`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.num_steps_between_copying_online_weights_to_target = EnvironmentSteps(30000)
        self.action_drop_method_parameters: Parameters = KNNParameters()


class DDQNBCQAgentParameters(DDQNAgentParameters):
    """DDQN's parameters with :class:`DDQNBCQAlgorithmParameters`."""

    def __init__(self) -> None:
        super().__init__()
        self.algorithm = DDQNBCQAlgorithmParameters()

    @property
    def agent_class(self) -> type:
        return DDQNBCQAgent


def _nearest_other(distances: np.ndarray) -> np.ndarray:
    """The distance to the nearest indexed state that is not the query itself (N,), from the distances (N, k)
    to its k = 1 or 2 nearest neighbours (inf when the index holds only the query).

    A next state is usually a state of the dataset too (the next row of its episode), so without this every
    next state would find itself, at distance 0, in the index of the action logged there, and the filter
    would keep that one action: the target would follow the behaviour policy instead of the data's support.
    """
    second = distances[:, 1] if distances.shape[1] > 1 else np.full(len(distances), np.inf)
    return np.where(distances[:, 0] > 0, distances[:, 0], second)


def knn_allowed(features: np.ndarray, action: np.ndarray, next_features: np.ndarray, num_actions: int,
                coefficient: float, knn_size: int) -> tuple[np.ndarray, float]:
    """The kNN action filter: (allowed (T, A) bool at each next state, average_dist).

    ``features`` (T, F) are the training states with their logged ``action`` (T,); ``next_features`` (T, F)
    the next states to filter. An action the training split never took is never allowed.
    """
    distances = np.full((len(features), num_actions), np.inf)
    next_distances = np.full((len(next_features), num_actions), np.inf)
    for a in range(num_actions):
        indexed = features[action == a][:knn_size]
        if len(indexed):
            index = NearestNeighbors(n_neighbors=min(2, len(indexed))).fit(indexed)
            distances[:, a] = _nearest_other(index.kneighbors(features)[0])
            next_distances[:, a] = _nearest_other(index.kneighbors(next_features)[0])
    taken = np.isfinite(distances)
    average_dist = float(distances[taken].sum() / len(features))
    return next_distances <= coefficient * average_dist, average_dist


def imitation_parameters(agent_params: AgentParameters) -> NetworkParameters:
    """The imitation model's network: ``network_wrappers['imitation_model']`` as Coach's presets define it, or
    else a copy of the main network's with a classification head and no target network (the preset's objects
    are left as they are)."""
    if "imitation_model" in agent_params.network_wrappers:
        return agent_params.network_wrappers["imitation_model"]
    imitation = copy.deepcopy(agent_params.network_wrappers["main"])
    imitation.heads_parameters = [ClassificationHeadParameters()]
    imitation.create_target_network = False
    return imitation


class DDQNBCQAgent(DDQNAgent):
    """Double DQN with BCQ's next-action filter, trained from a dataset."""

    masks_next_actions = True

    def __init__(self, agent_params: AgentParameters, spaces: SpacesDefinition, rng: np.random.Generator) -> None:
        drop = agent_params.algorithm.action_drop_method_parameters
        if not isinstance(drop, (KNNParameters, NNImitationModelParameters)):
            raise ParameterValueError(
                f"agent_params.algorithm.action_drop_method_parameters = {drop!r}: use KNNParameters() or "
                "NNImitationModelParameters()."
            )
        super().__init__(agent_params, spaces, rng)
        self.imitation_model: DatasetModel | None = None
        if isinstance(drop, NNImitationModelParameters):
            # The network is named 'imitation_model' whether or not the preset defines its parameters, so its
            # checkpoint files are the same either way.
            self.imitation_model = imitation_model(imitation_parameters(agent_params), spaces.observation_size,
                                                   self.num_actions)
            self.networks["imitation_model"] = self.imitation_model.network
        self._next_allowed: np.ndarray | None = None
        self.average_dist: float | None = None
        self.knn_space = ""  # what the kNN filter measured distances in

    def train(self) -> int:
        raise ParameterValueError(
            "DDQN+BCQ learns from a dataset: use BatchRLGraphManager with agent_params.memory."
            "load_memory_from_file_path = CsvDataset(...), not BasicRLGraphManager."
        )

    def prepare_offline(self, train: TransitionDataset) -> list[str]:
        drop = self.algorithm.action_drop_method_parameters
        obs = self.pre_network_filter.filter_observation(train.obs, update=False)
        next_obs = self.pre_network_filter.filter_observation(train.next_obs, update=False)
        num_actions = self.num_actions
        if isinstance(drop, KNNParameters):
            self.knn_space = "raw states"
            if drop.use_state_embedding_instead_of_state:
                if self.reward_model is None:
                    raise ParameterValueError(
                        "KNNParameters(use_state_embedding_instead_of_state=True) embeds states with the reward model; "
                        "it exists under BatchRLGraphManager only."
                    )
                if np.ptp(train.reward) > 0:
                    obs, next_obs = self.reward_model.embed(obs), self.reward_model.embed(next_obs)
                    self.knn_space = "the reward model's embedding"
                else:
                    # Every reward is the same (CartPole's +1 per step): the reward model only learns that constant,
                    # so its hidden layer is an untrained random projection, and distances in it dropped actions
                    # that raw-state distances keep (final CartPole reward ~155 instead of ~195, seeds 0-7).
                    self.knn_space = ("raw states (every training reward is the same, so the reward model's embedding "
                                      "carries no information)")
            self._next_allowed, self.average_dist = knn_allowed(
                obs, train.action, next_obs, num_actions, float(drop.average_dist_coefficient), int(drop.knn_size))
        else:
            assert self.imitation_model is not None
            self.imitation_model.fit(train, obs, int(drop.imitation_model_num_epochs), self.rng)
            probs = softmax(self.imitation_model.predict(next_obs).astype(np.float64))
            self._next_allowed = probs >= float(drop.mask_out_actions_threshold)
        space = f" (kNN in {self.knn_space})" if self.knn_space else ""
        return [f"Action filter> drops {self.dropped_fraction:.1%} of the next actions of the training split{space}"]

    @property
    def dropped_fraction(self) -> float:
        """The share of (next state, action) pairs the filter drops."""
        return float(1.0 - self._next_allowed.mean()) if self._next_allowed is not None else 0.0

    def next_allowed(self, rows: np.ndarray) -> np.ndarray:
        if self._next_allowed is None:
            raise ParameterValueError("DDQN+BCQ trains only after prepare_offline built its action filter.")
        allowed = self._next_allowed[rows].copy()
        none = np.flatnonzero(~allowed.any(axis=1))
        allowed[none, self.rng.integers(0, allowed.shape[1], len(none))] = True
        return allowed
