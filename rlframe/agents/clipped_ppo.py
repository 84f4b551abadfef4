"""Clipped PPO (Schulman et al. 2017, arXiv:1707.06347) for discrete and box action spaces.

How it runs: the graph manager calls ``act`` for N environment copies at once (a categorical sample, or the
Gaussian mean plus the network's own std, in training; the most probable action or the mean in evaluation);
``observe`` keeps each copy's transitions in order in a :class:`~rlframe.memories.episodic_replay.Rollout`.
Once ``num_consecutive_playing_steps`` have been played, ``train`` runs one update:

1. the observations go through the pre-network filter, updating its running statistics
   (``update_pre_network_filters_state_on_train``);
2. the network, frozen, gives V(s), V(s') and the old policy's log pi_old(a|s) for every transition;
3. :func:`compute_gae` gives advantages and value targets; advantages are standardised over the update;
4. ``optimization_epochs`` passes of shuffled minibatches of ``batch_size`` minimise
   :func:`clipped_surrogate_loss` + (V - value_target)^2 - ``beta_entropy`` * entropy (+ a KL penalty
   with ``use_kl_regularization``).

Deliberate differences from Coach (coach.md section 4.1): an episode cut by a time limit bootstraps from
V(s') (only a true terminal uses 0); no collected transition is thrown away (episodes still running at an
update are cut there, bootstrapped, and continue into the next rollout); the old policy's log-probabilities
are computed once per update instead of through a target network; ``clipping_decay_schedule`` advances with
training actions only (Coach's advanced with evaluation actions too); and with a normalising pre-network filter
that is only updated at training time, the first rollout acts on statistics of the observations seen before its
first action (see :meth:`ClippedPPOAgent.act`) instead of raw observations.
Shapes: B = batch, A = actions, K = action dimensions, D = observation size (``rlframe.core_types``).
Logged signals (Coach's names): Entropy, Advantages, Values, Value Loss, Policy Loss, Value Targets,
KL Divergence, Likelihood Ratio, Clipped Likelihood Ratio.
"""
from __future__ import annotations

import copy
from enum import Enum
from typing import Any

import numpy as np
from mxnet import gluon, nd

from rlframe.agents.agent import Agent
from rlframe.core_types import EnvironmentEpisodes, EnvironmentSteps, RunPhase
from rlframe.errors import ParameterValueError
from rlframe.exploration.parameters import AdditiveNoiseParameters, CategoricalParameters
from rlframe.exploration.policy import PolicyActing
from rlframe.export.graph import ContinuousPolicy, DiscretePolicy
from rlframe.memories.episodic_replay import Rollout
from rlframe.memories.memory import EpisodicExperienceReplayParameters
from rlframe.networks.blocks import ActorCritic, observation_embedder
from rlframe.networks.columns import Columns
from rlframe.networks.distributions import (
    categorical_log_prob_entropy,
    chunked,
    gaussian_log_prob_entropy,
    softmax,
)
from rlframe.networks.network_wrapper import NetworkWrapper, TrainResult
from rlframe.networks.parameters import (
    FCMiddlewareParameters,
    InputEmbedderParameters,
    NetworkParameters,
    PPOHeadParameters,
    VHeadParameters,
)
from rlframe.outputs import signals
from rlframe.parameters import AgentParameters, AlgorithmParameters, check_range
from rlframe.schedules import ConstantSchedule, Schedule
from rlframe.spaces import BoxActionSpace, DiscreteActionSpace, SpacesDefinition

ENTROPY = "Entropy"
ADVANTAGES = "Advantages"
VALUES = "Values"
VALUE_LOSS = "Value Loss"
POLICY_LOSS = "Policy Loss"
VALUE_TARGETS = "Value Targets"
KL_DIVERGENCE = "KL Divergence"
LIKELIHOOD_RATIO = "Likelihood Ratio"
CLIPPED_LIKELIHOOD_RATIO = "Clipped Likelihood Ratio"

#: the loss block's per-minibatch diagnostics (weighted means over the minibatch), by name
DIAGNOSTICS = Columns(policy_loss=1, value_loss=1, entropy=1, kl=1, ratio=1, clipped_ratio=1, value=1)
#: one minibatch's row of an epoch's results, read back once per epoch: its loss, then :data:`DIAGNOSTICS`
UPDATE_ROW = Columns(loss=1, **DIAGNOSTICS.widths)


def loss_inputs(obs_size: int, action_size: int) -> Columns:
    """The layout of the packed minibatch :class:`PPOLoss` reads: observations (D), the action (K; 1 for a discrete
    action's index), then one column each for log pi_old(a|s), the standardised advantage, the value target, the
    clip range epsilon and the KL coefficient."""
    return Columns(obs=obs_size, action=action_size, old_log_prob=1, advantage=1, value_target=1, clip_epsilon=1,
                   kl_coefficient=1)


# ---- the math -----------------------------------------------------------------------------------------
def compute_gae(reward: np.ndarray, value: np.ndarray, next_value: np.ndarray, terminated: np.ndarray,
                segment_end: np.ndarray, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation (Schulman et al. 2016, arXiv:1506.02438) over T transitions.

    ``delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)`` and
    ``A_t = delta_t + gamma * lam * A_{t+1}``, restarted after every ``segment_end`` (an episode's end or a
    cut). A time-limit truncation is not ``terminated``, so it bootstraps from V(s'_t).
    All arrays are (T,); returns (advantages, value targets = advantages + V(s_t)).
    """
    delta = reward + gamma * (1.0 - terminated.astype(np.float64)) * next_value - value
    advantage = np.zeros(len(reward), dtype=np.float64)
    running = 0.0
    for t in range(len(reward) - 1, -1, -1):
        running = delta[t] + (0.0 if segment_end[t] else gamma * lam * running)
        advantage[t] = running
    return advantage.astype(np.float32), (advantage + value).astype(np.float32)


def clipped_surrogate_loss(F: Any, log_prob: Any, old_log_prob: Any, advantage: Any,
                           clip_epsilon: Any) -> tuple[Any, Any, Any]:
    """Per-sample ``-min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)`` with ``ratio = pi / pi_old``.

    All inputs (B,); ``clip_epsilon`` may vary per sample. Returns (loss, ratio, clipped ratio), each (B,).
    """
    ratio = F.exp(log_prob - old_log_prob)
    clipped = F.minimum(F.maximum(ratio, 1.0 - clip_epsilon), 1.0 + clip_epsilon)
    return -F.minimum(ratio * advantage, clipped * advantage), ratio, clipped


def adapted_kl_coefficient(coefficient: float, measured_kl: float, target_kl: float) -> float:
    """The KL penalty's coefficient for the next update (Schulman et al. 2017, section 4): doubled when the KL
    measured by the last update (the mean of its last epoch) exceeded ``1.5 * target_kl``, halved when it stayed
    under ``target_kl / 1.5``, unchanged in between (both bounds included)."""
    if measured_kl > 1.5 * target_kl:
        return coefficient * 2.0
    if measured_kl < target_kl / 1.5:
        return coefficient / 2.0
    return coefficient


class PPOLoss(gluon.HybridBlock):
    """A minibatch's loss as one graph (``NetworkWrapper.update`` binds it once as an executor).

    Inputs: packed (B, ``inputs.width``) in the layout ``inputs`` (see :func:`loss_inputs`), and per-sample
    weights (B,) that sum to 1 (0 for rows that only pad the batch to its fixed size). Outputs the weighted loss
    (1,) and the weighted means (7,) of the diagnostics in the layout :data:`DIAGNOSTICS`.
    """

    def __init__(self, network: ActorCritic, inputs: Columns, continuous: bool, beta_entropy: float, use_kl: bool,
                 high_kl_penalty: float, target_kl: float) -> None:
        super().__init__(prefix="ppoloss_")
        self.network = network
        self.inputs = inputs
        self._continuous = continuous
        self._beta_entropy = beta_entropy
        self._use_kl = use_kl
        self._high_kl_penalty = high_kl_penalty
        self._target_kl = target_kl

    def hybrid_forward(self, F: Any, packed: Any, weights: Any) -> Any:
        inputs = self.inputs
        old_log_prob = inputs.column(F, packed, "old_log_prob")
        outputs = self.network(inputs.slice(F, packed, "obs"))
        action = inputs.slice(F, packed, "action")
        if self._continuous:
            value, mean, log_std = outputs
            log_prob, entropy = gaussian_log_prob_entropy(F, mean, log_std, action)
        else:
            value, logits = outputs
            log_prob, entropy = categorical_log_prob_entropy(F, logits, action.reshape((-1,)))
        policy_loss, ratio, clipped = clipped_surrogate_loss(F, log_prob, old_log_prob,
                                                             inputs.column(F, packed, "advantage"),
                                                             inputs.column(F, packed, "clip_epsilon"))
        value_loss = F.square(value - inputs.column(F, packed, "value_target"))
        # Per-sample KL(old || new) estimate (Schulman's k3): non-negative, unbiased, no old distribution needed.
        kl = (ratio - 1.0) - (log_prob - old_log_prob)
        loss = policy_loss + value_loss - self._beta_entropy * entropy
        if self._use_kl:
            loss = (loss + inputs.column(F, packed, "kl_coefficient") * kl
                    + self._high_kl_penalty * F.square(F.relu(kl - 2.0 * self._target_kl)))
        diagnostics = DIAGNOSTICS.stack(F, policy_loss=policy_loss, value_loss=value_loss, entropy=entropy, kl=kl,
                                        ratio=ratio, clipped_ratio=clipped, value=value)
        return F.dot(weights, loss), F.stop_gradient(F.dot(weights, diagnostics))


# ---- parameters ---------------------------------------------------------------------------------------
class PolicyGradientRescaler(Enum):
    """Accepted for Coach compatibility; Clipped PPO always uses GAE."""

    TOTAL_RETURN = 0
    FUTURE_RETURN = 1
    FUTURE_RETURN_NORMALIZED_BY_EPISODE = 2
    FUTURE_RETURN_NORMALIZED_BY_TIMESTEP = 3
    Q_VALUE = 4
    A_VALUE = 5
    TD_RESIDUAL = 6
    DISCOUNTED_TD_RESIDUAL = 7
    GAE = 8


class ClippedPPOAlgorithmParameters(AlgorithmParameters):
    """Coach's Clipped PPO defaults.

    :param policy_gradient_rescaler: accepted for Coach compatibility (GAE is used).
    :param gae_lambda: GAE's lambda.
    :param clip_likelihood_ratio_using_epsilon: the clip range epsilon of the likelihood ratio.
    :param clipping_decay_schedule: multiplies epsilon; steps once per action the agent chooses in training
        (evaluation actions leave it where it is).
    :param beta_entropy: weight of the entropy bonus.
    :param optimization_epochs: passes over the rollout per update.
    :param estimate_state_value_using_gae: value targets = GAE advantage + V (else discounted returns).
    :param num_consecutive_playing_steps: environment steps (or episodes) played between updates.
    :param act_for_full_episodes: update only at a step where some episode has just ended.
    :param num_episodes_in_experience_replay: accepted for Coach compatibility (the rollout is cleared
        at every update).
    :param use_kl_regularization: add ``kl_coefficient * KL`` and a high-KL penalty to the loss, adapting
        the coefficient towards ``target_kl_divergence`` after each update.
    :param initial_kl_coefficient: the first KL coefficient.
    :param target_kl_divergence: the KL the coefficient adapts towards.
    :param high_kl_penalty_coefficient: weight of ``max(0, KL - 2 * target)^2``.
    :param normalization_stats: accepted for Coach compatibility.
    :param value_targets_mix_fraction: accepted for Coach compatibility.
    """

    def __init__(self) -> None:
        super().__init__()
        self.policy_gradient_rescaler = PolicyGradientRescaler.GAE
        self.gae_lambda = 0.95
        self.use_kl_regularization = False
        self.clip_likelihood_ratio_using_epsilon = 0.2
        self.estimate_state_value_using_gae = True
        self.beta_entropy = 0.01
        self.num_consecutive_playing_steps = EnvironmentSteps(2048)
        self.optimization_epochs = 10
        self.normalization_stats: Any = None
        self.clipping_decay_schedule: Schedule = ConstantSchedule(1)
        self.act_for_full_episodes = True
        self.update_pre_network_filters_state_on_train = True
        self.update_pre_network_filters_state_on_inference = False
        self.num_episodes_in_experience_replay = 1000000
        self.initial_kl_coefficient = 1.0
        self.target_kl_divergence = 0.01
        self.high_kl_penalty_coefficient = 1000.0
        self.value_targets_mix_fraction = 0.1


class ClippedPPONetworkParameters(NetworkParameters):
    """Two tanh towers (Medium embedder and middleware) for the V head and the PPO head, Adam, batch 64."""

    def __init__(self) -> None:
        super().__init__()
        self.input_embedders_parameters = {"observation": InputEmbedderParameters(activation_function="tanh")}
        self.middleware_parameters = FCMiddlewareParameters(activation_function="tanh")
        self.heads_parameters = [VHeadParameters(), PPOHeadParameters()]
        self.batch_size = 64
        self.optimizer_type = "Adam"
        self.clip_gradients = None
        self.use_separate_networks_per_head = True
        self.create_target_network = True
        self.l2_regularization = 0.0


class ClippedPPOAgentParameters(AgentParameters):
    """Clipped PPO: categorical exploration for discrete actions, the network's Gaussian for box actions."""

    def __init__(self) -> None:
        super().__init__(
            algorithm=ClippedPPOAlgorithmParameters(),
            exploration={DiscreteActionSpace: CategoricalParameters(), BoxActionSpace: AdditiveNoiseParameters()},
            memory=EpisodicExperienceReplayParameters(),
            networks={"main": ClippedPPONetworkParameters()},
        )

    @property
    def agent_class(self) -> type:
        return ClippedPPOAgent


# ---- the agent ----------------------------------------------------------------------------------------
class ClippedPPOAgent(Agent):
    """Clipped PPO over a discrete or box action space."""

    signal_names = Agent.signal_names + (
        ENTROPY, ADVANTAGES, VALUES, VALUE_LOSS, POLICY_LOSS, VALUE_TARGETS, KL_DIVERGENCE, LIKELIHOOD_RATIO,
        CLIPPED_LIKELIHOOD_RATIO,
    )
    default_num_envs = 8
    on_policy = True

    def _check_ranges(self) -> None:
        super()._check_ranges()
        algorithm = self.algorithm
        # GAE's lambda weighs k-step returns by lambda^k: outside [0, 1] the advantages diverge or alternate.
        check_range("agent_params.algorithm.gae_lambda", algorithm.gae_lambda, 0, 1, example=0.95)
        # The ratio is clipped to [1 - eps, 1 + eps]: eps <= 0 makes that range empty or inverted (no trust region).
        check_range("agent_params.algorithm.clip_likelihood_ratio_using_epsilon",
                    algorithm.clip_likelihood_ratio_using_epsilon, 0, low_inclusive=False, example=0.2)
        # ``update`` runs int(epochs) passes: 0 or a fraction would silently never (or not as asked) learn.
        check_range("agent_params.algorithm.optimization_epochs", algorithm.optimization_epochs, 1, integer=True,
                    example=10)

    def __init__(self, agent_params: AgentParameters, spaces: SpacesDefinition, rng: np.random.Generator) -> None:
        super().__init__(agent_params, spaces, rng)
        action_space = spaces.action
        self.continuous = isinstance(action_space, BoxActionSpace)
        if isinstance(action_space, BoxActionSpace):  # a mean per action dimension (and a log-std)
            self.action_size = num_outputs = int(np.prod(action_space.shape))
        elif isinstance(action_space, DiscreteActionSpace):  # a logit per action; actions are one index
            self.action_size, num_outputs = 1, action_space.num_actions
        else:
            raise ParameterValueError(f"Clipped PPO needs a discrete or box action space, got {action_space!r}.")
        # A copy, so the preset's object is left as written: the old policy is frozen by computing its
        # log-probabilities once per update, so no target copy of the network is built.
        net_params: NetworkParameters = copy.deepcopy(agent_params.network_wrappers["main"])
        net_params.create_target_network = False
        embedder = observation_embedder(net_params)

        def build(prefix: str) -> gluon.HybridBlock:
            return ActorCritic(embedder, net_params.middleware_parameters, num_outputs, self.continuous,
                               spaces.observation_size, prefix=prefix)

        self.network = NetworkWrapper("main", net_params, build, spaces.observation_size)
        self.networks["main"] = self.network
        algorithm = self.algorithm
        self.loss_inputs = loss_inputs(spaces.observation_size, self.action_size)
        self.loss = PPOLoss(
            self.network.online, self.loss_inputs, self.continuous,
            float(algorithm.beta_entropy), bool(algorithm.use_kl_regularization),
            float(algorithm.high_kl_penalty_coefficient), float(algorithm.target_kl_divergence),
        )
        #: the network's outputs side by side, as :meth:`_forward_all` reads them back: V(s), then the policy
        self.network_columns = (Columns(value=1, mean=self.action_size, log_std=self.action_size) if self.continuous
                                else Columns(value=1, logits=num_outputs))
        #: the agent's own copy of the preset's schedule: its position is this agent's state (checkpointed through
        #: :meth:`schedules`), not shared with another agent built from the same preset
        self.clipping_decay: Schedule = copy.deepcopy(algorithm.clipping_decay_schedule)
        self.kl_coefficient = float(algorithm.initial_kl_coefficient)
        self.rollout = Rollout()
        self._episode_ended_last_step = False
        self._last_kl = 0.0
        #: the pre-network filter's state before the statistics the first rollout acts on (see :meth:`act`)
        self._statistics_before_first_rollout: dict[str, np.ndarray] | None = None
        self.acting = PolicyActing(agent_params.exploration, spaces, rng, "Clipped PPO")

    # ---- acting -------------------------------------------------------------------------------------
    def before_network_decision(self, obs: np.ndarray, phase: RunPhase) -> None:
        """Give a normalising pre-network filter statistics before the first training action.

        Such a filter is updated only at each update (``update_pre_network_filters_state_on_train`` without
        ``..._on_inference``), so the whole first rollout would act on raw observations (only clipped), and the
        first update would then train a policy whose inputs suddenly change scale. Before the first training
        action, the filter is therefore fitted to every observation there is by then: the heatup's (held in the
        rollout) and the N current ones. The first update restores the filter's state from before that fit and
        fits it to its rollout, which holds those same observations, so none is counted twice and the statistics
        from the first update on are exactly those of a filter fitted at updates only. (Fitting from the first
        batch alone, when there is no heatup, gives a rough scale from N resets; it is only used for one rollout.)
        """
        if phase == RunPhase.TRAIN and self._first_rollout_needs_statistics():
            filter_ = self.pre_network_filter
            self._statistics_before_first_rollout = filter_.state()
            filter_.filter_observation(np.concatenate([self.rollout.observations(obs.shape[1:]), obs]), update=True)

    def _first_rollout_needs_statistics(self) -> bool:
        algorithm = self.algorithm
        return (not self.pre_network_filter.is_empty and bool(algorithm.update_pre_network_filters_state_on_train)
                and not algorithm.update_pre_network_filters_state_on_inference
                # a run resumed from a checkpoint after training had started has its statistics already
                and self.training_iteration == 0 and self._steps_since_training == 0
                and self._statistics_before_first_rollout is None)

    def choose_actions(self, obs: np.ndarray, phase: RunPhase) -> np.ndarray:
        # Acting runs a numpy copy of the policy, taken once per update: a batched step of 16 copies costs
        # ~30 us instead of ~450 us through MXNet.
        outputs = self.network.online_snapshot(ActorCritic.numpy_policy)(obs)
        if phase == RunPhase.TRAIN:  # the clip range decays with training steps; evaluation must not move it
            self.clipping_decay.step(obs.shape[0])
        actions = self.acting.choose(outputs, phase)
        self.last_action_probabilities = self.acting.last_probabilities
        return actions

    def exploration_value(self, phase: RunPhase) -> float:
        return self.acting.exploration_value(phase, self.network.online.log_std.data().asnumpy()
                                             if self.continuous else None)

    def network_outputs(self, obs: np.ndarray) -> list[np.ndarray]:
        value, policy, *log_std = (o.asnumpy() for o in self.network.online(nd.array(obs, dtype=np.float32)))
        if self.continuous:
            return [value, policy, np.exp(log_std[0])]
        return [value, softmax(policy.astype(np.float64)).astype(np.float32)]

    def policy_head(self) -> DiscretePolicy | ContinuousPolicy:
        value, policy, log_std = self.network.online.describe()
        return ContinuousPolicy(value, policy, log_std) if self.continuous else DiscretePolicy(value, policy)

    # ---- storing ------------------------------------------------------------------------------------
    def store(self, env_index: np.ndarray, obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
              next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> None:
        self.rollout.store(env_index, obs, action, reward, next_obs, terminated, truncated)
        self._episode_ended_last_step = bool((terminated | truncated).any())

    def memory_sizes(self) -> tuple[int, int]:
        return self.rollout.num_transitions, self.rollout.num_episodes

    # ---- training -----------------------------------------------------------------------------------
    def train(self) -> int:
        """Run an update once ``num_consecutive_playing_steps`` have been played since the last one."""
        playing = self.algorithm.num_consecutive_playing_steps
        played = self._episodes_since_training if isinstance(playing, EnvironmentEpisodes) else self._steps_since_training
        if played < playing.num_steps or not self.rollout.num_transitions:
            return 0
        waits_for_an_episode_end = self.algorithm.act_for_full_episodes and isinstance(playing, EnvironmentSteps)
        if waits_for_an_episode_end and not self._episode_ended_last_step:
            return 0
        self._steps_since_training = self._episodes_since_training = 0
        updates = self.update()
        self.training_iteration += 1
        return updates

    def _forward_all(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """The network's outputs for T observations (T, D), by the names of :attr:`network_columns`, each (T, w)."""

        def forward(rows: np.ndarray) -> np.ndarray:
            outputs = self.network.online(nd.array(rows, dtype=np.float32))
            return np.concatenate([o.asnumpy().reshape(len(rows), -1) for o in outputs], axis=1)

        table = chunked(forward, obs)
        return {name: table[:, begin:end] for name, (begin, end) in self.network_columns.spans.items()}

    def _log_prob(self, outputs: dict[str, np.ndarray], action: np.ndarray) -> np.ndarray:
        """log pi(a|s) (T,) of the actions (T,) or (T, K) under the policy ``outputs`` (from :meth:`_forward_all`)."""
        if self.continuous:
            log_prob, _ = gaussian_log_prob_entropy(nd, nd.array(outputs["mean"]), nd.array(outputs["log_std"]),
                                                    nd.array(action))
        else:
            log_prob, _ = categorical_log_prob_entropy(nd, nd.array(outputs["logits"]), nd.array(action))
        return log_prob.asnumpy()

    def update(self) -> int:
        """One PPO update over everything played since the last; returns the number of gradient steps."""
        algorithm = self.algorithm
        batch = self.rollout.drain()
        if self._statistics_before_first_rollout is not None:  # see act(): the rollout holds what they came from
            self.pre_network_filter.load_state(self._statistics_before_first_rollout)
            self._statistics_before_first_rollout = None
        obs = self.pre_network_filter.filter_observation(
            batch.obs, update=bool(algorithm.update_pre_network_filters_state_on_train))
        next_obs = self.pre_network_filter.filter_observation(batch.next_obs, update=False)
        count = len(obs)
        outputs = self._forward_all(np.concatenate([obs, next_obs]))
        values = outputs["value"].reshape(-1)
        value, next_value = values[:count], values[count:]
        old_log_prob = self._log_prob({name: column[:count] for name, column in outputs.items()}, batch.action)
        lam = float(algorithm.gae_lambda) if algorithm.estimate_state_value_using_gae else 1.0
        advantage, value_target = compute_gae(batch.reward, value, next_value, batch.terminated, batch.segment_end,
                                              float(algorithm.discount), lam)
        self.signals[ADVANTAGES].add_many(advantage)
        self.signals[VALUES].add_many(value)
        self.signals[VALUE_TARGETS].add_many(value_target)
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        clip_epsilon = float(algorithm.clip_likelihood_ratio_using_epsilon) * float(self.clipping_decay.current_value)
        packed = self.loss_inputs.pack(
            obs=obs, action=batch.action, old_log_prob=old_log_prob, advantage=advantage, value_target=value_target,
            clip_epsilon=np.full(count, clip_epsilon), kl_coefficient=np.full(count, self.kl_coefficient))
        data = nd.array(packed, dtype=np.float32)
        batch_size = int(self.network.params.batch_size)
        num_minibatches = -(-count // batch_size)
        # Every minibatch has batch_size rows, so one executor bound for that shape serves every update (see
        # NetworkWrapper.update): the last one is topped up with rows of weight 0.
        last_rows = count - (num_minibatches - 1) * batch_size
        weights = [nd.full(batch_size, 1.0 / batch_size)] * (num_minibatches - 1) + [
            nd.array(np.where(np.arange(batch_size) < last_rows, 1.0 / last_rows, 0.0), dtype=np.float32)]
        loss_column = UPDATE_ROW.spans["loss"][0]
        for epoch in range(int(algorithm.optimization_epochs)):
            order = np.resize(self.rng.permutation(count), (num_minibatches, batch_size))
            minibatches = nd.take(data, nd.array(order, dtype=np.int32))  # (num_minibatches, batch_size, columns)
            results, grad_norms = [], []
            for i in range(num_minibatches):
                (loss, diagnostics), grad_norm = self.network.update(self.loss, minibatches[i], weights[i])
                results.append(nd.concat(loss, diagnostics, dim=0))  # a copy: the executor reuses its outputs
                grad_norms.append(grad_norm)
            # One read per epoch: the engine computes minibatch i while Python prepares i + 1.
            flat = nd.concat(*results, *[g for g in grad_norms if g is not None], dim=0).asnumpy()
            table = flat[:UPDATE_ROW.width * num_minibatches].reshape(num_minibatches, UPDATE_ROW.width)
            norms = iter(flat[UPDATE_ROW.width * num_minibatches:].tolist())
            for loss, grad_norm in zip(table[:, loss_column].tolist(), grad_norms):
                self.record_update(TrainResult(loss, None if grad_norm is None else next(norms), []))
            self._record_epoch(epoch, UPDATE_ROW.read(table.mean(axis=0)))
        if algorithm.use_kl_regularization:
            self.kl_coefficient = adapted_kl_coefficient(self.kl_coefficient, self._last_kl,
                                                         float(algorithm.target_kl_divergence))
        return num_minibatches * int(algorithm.optimization_epochs)

    def _record_epoch(self, epoch: int, means: dict[str, Any]) -> None:
        """Log one epoch's means over its minibatches (a row of :data:`UPDATE_ROW` by name)."""
        for name, key in ((POLICY_LOSS, "policy_loss"), (VALUE_LOSS, "value_loss"), (ENTROPY, "entropy"),
                          (KL_DIVERGENCE, "kl"), (LIKELIHOOD_RATIO, "ratio"), (CLIPPED_LIKELIHOOD_RATIO, "clipped_ratio")):
            self.signals[name].add(float(means[key]))
        self.signals[signals.LEARNING_RATE].add(self.network.optimizer.learning_rate)
        self._last_kl = float(means["kl"])
        self._reports.append(("Policy training", {
            "Surrogate loss": float(means["policy_loss"]), "KL divergence": self._last_kl,
            "Entropy": float(means["entropy"]), "training epoch": epoch,
            "learning_rate": self.network.optimizer.learning_rate,
        }))

    # ---- state --------------------------------------------------------------------------------------
    def schedules(self) -> dict[str, Schedule]:
        out = {"clipping_decay_schedule": self.clipping_decay}
        if self.acting.e_greedy is not None:
            out["epsilon_schedule"] = self.acting.e_greedy.epsilon_schedule
        return out

    def counters(self) -> dict[str, float]:
        return {**super().counters(), "kl_coefficient": self.kl_coefficient}

    def load_counters(self, counters: dict[str, Any]) -> None:
        super().load_counters(counters)
        self.kl_coefficient = float(counters["kl_coefficient"])

