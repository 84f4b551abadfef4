"""Off-policy evaluation (OPE): how good would the evaluated policy be, judged only from logged data.

The evaluated policy is a soft proxy of the agent's greedy policy, as in Coach:
``pi(.|s) = softmax(Q(s, .) / softmax_temperature)`` (:func:`softmax_policy`). The data was logged by a
behaviour policy ``mu``; ``rho = pi(a|s) / mu(a|s)`` for the logged action ``a`` (:func:`importance_ratios`).

Notation: ``T`` transitions, ``A`` discrete actions; ``(T,)`` and ``(T, A)`` are array shapes. Episodes are
given by ``episode_id`` (``(T,)``, integers): the transitions of one episode are contiguous and in time
order, so an id may not reappear after another episode has started.

Per-step (one-step, "bandit") estimators of the expected *immediate* reward of ``pi`` at the logged states,
not of the return:

- :func:`inverse_propensity_score` (IPS): ``mean_t rho_t r_t``.
- :func:`direct_method` (DM): ``mean_t sum_a pi(a|s_t) rhat(s_t, a)`` with a learned reward model ``rhat``.
- :func:`doubly_robust` (DR): ``mean_t rho_t (r_t - rhat(s_t, a_t)) + DM``.

Per-episode estimators of the discounted return of ``pi`` from the episodes' first states:

- :func:`weighted_importance_sampling` (WIS): ``sum_i w_i G_i / sum_i w_i``, ``w_i = prod_t rho_t``.
- :func:`sequential_doubly_robust` (Jiang & Li, 2016), using the agent's own ``Qhat``.

:func:`off_policy_estimates` computes all five from one set of arrays. Every function is pure (numpy in,
float out; no network, no I/O, no state), so the batch-RL graph manager and the tests run the same code.
Computation is in float64.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from rlframe.errors import ParameterValueError
from rlframe.networks.distributions import softmax


def _vector(name: str, values: ArrayLike) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ParameterValueError(
            f"{name} has shape {array.shape}; pass a 1-D array with one entry per transition, shape (T,).")
    return array


def _matrix(name: str, values: ArrayLike) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ParameterValueError(
            f"{name} has shape {array.shape}; pass a 2-D array with one row per transition and one column per "
            f"action, shape (T, A).")
    return array


def _ratios(values: ArrayLike) -> np.ndarray:
    rho = _vector("rho", values)
    bad = np.flatnonzero(~(rho >= 0) | ~np.isfinite(rho))
    if bad.size:
        raise ParameterValueError(
            f"rho[{bad[0]}] = {rho[bad[0]]}: importance ratios must be finite and >= 0; compute them with "
            f"importance_ratios().")
    return rho


def _same_rows(**arrays: np.ndarray) -> int:
    """The common number of transitions ``T`` of ``arrays`` (first axis); an error naming any that differ."""
    (first, reference), *others = arrays.items()
    for name, array in others:
        if array.shape[0] != reference.shape[0]:
            raise ParameterValueError(
                f"{name} has shape {array.shape} but {first} has shape {reference.shape}; every array needs one "
                f"row per transition (the same T).")
    if reference.shape[0] == 0:
        raise ParameterValueError(f"{first} is empty; off-policy evaluation needs at least one transition.")
    return reference.shape[0]


def _same_shape(first: str, reference: np.ndarray, name: str, array: np.ndarray) -> None:
    if array.shape != reference.shape:
        raise ParameterValueError(
            f"{name} has shape {array.shape} but {first} has shape {reference.shape}; both are (T, A): one row "
            f"per transition, one column per action.")


def _actions(values: ArrayLike, num_actions: int) -> np.ndarray:
    action = np.asarray(values)
    if action.ndim != 1:
        raise ParameterValueError(
            f"action has shape {action.shape}; pass a 1-D array with one action index per transition, shape (T,).")
    if action.size and not np.issubdtype(action.dtype, np.integer):
        raise ParameterValueError(f"action has dtype {action.dtype}; pass integer action indices.")
    bad = np.flatnonzero((action < 0) | (action >= num_actions))
    if bad.size:
        raise ParameterValueError(
            f"action[{bad[0]}] = {action[bad[0]]} is not an action index of a {num_actions}-action space; "
            f"use 0 to {num_actions - 1}.")
    return action


def _discount(discount: float) -> float:
    if not 0.0 <= discount <= 1.0:
        raise ParameterValueError(f"discount = {discount}: use a value in [0, 1].")
    return float(discount)


def _episodes(episode_id: ArrayLike, num_transitions: int) -> tuple[np.ndarray, np.ndarray]:
    """First row and length of each episode, ``(E,)`` each, in the order the episodes appear."""
    ids = np.asarray(episode_id)
    if ids.shape != (num_transitions,):
        raise ParameterValueError(
            f"episode_id has shape {ids.shape} but there are {num_transitions} transitions; pass one episode id "
            f"per transition, shape (T,).")
    starts = np.concatenate(([0], np.flatnonzero(ids[1:] != ids[:-1]) + 1))
    start_ids = ids[starts]
    _, first_start = np.unique(start_ids, return_index=True)
    reappearing = np.setdiff1d(np.arange(starts.shape[0]), first_start)
    if reappearing.size:
        again = reappearing[0]
        raise ParameterValueError(
            f"episode_id {start_ids[again]!r} reappears at row {starts[again]} after another episode started; "
            f"the transitions of one episode must be contiguous and in time order.")
    lengths = np.diff(np.append(starts, num_transitions))
    return starts, lengths


def softmax_policy(q: ArrayLike, temperature: float) -> np.ndarray:
    """The evaluated policy ``pi(a|s) = exp(Q(s,a)/temperature) / sum_b exp(Q(s,b)/temperature)``.

    ``q``: ``(T, A)`` action values; returns ``(T, A)`` probabilities, each row summing to 1. The row maximum
    is subtracted before ``exp`` so large ``Q / temperature`` cannot overflow. ``temperature`` > 0 (Coach's
    ``softmax_temperature``; presets use 0.2): small values approach the greedy policy.
    """
    if not temperature > 0:
        raise ParameterValueError(
            f"softmax_temperature = {temperature}: the evaluated policy softmax(Q / softmax_temperature) needs "
            f"softmax_temperature > 0 (Coach presets use 0.2).")
    return softmax(_matrix("q", q), temperature)


def importance_ratios(policy_probs: ArrayLike, behaviour_probs: ArrayLike, action: ArrayLike) -> np.ndarray:
    """``rho_t = pi(a_t|s_t) / mu(a_t|s_t)`` for the logged actions; returns ``(T,)``.

    ``policy_probs``: ``(T, A)`` evaluated-policy probabilities ``pi(.|s_t)``. ``action``: ``(T,)`` logged action
    indices. ``behaviour_probs`` is either ``(T, A)``, the behaviour policy's whole distribution ``mu(.|s_t)``
    as logged (Coach's ``all_action_probabilities``), from which the logged action's column is taken, or
    ``(T,)``, the logged action's probability ``mu(a_t|s_t)`` itself. A logged action cannot have behaviour
    probability 0 (or less): such a row raises, naming its index.
    """
    pi = _matrix("policy_probs", policy_probs)
    action = _actions(action, pi.shape[1])
    mu = np.asarray(behaviour_probs, dtype=np.float64)
    if mu.ndim not in (1, 2):
        raise ParameterValueError(
            f"behaviour_probs has shape {mu.shape}; pass (T, A) behaviour distributions or (T,) probabilities "
            f"of the logged actions.")
    _same_rows(policy_probs=pi, behaviour_probs=mu, action=action)
    rows = np.arange(pi.shape[0])
    if mu.ndim == 2:
        _same_shape("policy_probs", pi, "behaviour_probs", mu)
        mu = mu[rows, action]
    bad = np.flatnonzero(~(mu > 0))
    if bad.size:
        row = bad[0]
        raise ParameterValueError(
            f"behaviour probability of the logged action {action[row]} at row {row} is {mu[row]}; an action "
            f"that was taken must have had probability > 0, so fix the logged behaviour probabilities.")
    return pi[rows, action] / mu


def inverse_propensity_score(rho: ArrayLike, reward: ArrayLike) -> float:
    """IPS estimate of ``pi``'s expected immediate reward: ``mean_t rho_t r_t``.

    ``rho``, ``reward``: ``(T,)``. With per-step data this estimates
    ``E_{s ~ d_mu}[sum_a pi(a|s) r(s,a)]``, states weighted as the behaviour policy visited them.
    """
    rho = _ratios(rho)
    reward = _vector("reward", reward)
    _same_rows(rho=rho, reward=reward)
    return float(np.mean(rho * reward))


def direct_method(policy_probs: ArrayLike, reward_estimates: ArrayLike) -> float:
    """DM estimate of ``pi``'s expected immediate reward: ``mean_t sum_a pi(a|s_t) rhat(s_t, a)``.

    ``policy_probs``: ``(T, A)`` ``pi(.|s_t)``; ``reward_estimates``: ``(T, A)`` a reward model's ``rhat(s_t, .)``.
    Exact when ``rhat`` is; biased as much as ``rhat`` is otherwise.
    """
    pi = _matrix("policy_probs", policy_probs)
    rhat = _matrix("reward_estimates", reward_estimates)
    _same_shape("policy_probs", pi, "reward_estimates", rhat)
    _same_rows(policy_probs=pi)
    return float(np.mean(np.sum(pi * rhat, axis=1)))


def doubly_robust(rho: ArrayLike, reward: ArrayLike, action: ArrayLike, policy_probs: ArrayLike,
                  reward_estimates: ArrayLike) -> float:
    """DR estimate of ``pi``'s expected immediate reward: ``mean_t rho_t (r_t - rhat(s_t, a_t)) + DM``.

    ``rho``, ``reward``, ``action``: ``(T,)``; ``policy_probs``, ``reward_estimates``: ``(T, A)``. The IPS-weighted
    residual corrects the reward model's bias, so DR is unbiased whatever ``rhat`` is (given correct ``mu``).
    """
    rho = _ratios(rho)
    reward = _vector("reward", reward)
    rhat = _matrix("reward_estimates", reward_estimates)
    action = _actions(action, rhat.shape[1])
    _same_rows(rho=rho, reward=reward, action=action, reward_estimates=rhat)
    dm = direct_method(policy_probs, rhat)
    return float(np.mean(rho * (reward - rhat[np.arange(rho.shape[0]), action]))) + dm


def weighted_importance_sampling(rho: ArrayLike, reward: ArrayLike, episode_id: ArrayLike,
                                 discount: float) -> float:
    """WIS estimate of ``pi``'s discounted return: ``sum_i w_i G_i / sum_i w_i``; 0.0 when ``sum_i w_i = 0``.

    ``rho``, ``reward``, ``episode_id``: ``(T,)``. For episode ``i``, ``w_i = prod_t rho_t`` and
    ``G_i = sum_t discount^t r_t`` counted from its first transition. The products are formed as sums of
    ``log rho`` and every weight is divided by the largest one before ``exp``: thousands of ratios would
    overflow float64, and the self-normalised ratio is unchanged by a common factor. ``rho_t = 0`` gives its
    episode weight 0.
    """
    rho = _ratios(rho)
    reward = _vector("reward", reward)
    num_transitions = _same_rows(rho=rho, reward=reward)
    discount = _discount(discount)
    starts, lengths = _episodes(episode_id, num_transitions)
    with np.errstate(divide="ignore"):
        log_weights = np.add.reduceat(np.log(rho), starts)
    if np.all(np.isneginf(log_weights)):
        return 0.0
    weights = np.exp(log_weights - log_weights.max())
    step_in_episode = np.arange(num_transitions) - np.repeat(starts, lengths)
    returns = np.add.reduceat(discount ** step_in_episode * reward, starts)
    return float(np.sum(weights * returns) / np.sum(weights))


def sequential_doubly_robust(rho: ArrayLike, reward: ArrayLike, action: ArrayLike, policy_probs: ArrayLike,
                             q_estimates: ArrayLike, episode_id: ArrayLike, discount: float) -> float:
    """Sequential DR estimate of ``pi``'s discounted return (Jiang & Li, 2016).

    ``rho``, ``reward``, ``action``, ``episode_id``: ``(T,)``; ``policy_probs``, ``q_estimates``: ``(T, A)``.
    Per episode, backwards from its last transition,
    ``DR_t = Vhat(s_t) + rho_t (r_t + discount DR_{t+1} - Qhat(s_t, a_t))``, ``DR`` after the last transition
    is 0 and ``Vhat(s) = sum_a pi(a|s) Qhat(s, a)``; the estimate is the mean over episodes of ``DR`` at
    their first transitions. Unbiased for any ``Qhat``; with ``Qhat`` the true ``Q`` of ``pi`` (and
    deterministic dynamics) every episode gives exactly ``V(s_0)``.
    """
    rho = _ratios(rho)
    reward = _vector("reward", reward)
    pi = _matrix("policy_probs", policy_probs)
    qhat = _matrix("q_estimates", q_estimates)
    _same_shape("policy_probs", pi, "q_estimates", qhat)
    action = _actions(action, qhat.shape[1])
    num_transitions = _same_rows(rho=rho, reward=reward, action=action, policy_probs=pi)
    discount = _discount(discount)
    starts, lengths = _episodes(episode_id, num_transitions)
    v_hat = np.sum(pi * qhat, axis=1)
    q_logged = qhat[np.arange(num_transitions), action]
    # Longest episodes first, so the episodes still running at step k are a prefix [:n] and every step of the
    # backward pass updates all of them with one slice instead of a Python loop over transitions.
    order = np.argsort(-lengths, kind="stable")
    starts, lengths = starts[order], lengths[order]
    running = np.searchsorted(-lengths, -np.arange(lengths[0]), side="left")
    dr = np.zeros(lengths.shape[0])
    for k in range(lengths[0] - 1, -1, -1):
        n = running[k]
        rows = starts[:n] + k
        dr[:n] = v_hat[rows] + rho[rows] * (reward[rows] + discount * dr[:n] - q_logged[rows])
    return float(np.mean(dr))


class OffPolicyEstimates(NamedTuple):
    """All five estimates; ``ips``, ``dm``, ``dr`` are per-step rewards, ``wis``, ``sequential_dr`` returns."""

    ips: float
    dm: float
    dr: float
    wis: float
    sequential_dr: float


def off_policy_estimates(q_estimates: ArrayLike, reward_estimates: ArrayLike, behaviour_probs: ArrayLike,
                         action: ArrayLike, reward: ArrayLike, episode_id: ArrayLike, discount: float,
                         softmax_temperature: float) -> OffPolicyEstimates:
    """IPS, DM, DR, WIS and sequential DR of ``pi = softmax(q_estimates / softmax_temperature)``.

    ``q_estimates``: ``(T, A)`` the evaluated agent's ``Q(s_t, .)``, which defines ``pi`` and is the ``Qhat`` of
    sequential DR. ``reward_estimates``: ``(T, A)`` a reward model's ``rhat(s_t, .)``. ``behaviour_probs``:
    ``(T, A)`` logged distributions ``mu(.|s_t)`` or ``(T,)`` probabilities of the logged actions (see
    :func:`importance_ratios`). ``action``, ``reward``, ``episode_id``: ``(T,)``.
    """
    q = _matrix("q_estimates", q_estimates)
    num_transitions = q.shape[0]
    logged_distributions = np.ndim(behaviour_probs) == 2
    expected = {
        "reward_estimates": (reward_estimates, q.shape),
        "behaviour_probs": (behaviour_probs, q.shape if logged_distributions else (num_transitions,)),
        "action": (action, (num_transitions,)),
        "reward": (reward, (num_transitions,)),
        "episode_id": (episode_id, (num_transitions,)),
    }
    for name, (values, shape) in expected.items():
        if np.shape(values) != shape:
            raise ParameterValueError(
                f"{name} has shape {np.shape(values)} but q_estimates has shape {q.shape}; {name} must have "
                f"shape {shape} (T transitions, A actions).")
    pi = softmax_policy(q, softmax_temperature)
    rho = importance_ratios(pi, behaviour_probs, action)
    return OffPolicyEstimates(
        ips=inverse_propensity_score(rho, reward),
        dm=direct_method(pi, reward_estimates),
        dr=doubly_robust(rho, reward, action, pi, reward_estimates),
        wis=weighted_importance_sampling(rho, reward, episode_id, discount),
        sequential_dr=sequential_doubly_robust(rho, reward, action, pi, q, episode_id, discount),
    )
