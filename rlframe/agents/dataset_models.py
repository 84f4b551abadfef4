"""Networks fitted to a batch-RL dataset before the agent trains on it.

* :class:`RewardModel` regresses the immediate reward r(s, a) of the logged action, one output per action.
  Off-policy evaluation uses its predictions r_hat(s, .) (the direct method and doubly robust), and BCQ's
  kNN action filter uses its hidden layer as a state embedding.
* :class:`ImitationModel` classifies the logged action (softmax over the actions): an estimate of the
  behaviour policy, for BCQ's imitation-model action filter.

Both are ordinary networks of the agent (``network_wrappers['reward_model']`` and
``['imitation_model']``), so they are saved with and restored from its checkpoints.
Shapes: T = transitions, A = actions, D = observation size, H = the last hidden layer's size.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from mxnet import gluon, nd

from rlframe.memories.dataset import TransitionDataset, minibatch_rows
from rlframe.networks.blocks import MLP, observation_embedder
from rlframe.networks.columns import Columns
from rlframe.networks.distributions import chunked
from rlframe.networks.network_wrapper import NetworkWrapper
from rlframe.networks.parameters import NetworkParameters


def reward_columns(obs_size: int) -> Columns:
    """The reward model's packed minibatch (B, D + 2): ``obs`` (D), ``action``, ``reward``."""
    return Columns(obs=obs_size, action=1, reward=1)


def imitation_columns(obs_size: int) -> Columns:
    """The imitation model's packed minibatch (B, D + 1): ``obs`` (D), ``action``."""
    return Columns(obs=obs_size, action=1)


class RewardLoss(gluon.HybridBlock):
    """(r_hat(s, a) - r)^2 per sample, from a minibatch packed as :func:`reward_columns`."""

    def __init__(self, network: gluon.HybridBlock, obs_size: int) -> None:
        super().__init__(prefix="rewardloss_")
        self.network = network
        self.layout = reward_columns(obs_size)

    def hybrid_forward(self, F: Any, packed: Any) -> Any:
        layout = self.layout
        q = self.network(layout.slice(F, packed, "obs"))
        return F.square(F.pick(q, layout.column(F, packed, "action"), axis=1) - layout.column(F, packed, "reward"))


class ImitationLoss(gluon.HybridBlock):
    """Cross-entropy -log pi_b(a|s) per sample, from a minibatch packed as :func:`imitation_columns`."""

    def __init__(self, network: gluon.HybridBlock, obs_size: int) -> None:
        super().__init__(prefix="imitationloss_")
        self.network = network
        self.layout = imitation_columns(obs_size)

    def hybrid_forward(self, F: Any, packed: Any) -> Any:
        logits = self.network(self.layout.slice(F, packed, "obs"))
        return -F.pick(F.log_softmax(logits, axis=1), self.layout.column(F, packed, "action"), axis=1)


class DatasetModel:
    """A network with one output per action, fitted to a dataset by minibatch passes.

    :param name: the network's name in ``network_wrappers``.
    :param params: its parameters (architecture, optimiser, batch size).
    :param obs_size: D.
    :param num_actions: A.
    :param make_loss: builds the per-sample loss block from the online network.
    :param pack: the loss block's packed input for a dataset's rows.
    """

    def __init__(self, name: str, params: NetworkParameters, obs_size: int, num_actions: int,
                 make_loss: Callable[[gluon.HybridBlock, int], gluon.HybridBlock],
                 pack: Callable[[TransitionDataset, np.ndarray, np.ndarray], np.ndarray]) -> None:
        embedder = observation_embedder(params)

        def build(prefix: str) -> gluon.HybridBlock:
            return MLP(embedder, params.middleware_parameters, num_actions, obs_size, prefix=prefix)

        self.network = NetworkWrapper(name, params, build, obs_size)
        self.loss = make_loss(self.network.online, obs_size)
        self._pack = pack

    def fit(self, data: TransitionDataset, obs: np.ndarray, epochs: int, rng: np.random.Generator) -> list[float]:
        """``epochs`` shuffled passes over ``data`` whose pre-network-filtered observations are ``obs`` (T, D);
        returns each epoch's mean loss."""
        batch_size = int(self.network.params.batch_size)
        losses = []
        for _ in range(epochs):
            epoch = [self.network.update(self.loss, self._pack(data, obs, rows))[0][0].copy()
                     for rows in minibatch_rows(len(data), batch_size, rng)]
            losses.append(float(nd.concat(*epoch, dim=0).mean().asscalar()))
        return losses

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """The outputs (T, A) for pre-network-filtered observations (T, D)."""
        return chunked(self.network.predict, obs)

    def embed(self, obs: np.ndarray) -> np.ndarray:
        """The last hidden layer's activations (T, H): the state embedding of BCQ's kNN filter."""
        online = self.network.online
        return chunked(lambda part: online.hidden(nd.array(part, dtype=np.float32)).asnumpy(), obs)


def _pack_reward(data: TransitionDataset, obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return reward_columns(obs.shape[1]).pack(obs=obs[rows], action=data.action[rows], reward=data.reward[rows])


def _pack_imitation(data: TransitionDataset, obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return imitation_columns(obs.shape[1]).pack(obs=obs[rows], action=data.action[rows])


def reward_model(params: NetworkParameters, obs_size: int, num_actions: int) -> DatasetModel:
    """r_hat(s, a) for each of the A actions, fitted by squared error on the logged action's reward."""
    return DatasetModel("reward_model", params, obs_size, num_actions, RewardLoss, _pack_reward)


def imitation_model(params: NetworkParameters, obs_size: int, num_actions: int) -> DatasetModel:
    """Logits of pi_b(.|s), fitted by cross-entropy on the logged action."""
    return DatasetModel("imitation_model", params, obs_size, num_actions, ImitationLoss, _pack_imitation)
