"""Advantage actor-critic: Coach's ``ActorCriticAgent`` (A3C, Mnih et al. 2016, arXiv:1602.01783), run synchronously
over the N environment copies that act at once (A2C).

Coach ran A3C as asynchronous workers, each applying the gradient of its own rollout to a shared network. Here the N
copies are the workers: their rollouts are one batch and make one gradient step together.

How it runs: ``act`` samples from the policy on a numpy snapshot of the weights (a categorical over discrete actions,
the network's diagonal Gaussian over box actions) in training, and takes the most probable action or the mean in
evaluation; ``observe`` keeps each copy's training transitions in order in a
:class:`~rlframe.memories.episodic_replay.Rollout`. Once every copy has played ``num_steps_between_gradient_updates``
(t) steps since the last update, ``train`` makes one update on that N x t rollout:

1. the observations go through the pre-network filter (updating its statistics with
   ``update_pre_network_filters_state_on_train``);
2. the snapshot gives V(s) and V(s') for every transition;
3. the advantages, by ``policy_gradient_rescaler``:

   - ``A_VALUE``: the n-step advantage ``R_t - V(s_t)`` with ``R_t = r_t + gamma r_{t+1} + ... + gamma^k V(s_{t+k})``,
     bootstrapped from the value of the last next-observation of each copy's segment; the value target is ``R_t``;
   - ``GAE``: generalised advantage estimation with ``gae_lambda``; the value target is ``R_t``, or the advantage
     plus V(s_t) with ``estimate_state_value_using_gae``.

   Both come from :func:`~rlframe.agents.clipped_ppo.compute_gae` (the n-step return is GAE with lambda = 1). A
   termination ends a return with 0; a time-limit truncation bootstraps from V(s');
4. one gradient step on the mean over the rollout of
   ``-log pi(a|s) * A + 0.5 * (V(s) - target)^2 - beta_entropy * H(pi(.|s))`` (0.5: Coach's V head loss weight).

Deliberate differences from Coach: the rollouts of the N copies are averaged into each step instead of applied one
by one as they finish (``apply_gradients_every_x_episodes`` is accepted and not used; every shipped Coach A3C preset
sets it to 1, one step per rollout); a rollout is t steps of every copy, with episode ends inside it, rather than a
segment that stops at the end of its episode; a time-limit truncation bootstraps instead of returning 0; the value
and the policy are two towers (:class:`~rlframe.networks.blocks.ActorCritic`) where Coach shares one; heatup
transitions are not learned from (an on-policy update needs the policy's own actions; Coach kept only the current
episode, which heatup never reaches).

Shapes: B = batch, A = actions, K = action dimensions, D = observation size, N = environment copies.
Logged signals (Coach's names): Entropy, Advantages, Values, Value Loss, Policy Loss.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from mxnet import gluon, nd

from rlframe.agents.agent import Agent
from rlframe.agents.clipped_ppo import (
    ADVANTAGES,
    ENTROPY,
    POLICY_LOSS,
    VALUE_LOSS,
    VALUES,
    PolicyGradientRescaler,
    compute_gae,
)
from rlframe.core_types import RunPhase
from rlframe.errors import ParameterValueError
from rlframe.exploration.parameters import AdditiveNoiseParameters, CategoricalParameters
from rlframe.exploration.policy import PolicyActing
from rlframe.export.graph import ContinuousPolicy, DiscretePolicy
from rlframe.memories.episodic_replay import Rollout
from rlframe.memories.memory import EpisodicExperienceReplayParameters
from rlframe.networks.blocks import ActorCritic, observation_embedder
from rlframe.networks.columns import Columns
from rlframe.networks.distributions import categorical_log_prob_entropy, gaussian_log_prob_entropy, softmax
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
from rlframe.schedules import Schedule
from rlframe.spaces import BoxActionSpace, DiscreteActionSpace, SpacesDefinition

#: The advantage estimators this agent implements (Coach's ``PolicyGradientRescaler`` has more).
SUPPORTED_RESCALERS = (PolicyGradientRescaler.A_VALUE, PolicyGradientRescaler.GAE)
#: Weight of the value loss: Coach's actor-critic network gives its V head ``loss_weight=0.5``.
VALUE_LOSS_WEIGHT = 0.5
#: What the loss block reports per update, averaged over the rollout.
DIAGNOSTICS = Columns(policy_loss=1, value_loss=1, entropy=1)


# ---- parameters ---------------------------------------------------------------------------------------
class ContinuousEntropyParameters(AdditiveNoiseParameters):
    """Coach's exploration for actor-critic on box actions: sample from the policy's own Gaussian (its mean and
    learned std) in training and take the mean in evaluation. The entropy bonus that keeps the std from collapsing
    is ``beta_entropy``; the noise fields are accepted for Coach compatibility, not used (the std is the network's)."""


class ActorCriticAlgorithmParameters(AlgorithmParameters):
    """Coach's actor-critic defaults.

    :param policy_gradient_rescaler: the advantage estimator: ``PolicyGradientRescaler.A_VALUE`` (n-step return
        minus V) or ``PolicyGradientRescaler.GAE``; Coach's other rescalers are refused.
    :param apply_gradients_every_x_episodes: accepted for Coach compatibility, not used: Coach's asynchronous
        workers applied their summed gradients once in this many episodes; here every rollout of the N copies makes
        one gradient step (as Coach with 1, which its A3C presets set) (episodes).
    :param beta_entropy: weight of the entropy bonus in the loss (0: none).
    :param num_steps_between_gradient_updates: t, the steps each environment copy plays between two gradient
        steps, and so the longest n of the n-step returns (steps per copy).
    :param gae_lambda: GAE's lambda, with ``PolicyGradientRescaler.GAE``: it weighs the k-step advantages by
        lambda^k (1: the n-step advantage; 0: the one-step TD error).
    :param estimate_state_value_using_gae: with ``PolicyGradientRescaler.GAE``, train V towards the GAE advantage
        plus V(s) instead of the n-step discounted return.
    """

    def __init__(self) -> None:
        super().__init__()
        self.policy_gradient_rescaler = PolicyGradientRescaler.A_VALUE
        self.apply_gradients_every_x_episodes = 5
        self.beta_entropy = 0.0
        # Coach's default t (its papers' t_max): long enough that a rollout usually ends with its episode.
        self.num_steps_between_gradient_updates = 5000
        self.gae_lambda = 0.96
        self.estimate_state_value_using_gae = False


class ActorCriticNetworkParameters(NetworkParameters):
    """Coach's actor-critic network: the default (relu, Medium) embedder and middleware for a value tower and a
    policy tower, Adam, gradients clipped to a global norm of 40. The V head's ``loss_weight`` of 0.5 is Coach's
    and is the weight rlframe gives the value loss (:data:`VALUE_LOSS_WEIGHT`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.input_embedders_parameters = {"observation": InputEmbedderParameters()}
        self.middleware_parameters = FCMiddlewareParameters()
        self.heads_parameters = [VHeadParameters(loss_weight=VALUE_LOSS_WEIGHT), PPOHeadParameters(loss_weight=1.0)]
        self.optimizer_type = "Adam"
        self.clip_gradients = 40.0
        self.async_training = True


class ActorCriticAgentParameters(AgentParameters):
    """Actor-critic (A2C): categorical exploration for discrete actions, the network's Gaussian for box actions."""

    def __init__(self) -> None:
        super().__init__(
            algorithm=ActorCriticAlgorithmParameters(),
            exploration={DiscreteActionSpace: CategoricalParameters(), BoxActionSpace: ContinuousEntropyParameters()},
            # Coach keeps one episode (SingleEpisodeBufferParameters); the rollout is emptied at every update, so
            # this memory's size is never reached.
            memory=EpisodicExperienceReplayParameters(),
            networks={"main": ActorCriticNetworkParameters()},
        )

    @property
    def agent_class(self) -> type:
        return ActorCriticAgent


# ---- the loss -----------------------------------------------------------------------------------------
class ActorCriticLoss(gluon.HybridBlock):
    """A rollout's loss as one graph (``NetworkWrapper.update`` binds it once as an executor).

    Input: packed (B, ``layout.width``) with the columns ``obs`` (D), ``action`` (K; 1 for discrete actions),
    ``advantage`` and ``value_target``. Outputs the per-sample loss (B,) (minimised through its mean) and the
    rollout means of :data:`DIAGNOSTICS` (3,).
    """

    def __init__(self, network: ActorCritic, layout: Columns, continuous: bool, beta_entropy: float) -> None:
        super().__init__(prefix="a2closs_")
        self.network = network
        self.layout = layout
        self._continuous = continuous
        self._beta_entropy = beta_entropy

    def hybrid_forward(self, F: Any, packed: Any) -> Any:
        layout = self.layout
        action = layout.slice(F, packed, "action")
        advantage = layout.column(F, packed, "advantage")
        outputs = self.network(layout.slice(F, packed, "obs"))
        if self._continuous:
            value, mean, log_std = outputs
            log_prob, entropy = gaussian_log_prob_entropy(F, mean, log_std, action)
        else:
            value, logits = outputs
            log_prob, entropy = categorical_log_prob_entropy(F, logits, action.reshape((-1,)))
        policy_loss = -log_prob * advantage  # the advantage is an input, so no gradient flows into it
        value_loss = F.square(value - layout.column(F, packed, "value_target"))
        loss = policy_loss + VALUE_LOSS_WEIGHT * value_loss - self._beta_entropy * entropy
        diagnostics = DIAGNOSTICS.stack(F, policy_loss=policy_loss, value_loss=value_loss, entropy=entropy)
        return loss, F.stop_gradient(F.mean(diagnostics, axis=0))


NumpyForward = Callable[[np.ndarray], np.ndarray]
NumpyPolicy = Callable[[np.ndarray], tuple[np.ndarray, ...]]


def numpy_towers(network: ActorCritic) -> tuple[NumpyForward, NumpyPolicy]:
    """Numpy copies of both towers with a snapshot of the weights: the value ((B, D) -> (B, 1)) and the policy
    (see :meth:`ActorCritic.numpy_policy`)."""
    return network.value.numpy_forward(), network.numpy_policy()


# ---- the agent ----------------------------------------------------------------------------------------
class ActorCriticAgent(Agent):
    """Synchronous advantage actor-critic over a discrete or box action space."""

    signal_names = Agent.signal_names + (ENTROPY, ADVANTAGES, VALUES, VALUE_LOSS, POLICY_LOSS)
    # Each update averages N rollouts: more copies give a steadier gradient but fewer steps per episode played.
    default_num_envs = 8
    # On-policy: heatup's random (or heatup-phase) actions are not the policy's.
    learns_from_heatup = False
    on_policy = True

    def _check_ranges(self) -> None:
        super()._check_ranges()
        algorithm = self.algorithm
        rescaler = algorithm.policy_gradient_rescaler
        if rescaler not in SUPPORTED_RESCALERS:
            shown = (f"PolicyGradientRescaler.{rescaler.name}" if isinstance(rescaler, PolicyGradientRescaler)
                     else repr(rescaler))
            raise ParameterValueError(
                f"agent_params.algorithm.policy_gradient_rescaler = {shown}: rlframe's actor-critic supports "
                "PolicyGradientRescaler.A_VALUE (n-step advantage) and PolicyGradientRescaler.GAE."
            )
        # GAE's lambda weighs k-step advantages by lambda^k: outside [0, 1] the advantages diverge or alternate.
        check_range("agent_params.algorithm.gae_lambda", algorithm.gae_lambda, 0, 1, example=0.95)
        # A negative weight would reward a collapsing policy instead of an exploring one.
        check_range("agent_params.algorithm.beta_entropy", algorithm.beta_entropy, 0, example=0.01)
        # t whole steps per copy; 0 or a fraction would never (or not as asked) update.
        check_range("agent_params.algorithm.num_steps_between_gradient_updates",
                    algorithm.num_steps_between_gradient_updates, 1, integer=True, example=5)
        check_range("agent_params.algorithm.apply_gradients_every_x_episodes",
                    algorithm.apply_gradients_every_x_episodes, 1, integer=True, example=1)

    def __init__(self, agent_params: AgentParameters, spaces: SpacesDefinition, rng: np.random.Generator) -> None:
        super().__init__(agent_params, spaces, rng)
        action_space = spaces.action
        self.continuous = isinstance(action_space, BoxActionSpace)
        if not self.continuous and not isinstance(action_space, DiscreteActionSpace):
            raise ParameterValueError(f"Actor-critic needs a discrete or box action space, got {action_space!r}.")
        self.action_size = int(np.prod(action_space.shape)) if self.continuous else 1
        num_outputs = action_space.num_actions if isinstance(action_space, DiscreteActionSpace) else self.action_size
        net_params: NetworkParameters = agent_params.network_wrappers["main"]
        embedder = observation_embedder(net_params)

        def build(prefix: str) -> gluon.HybridBlock:
            return ActorCritic(embedder, net_params.middleware_parameters, num_outputs, self.continuous,
                               spaces.observation_size, prefix=prefix)

        self.network = NetworkWrapper("main", net_params, build, spaces.observation_size)
        self.networks["main"] = self.network
        self.layout = Columns(obs=spaces.observation_size, action=self.action_size, advantage=1, value_target=1)
        self.loss = ActorCriticLoss(self.network.online, self.layout, self.continuous, float(self.algorithm.beta_entropy))
        self.rollout = Rollout()
        #: batched training steps in the rollout (each stores one transition per copy)
        self.rollout_steps = 0
        # Coach's autoscaling preset sets EGreedyParameters; on box actions its continuous entry applies, which
        # samples the network's Gaussian as ContinuousEntropyParameters does.
        self.acting = PolicyActing(agent_params.exploration, spaces, rng, "actor-critic",
                                   "ContinuousEntropyParameters or AdditiveNoiseParameters")

    # ---- acting -------------------------------------------------------------------------------------
    def choose_actions(self, obs: np.ndarray, phase: RunPhase) -> np.ndarray:
        # A numpy copy of the weights, taken once per update, acts for the N copies (an MXNet call per batched
        # step would cost ten times the arithmetic).
        _, policy = self.network.online_snapshot(numpy_towers)
        actions = self.acting.choose(policy(obs), phase)
        self.last_action_probabilities = self.acting.last_probabilities
        return actions

    def exploration_value(self, phase: RunPhase) -> float:
        return self.acting.exploration_value(phase, self.network.online.log_std.data().asnumpy()
                                             if self.continuous else None)

    # ---- the policy, for export ---------------------------------------------------------------------
    def network_outputs(self, obs: np.ndarray) -> list[np.ndarray]:
        value, policy, *log_std = (o.asnumpy() for o in self.network.online(nd.array(obs, dtype=np.float32)))
        if self.continuous:
            return [value, policy, np.exp(log_std[0])]
        return [value, softmax(policy).astype(np.float32)]

    def policy_head(self) -> DiscretePolicy | ContinuousPolicy:
        value, policy, log_std = self.network.online.describe()
        if self.continuous:
            assert log_std is not None
            return ContinuousPolicy(value, policy, log_std)
        return DiscretePolicy(value, policy)

    # ---- storing ------------------------------------------------------------------------------------
    def store(self, env_index: np.ndarray, obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
              next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Keep the transitions of a training step (heatup's are not stored: ``learns_from_heatup``)."""
        self.rollout.store(env_index, obs, action, reward, next_obs, terminated, truncated)
        self.rollout_steps += 1

    def memory_sizes(self) -> tuple[int, int]:
        return self.rollout.num_transitions, self.rollout.num_episodes

    # ---- training -----------------------------------------------------------------------------------
    def train(self) -> int:
        """One gradient step once every copy has played ``num_steps_between_gradient_updates`` steps since the
        last; returns the number of steps made (0 or 1)."""
        if self.rollout_steps < int(self.algorithm.num_steps_between_gradient_updates):
            return 0
        self.rollout_steps = 0
        self._steps_since_training = self._episodes_since_training = 0
        self.update()
        self.training_iteration += 1
        self.signals[signals.LEARNING_RATE].add(self.network.optimizer.learning_rate)
        return 1

    def advantages(self, reward: np.ndarray, value: np.ndarray, next_value: np.ndarray, terminated: np.ndarray,
                   segment_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(advantages, value targets), each (T,), for T transitions laid out as :class:`RolloutBatch` lays them
        out (each copy's in time order; ``segment_end`` after an episode's end or a copy's last transition)."""
        algorithm = self.algorithm
        gamma = float(algorithm.discount)
        # The n-step return minus V(s_t) is GAE with lambda = 1: the one-step errors telescope.
        n_step_advantage, n_step_return = compute_gae(reward, value, next_value, terminated, segment_end, gamma, 1.0)
        if algorithm.policy_gradient_rescaler == PolicyGradientRescaler.A_VALUE:
            return n_step_advantage, n_step_return
        advantage, gae_target = compute_gae(reward, value, next_value, terminated, segment_end, gamma,
                                            float(algorithm.gae_lambda))
        return advantage, gae_target if algorithm.estimate_state_value_using_gae else n_step_return

    def update(self) -> None:
        """One gradient step on everything played since the last."""
        batch = self.rollout.drain()
        count = len(batch.obs)
        obs = self.pre_network_filter.filter_observation(
            batch.obs, update=bool(self.algorithm.update_pre_network_filters_state_on_train))
        next_obs = self.pre_network_filter.filter_observation(batch.next_obs, update=False)
        value_tower, _ = self.network.online_snapshot(numpy_towers)
        values = value_tower(np.concatenate([obs, next_obs])).reshape(-1)
        value, next_value = values[:count], values[count:]
        advantage, value_target = self.advantages(batch.reward, value, next_value, batch.terminated, batch.segment_end)
        packed = self.layout.pack(obs=obs, action=batch.action.reshape(count, -1), advantage=advantage,
                                  value_target=value_target)
        (loss, diagnostics), grad_norm = self.network.update(self.loss, packed)
        # One read per update: the loss, the diagnostics and the gradient norm together.
        flat = nd.concat(loss.reshape((1,)), diagnostics, *([grad_norm] if grad_norm is not None else []), dim=0).asnumpy()
        norm = float(flat[1 + DIAGNOSTICS.width]) if grad_norm is not None else None
        self.record_update(TrainResult(float(flat[0]), norm, []))
        stats = DIAGNOSTICS.read(flat[1:1 + DIAGNOSTICS.width])
        for name, column in ((POLICY_LOSS, "policy_loss"), (VALUE_LOSS, "value_loss"), (ENTROPY, "entropy")):
            self.signals[name].add(float(stats[column]))
        self.signals[ADVANTAGES].add_many(advantage)
        self.signals[VALUES].add_many(value)

    # ---- state --------------------------------------------------------------------------------------
    def schedules(self) -> dict[str, Schedule]:
        e_greedy = self.acting.e_greedy
        return {"epsilon_schedule": e_greedy.epsilon_schedule} if e_greedy is not None else {}
