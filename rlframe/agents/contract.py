"""The contract between a graph manager and an agent: everything a loop may ask of an agent, and nothing else.

A graph manager (``rlframe/graph_managers``), the command line, the exporters and the benchmarks use an agent
only through :class:`AgentContract` (online RL) and, for batch RL, :class:`OfflineLearner`. An agent is free to
organise its networks, memory and exploration as it likes behind them; ``rlframe.agents.agent.Agent`` implements
the contract once for every algorithm, so an algorithm's file fills in only its maths (see
``docs/adding-an-agent.md``). ``tests/test_contract.py`` checks that no module outside ``rlframe/agents`` uses an
agent attribute this module does not name.

The loop, per step of the N environment copies that are still playing (k <= N of them)::

    actions = agent.act(raw_obs, phase)                    # (k, ...) raw observations -> (k, ...) actions
    ... the environments step ...
    shaped = agent.observe(index, raw_obs, actions, reward, next_obs, terminated, truncated, phase)   # not in TEST
    shaped = agent.shape_reward(reward, update=False)      # TEST: the evaluation's shaped reward, nothing stored
    agent.episode_ended(discounted_return)                 # per finished heatup/training episode
    row = agent.row_statistics()                           # per CSV row: what happened since the last row
    updates = agent.train()                                # after every training-phase step

In a distributed run (``rlframe.graph_managers.rollout_worker``) copies of the agent act elsewhere: the learner
observes what they played (``agent.acted_elsewhere(k)`` then ``agent.observe(...)`` per step) and trains; the copies
load ``agent.acting_state()`` after each update.

Checkpoints: :meth:`AgentContract.checkpoint_state` out, :meth:`AgentContract.load_checkpoint_state` in;
the loop adds its own counters and writes the files. Units: steps are environment steps summed over the copies.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from rlframe.core_types import RunPhase
from rlframe.export.graph import PolicyGraph
from rlframe.spaces import SpacesDefinition

#: called with every heatup and training transition as the agent observes it: (env_index (k,), raw_obs (k, ...),
#: action (k, ...), raw_reward (k,), raw_next_obs (k, ...), terminated (k,), truncated (k,), action_probabilities
#: (k, A) or None) -- a dataset being logged (``rlframe.memories.dataset.TransitionLog``)
TransitionObserver = Callable[..., None]


@dataclass(frozen=True)
class AgentCheckpoint:
    """What an agent saves in a checkpoint besides its network files.

    :param arrays: numpy arrays by name (optimiser state, filter statistics), saved in one ``.npz``.
    :param values: JSON-serialisable values (counters, schedule states, the random generator's state).
    """

    arrays: dict[str, np.ndarray]
    values: dict[str, Any]


@runtime_checkable
class AgentContract(Protocol):
    """What a graph manager may use of an online agent."""

    #: the environment's spaces the agent was built for
    spaces: SpacesDefinition

    @property
    def total_steps(self) -> int:
        """Heatup and training environment steps observed (summed over the copies)."""

    @property
    def training_iteration(self) -> int:
        """Gradient updates made so far."""

    #: whether each update learns only from the current policy's actions (Clipped PPO, Actor-Critic; see
    #: ``Agent.on_policy``)
    on_policy: bool

    @property
    def default_num_envs(self) -> int:
        """Environment copies acting at once when the preset does not set ``env_params.num_envs``."""

    # ---- acting and observing ------------------------------------------------------------------------------
    def act(self, raw_obs: np.ndarray, phase: RunPhase) -> np.ndarray:
        """Actions (k, ...) for raw observations (k, ...): uniform random in heatup (unless the algorithm acts
        with its networks there), exploring in training, the evaluation policy in ``RunPhase.TEST``."""

    def observe(self, env_index: np.ndarray, raw_obs: np.ndarray, action: np.ndarray, raw_reward: np.ndarray,
                raw_next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, phase: RunPhase) -> np.ndarray:
        """Store k heatup or training transitions of the copies ``env_index`` (k,), where ``raw_obs`` is the array
        the last :meth:`act` received; returns the shaped rewards (k,)."""

    def shape_reward(self, raw_reward: np.ndarray, update: bool) -> np.ndarray:
        """Rewards (k,) through the agent's reward filters; ``update`` also updates their statistics."""

    def episode_ended(self, discounted_return: float) -> None:
        """A heatup or training episode ended with this discounted return (a signal of the next row)."""

    def train(self) -> int:
        """Run the gradient updates that are due after the steps observed so far; returns how many were made."""

    def exploration_value(self, phase: RunPhase) -> float:
        """The exploration control value of ``phase`` (the CSV's ``Epsilon``)."""

    # ---- what the loop reports ---------------------------------------------------------------------------------
    def signal_columns(self) -> list[str]:
        """The CSV columns :meth:`row_statistics` can fill, in order."""

    def row_statistics(self) -> dict[str, Any]:
        """The statistics of the signals since the last call (``Loss/Mean``, ...), ``Update Target Network``
        (1 if a target network was updated meanwhile), ``Training Iter``, ``ER #Transitions`` and ``ER #Episodes``;
        starts the next row's statistics."""

    def drain_reports(self) -> list[tuple[str, dict[str, Any]]]:
        """Screen lines ``(prefix, values)`` produced since the last call."""

    def add_transition_observer(self, observer: TransitionObserver) -> None:
        """Call ``observer`` with every heatup and training transition from now on."""

    def remove_transition_observer(self, observer: TransitionObserver) -> None:
        """Stop calling ``observer``."""

    # ---- acting elsewhere (rollout workers, ``rlframe.graph_managers.rollout_worker``) --------------------------
    def acting_state(self) -> AgentCheckpoint:
        """What a copy of this agent, built from the same parameters, needs to act as this one would now: the online
        networks' weights, the filters' statistics and the positions of the schedules that move with acting."""

    def load_acting_state(self, state: AgentCheckpoint) -> None:
        """Act from now on as the agent whose :meth:`acting_state` this is."""

    def acted_elsewhere(self, count: int) -> None:
        """``count`` training actions were chosen by copies of this agent (the copies of a distributed run): move
        the schedules that step with training actions as :meth:`act` would have."""

    # ---- state ---------------------------------------------------------------------------------------------
    def counters(self) -> dict[str, float]:
        """The agent's counters (steps, updates, cadence), JSON-serialisable."""

    def load_counters(self, counters: dict[str, Any]) -> None:
        """Set the counters :meth:`counters` returned (a loop that discards steps it played rolls them back)."""

    def save_networks(self, prefix: str) -> None:
        """Write every network's parameters to files named from ``prefix``."""

    def checkpoint_state(self) -> AgentCheckpoint:
        """Everything but the networks and the memory that a resumed run needs."""

    def load_checkpoint_state(self, prefix: str, state: AgentCheckpoint) -> None:
        """Load networks written with ``prefix`` and a :meth:`checkpoint_state`; raises KeyError, ValueError or
        OSError when they do not fit this agent."""

    def memory_state(self) -> dict[str, np.ndarray]:
        """The replay memory as arrays (saved with checkpoints that keep the memory)."""

    def load_memory_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`memory_state`."""

    # ---- the policy elsewhere ------------------------------------------------------------------------------
    def policy_graph(self) -> PolicyGraph:
        """The policy as a framework-neutral computation on raw observations (for export); raises
        ``ExportError`` when the agent has none."""

    def policy_outputs(self, raw_obs: np.ndarray) -> list[np.ndarray]:
        """What :meth:`policy_graph` computes, computed by the agent itself (export parity)."""


@runtime_checkable
class OfflineLearner(AgentContract, Protocol):
    """What ``BatchRLGraphManager`` may use of an agent that learns from a dataset, beyond :class:`AgentContract`.

    Observations passed in have been through :meth:`filter_dataset` (the agent's input filter); the agent applies
    its pre-network filter itself.
    """

    def filter_dataset(self, obs: np.ndarray, next_obs: np.ndarray, reward: np.ndarray,
                       update: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A dataset's (T, ...) observations, next observations and rewards through the input filter;
        ``update`` fits its statistics on them first (a run's first pass, not a resumed one)."""

    def fit_reward_model(self, train: Any, epochs: int, rng: np.random.Generator) -> list[float]:
        """Fit the reward model r_hat(s, a) on the training split (a ``TransitionDataset``) for ``epochs`` passes;
        returns each pass's mean loss."""

    def prepare_offline(self, train: Any) -> list[str]:
        """Build what training needs from the training split (a ``TransitionDataset``) before the first epoch
        (BCQ's action filter); returns lines for the log."""

    def train_epoch(self, train: Any) -> int:
        """One pass over the training split; returns the number of gradient updates."""

    def evaluation_estimates(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For off-policy evaluation at filtered observations (T, ...): the Q-values (T, A) and the reward model's
        estimates (T, A)."""

    @property
    def softmax_temperature(self) -> float:
        """T of the evaluated policy softmax(Q / T)."""
