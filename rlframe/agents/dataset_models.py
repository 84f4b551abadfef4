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
from rlframe.networks.network_wrapper import NetworkWrapper
from rlframe.networks.parameters import NetworkParameters


class RewardLoss(gluon.HybridBlock):
    """(r_hat(s, a) - r)^2 per sample, from packed (B, D + 2) columns ``obs | action | reward``."""

    def __init__(self, network: gluon.HybridBlock, obs_size: int) -> None:
        super().__init__(prefix="rewardloss_")
        self.network = network
        self._d = obs_size

    def hybrid_forward(self, F: Any, packed: Any) -> Any:
        d = self._d
        obs = F.slice_axis(packed, axis=1, begin=0, end=d)
        action = F.slice_axis(packed, axis=1, begin=d, end=d + 1).reshape((-1,))
        reward = F.slice_axis(packed, axis=1, begin=d + 1, end=d + 2).reshape((-1,))
        return F.square(F.pick(self.network(obs), action, axis=1) - reward)


class ImitationLoss(gluon.HybridBlock):
    """Cross-entropy -log pi_b(a|s) per sample, from packed (B, D + 1) columns ``obs | action``."""

    def __init__(self, network: gluon.HybridBlock, obs_size: int) -> None:
        super().__init__(prefix="imitationloss_")
        self.network = network
        self._d = obs_size

    def hybrid_forward(self, F: Any, packed: Any) -> Any:
        obs = F.slice_axis(packed, axis=1, begin=0, end=self._d)
        action = F.slice_axis(packed, axis=1, begin=self._d, end=self._d + 1).reshape((-1,))
        return -F.pick(F.log_softmax(self.network(obs), axis=1), action, axis=1)


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
        return np.concatenate([self.network.predict(obs[i:i + 4096]) for i in range(0, len(obs), 4096)])

    def embed(self, obs: np.ndarray) -> np.ndarray:
        """The last hidden layer's activations (T, H): the state embedding of BCQ's kNN filter."""
        online = self.network.online
        return np.concatenate([online.hidden(nd.array(obs[i:i + 4096], dtype=np.float32)).asnumpy()
                               for i in range(0, len(obs), 4096)])


def _pack_reward(data: TransitionDataset, obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.concatenate([obs[rows], data.action[rows, None], data.reward[rows, None]], axis=1, dtype=np.float32)


def _pack_imitation(data: TransitionDataset, obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.concatenate([obs[rows], data.action[rows, None]], axis=1, dtype=np.float32)


def reward_model(params: NetworkParameters, obs_size: int, num_actions: int) -> DatasetModel:
    """r_hat(s, a) for each of the A actions, fitted by squared error on the logged action's reward."""
    return DatasetModel("reward_model", params, obs_size, num_actions, RewardLoss, _pack_reward)


def imitation_model(params: NetworkParameters, obs_size: int, num_actions: int) -> DatasetModel:
    """Logits of pi_b(.|s), fitted by cross-entropy on the logged action."""
    return DatasetModel("imitation_model", params, obs_size, num_actions, ImitationLoss, _pack_imitation)
