"""Off-policy evaluation estimators against hand arithmetic, an exactly solvable MDP, and a reference loop."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from rlframe.errors import ParameterValueError
from rlframe.off_policy_evaluation import (
    OffPolicyEstimates,
    direct_method,
    doubly_robust,
    importance_ratios,
    inverse_propensity_score,
    off_policy_estimates,
    sequential_doubly_robust,
    softmax_policy,
    weighted_importance_sampling,
)

pytestmark = pytest.mark.unit

# ---------------------------------------------------------------------------------------------------------
# A tiny dataset: episode 7 has 3 transitions (rows 0-2), episode 3 has 2 (rows 3-4); 2 actions.
# Episode ids deliberately not sorted, so nothing may rely on ids being 0, 1, ...
TINY_PI = np.array([[0.5, 0.5], [0.8, 0.2], [0.25, 0.75], [1.0, 0.0], [0.6, 0.4]])
TINY_MU = np.array([[0.25, 0.75], [0.5, 0.5], [0.25, 0.75], [0.5, 0.5], [0.2, 0.8]])
TINY_ACTION = np.array([0, 1, 1, 0, 1])
TINY_REWARD = np.array([1.0, 0.0, 2.0, -1.0, 3.0])
TINY_EPISODE = np.array([7, 7, 7, 3, 3])
TINY_RHAT = np.array([[1.0, 0.0], [0.5, 0.5], [1.0, 2.0], [0.0, -2.0], [2.0, 2.0]])
TINY_QHAT = np.array([[2.0, 1.0], [1.0, 3.0], [2.0, 2.0], [-1.0, 1.0], [3.0, 4.0]])
TINY_DISCOUNT = 0.5
# rho = pi(a|s)/mu(a|s): 0.5/0.25, 0.2/0.5, 0.75/0.75, 1.0/0.5, 0.4/0.8
TINY_RHO = np.array([2.0, 0.4, 1.0, 2.0, 0.5])


def test_softmax_policy_by_hand() -> None:
    # exp(0) : exp(ln 3) = 1 : 3; temperature 0.5 doubles ln(3)/2 back to ln 3
    q = np.array([[0.0, np.log(3.0)], [0.0, np.log(3.0) / 2]])
    np.testing.assert_allclose(softmax_policy(q, 1.0)[0], [0.25, 0.75], rtol=1e-12)
    np.testing.assert_allclose(softmax_policy(q, 0.5)[1], [0.25, 0.75], rtol=1e-12)
    # exp(1000) overflows unless the row maximum is subtracted first
    np.testing.assert_allclose(softmax_policy(np.array([[1000.0, 1000.0, 0.0]]), 1.0), [[0.5, 0.5, 0.0]])


def test_importance_ratios_by_hand_from_distributions_and_logged_probabilities() -> None:
    np.testing.assert_allclose(importance_ratios(TINY_PI, TINY_MU, TINY_ACTION), TINY_RHO, rtol=1e-12)
    logged = TINY_MU[np.arange(5), TINY_ACTION]  # 0.25, 0.5, 0.75, 0.5, 0.8
    np.testing.assert_allclose(importance_ratios(TINY_PI, logged, TINY_ACTION), TINY_RHO, rtol=1e-12)


def test_ips_by_hand() -> None:
    # (2*1 + 0.4*0 + 1*2 + 2*(-1) + 0.5*3) / 5 = 3.5 / 5
    assert inverse_propensity_score(TINY_RHO, TINY_REWARD) == pytest.approx(0.7, rel=1e-12)


def test_dm_by_hand() -> None:
    # sum_a pi rhat per row: 0.5*1+0.5*0 = 0.5; 0.8*0.5+0.2*0.5 = 0.5; 0.25*1+0.75*2 = 1.75; 1*0+0*(-2) = 0;
    # 0.6*2+0.4*2 = 2  ->  4.75 / 5
    assert direct_method(TINY_PI, TINY_RHAT) == pytest.approx(0.95, rel=1e-12)


def test_dr_by_hand() -> None:
    # rho (r - rhat(s,a)): 2*(1-1) = 0; 0.4*(0-0.5) = -0.2; 1*(2-2) = 0; 2*(-1-0) = -2; 0.5*(3-2) = 0.5
    # -> -1.7 / 5 = -0.34; DR = -0.34 + DM 0.95
    got = doubly_robust(TINY_RHO, TINY_REWARD, TINY_ACTION, TINY_PI, TINY_RHAT)
    assert got == pytest.approx(0.61, rel=1e-12)


def test_wis_by_hand() -> None:
    # episode 7: w = 0.5/0.25 * 0.2/0.5 * 0.75/0.75 = 0.8, G = 1 + 0.5*0 + 0.25*2 = 1.5
    # episode 3: w = 1.0/0.5 * 0.4/0.8 = 1.0,             G = -1 + 0.5*3 = 0.5
    # WIS = (0.8*1.5 + 1*0.5) / (0.8 + 1) = 1.7 / 1.8
    got = weighted_importance_sampling(TINY_RHO, TINY_REWARD, TINY_EPISODE, TINY_DISCOUNT)
    assert got == pytest.approx(1.7 / 1.8, rel=1e-12)


def test_sequential_dr_by_hand() -> None:
    # Vhat = sum_a pi Qhat: 0.5*2+0.5*1 = 1.5; 0.8*1+0.2*3 = 1.4; 0.25*2+0.75*2 = 2; 1*(-1) = -1; 0.6*3+0.4*4 = 3.4
    # episode 7: DR_2 = 2 + 1*(2 + 0.5*0 - 2) = 2
    #            DR_1 = 1.4 + 0.4*(0 + 0.5*2 - 3) = 0.6
    #            DR_0 = 1.5 + 2*(1 + 0.5*0.6 - 2) = 0.1
    # episode 3: DR_1 = 3.4 + 0.5*(3 + 0 - 4) = 2.9
    #            DR_0 = -1 + 2*(-1 + 0.5*2.9 - (-1)) = 1.9
    # mean over episodes = (0.1 + 1.9) / 2
    got = sequential_doubly_robust(TINY_RHO, TINY_REWARD, TINY_ACTION, TINY_PI, TINY_QHAT, TINY_EPISODE,
                                   TINY_DISCOUNT)
    assert got == pytest.approx(1.0, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------
# A 2-step MDP with deterministic transitions: s0 --a=0--> s1, s0 --a=1--> s2; s1 and s2 end the episode after
# one more action. R[s, a] is the (deterministic) reward.
R = np.array([[1.0, 0.0], [2.0, -1.0], [0.0, 3.0]])
NEXT_STATE = {0: 1, 1: 2}
# Behaviour policy: each trajectory (a0, a1) has probability MU[0, a0] * MU[s1, a1], a multiple of 1/8.
MU = np.array([[0.5, 0.5], [0.75, 0.25], [0.25, 0.75]])
# The agent's Q (one row per state); evaluated policy pi = softmax(Q / 1).
AGENT_Q = np.array([[0.0, np.log(3.0)], [np.log(2.0), 0.0], [0.3, 0.3]])
PI = np.exp(AGENT_Q) / np.exp(AGENT_Q).sum(axis=1, keepdims=True)  # [1/4, 3/4], [2/3, 1/3], [1/2, 1/2]
GAMMA = 0.9


def mdp_dataset(counts: dict[tuple[int, int], int]) -> dict[str, np.ndarray]:
    """Per-transition arrays of ``counts[(a0, a1)]`` copies of each trajectory (state, action, reward, ...)."""
    state, action, episode = [], [], []
    for (a0, a1), count in counts.items():
        for _ in range(count):
            state += [0, NEXT_STATE[a0]]
            action += [a0, a1]
            episode += [len(episode) // 2] * 2
    state, action = np.array(state), np.array(action)
    return {"state": state, "action": action, "reward": R[state, action], "episode_id": np.array(episode)}


def mdp_true_q_of_pi() -> np.ndarray:
    v_one_step = (PI * R).sum(axis=1)  # the value of s1 and s2, which end the episode after one action
    q = R.copy()
    q[0] = R[0] + GAMMA * v_one_step[[NEXT_STATE[0], NEXT_STATE[1]]]
    return q


# Every trajectory with count 8 * mu(trajectory): (0,0): 1/2*3/4 = 3/8, (0,1): 1/8, (1,0): 1/2*1/4 = 1/8,
# (1,1): 3/8. Within each state the logged actions then occur exactly in proportion to mu.
EXACT_COUNTS = {(a0, a1): round(8 * MU[0, a0] * MU[NEXT_STATE[a0], a1])
                for a0, a1 in itertools.product(range(2), range(2))}


def test_mdp_exact_counts_match_true_values() -> None:
    data = mdp_dataset(EXACT_COUNTS)
    state = data["state"]
    rhat_wrong = np.array([[5.0, -2.0], [0.0, 0.0], [1.0, 7.0]])[state]  # any reward model
    estimates = off_policy_estimates(q_estimates=AGENT_Q[state], reward_estimates=rhat_wrong,
                                     behaviour_probs=MU[state], action=data["action"], reward=data["reward"],
                                     episode_id=data["episode_id"], discount=GAMMA, softmax_temperature=1.0)
    assert isinstance(estimates, OffPolicyEstimates)

    # IPS and DR with per-step data estimate E_{s ~ d_mu} [sum_a pi(a|s) R(s,a)]: pi's immediate reward averaged
    # over the states as the *behaviour* policy visits them, every time step pooled. Here d_mu is s0 in 8 of the
    # 16 transitions, s1 in 8*(1/2) = 4, s2 in 4:
    #   r_pi(s0) = 1/4*1 + 3/4*0 = 0.25, r_pi(s1) = 2/3*2 - 1/3*1 = 1, r_pi(s2) = 1/2*0 + 1/2*3 = 1.5
    #   (8*0.25 + 4*1 + 4*1.5) / 16 = 0.75
    r_pi = (PI * R).sum(axis=1)
    per_step_truth = (8 * r_pi[0] + 4 * r_pi[1] + 4 * r_pi[2]) / 16
    assert per_step_truth == pytest.approx(0.75, rel=1e-12)
    assert estimates.ips == pytest.approx(per_step_truth, rel=1e-12)
    assert estimates.dr == pytest.approx(per_step_truth, rel=1e-12)  # whatever rhat is
    # DM is only as good as rhat: wrong here, exact with the true reward model
    assert estimates.dm != pytest.approx(per_step_truth, rel=1e-3)
    assert direct_method(softmax_policy(AGENT_Q[state], 1.0), R[state]) == pytest.approx(per_step_truth, rel=1e-12)

    # The discounted value of pi from s0, by enumerating its four trajectories.
    true_value = sum(PI[0, a0] * PI[NEXT_STATE[a0], a1] * (R[0, a0] + GAMMA * R[NEXT_STATE[a0], a1])
                     for a0, a1 in itertools.product(range(2), range(2)))
    # = 1/4*(1 + 0.9*r_pi(s1)) + 3/4*(0 + 0.9*r_pi(s2)) = 1/4*1.9 + 3/4*1.35 = 1.4875
    assert true_value == pytest.approx(1.4875, rel=1e-12)
    assert estimates.wis == pytest.approx(true_value, rel=1e-12)
    # Sequential DR is unbiased for any Qhat; here Qhat is the agent's Q, which is not pi's true Q.
    assert not np.allclose(AGENT_Q, mdp_true_q_of_pi())
    assert estimates.sequential_dr == pytest.approx(true_value, rel=1e-12)


def test_mdp_behaviour_probs_of_logged_action_give_the_same_estimates() -> None:
    data = mdp_dataset(EXACT_COUNTS)
    state, action = data["state"], data["action"]
    common = {"q_estimates": AGENT_Q[state], "reward_estimates": R[state], "action": action,
              "reward": data["reward"], "episode_id": data["episode_id"], "discount": GAMMA,
              "softmax_temperature": 1.0}
    from_distributions = off_policy_estimates(behaviour_probs=MU[state], **common)
    from_logged = off_policy_estimates(behaviour_probs=MU[state, action], **common)
    np.testing.assert_allclose(from_logged, from_distributions, rtol=1e-12)


def test_sequential_dr_with_true_q_is_exact_even_with_extreme_ratios() -> None:
    # Trajectories pi likes but mu almost never takes: rho = pi / 0.02 is far from 1.
    data = mdp_dataset({(1, 1): 3, (0, 0): 1, (1, 0): 2})
    state, action = data["state"], data["action"]
    rho = importance_ratios(PI[state], np.full(state.shape, 0.02), action)
    assert rho.min() > 10
    true_q = mdp_true_q_of_pi()
    true_value = (PI[0] * true_q[0]).sum()  # V(s0) = 1/4*1.9 + 3/4*1.35
    got = sequential_doubly_robust(rho, data["reward"], action, PI[state], true_q[state], data["episode_id"],
                                   GAMMA)
    assert got == pytest.approx(true_value, rel=1e-12)
    # The importance-sampling estimators have no such protection on this unrepresentative sample.
    assert weighted_importance_sampling(rho, data["reward"], data["episode_id"], GAMMA) != pytest.approx(
        true_value, rel=1e-3)


def test_wis_is_zero_when_every_episode_has_weight_zero() -> None:
    rho = np.array([0.0, 3.0, 2.0, 0.0])
    assert weighted_importance_sampling(rho, np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 0, 1, 1]), 0.9) == 0.0


def test_wis_ignores_zero_weight_episodes() -> None:
    # episode 0 has weight 0; episode 1: G = 3 + 0.5*4 = 5 is the whole estimate
    rho = np.array([0.0, 3.0, 2.0, 1.5])
    assert weighted_importance_sampling(rho, np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 0, 1, 1]),
                                        0.5) == pytest.approx(5.0, rel=1e-12)


def test_wis_does_not_overflow_on_long_episodes() -> None:
    # 2**2000 overflows float64 (max ~2**1024). Episode A: rho = 2 for 2,000 steps, r = 0.001 each, G_A = 2;
    # episode B: the same except one rho = 1, so w_B = w_A / 2, and r = 0.0005, G_B = 1.
    # WIS = (w_A*2 + w_A/2*1) / (w_A + w_A/2) = 2.5/1.5 = 5/3, whatever w_A is.
    length = 2000
    rho_b = np.full(length, 2.0)
    rho_b[1000] = 1.0
    rho = np.concatenate([np.full(length, 2.0), rho_b])
    reward = np.concatenate([np.full(length, 0.001), np.full(length, 0.0005)])
    episode = np.repeat([0, 1], length)
    got = weighted_importance_sampling(rho, reward, episode, 1.0)
    assert np.isfinite(got)
    assert got == pytest.approx(5.0 / 3.0, rel=1e-9)
    # One such episode alone: the self-normalised weight is 1 and WIS is its return.
    assert weighted_importance_sampling(rho[:length], reward[:length], episode[:length], 1.0) == pytest.approx(
        2.0, rel=1e-9)


# ---------------------------------------------------------------------------------------------------------
# Errors


def test_temperature_must_be_positive() -> None:
    with pytest.raises(ParameterValueError, match=r"softmax_temperature = 0(\.0)?:.*> 0"):
        softmax_policy(TINY_QHAT, 0.0)
    with pytest.raises(ParameterValueError, match=r"softmax_temperature = -1"):
        off_policy_estimates(TINY_QHAT, TINY_RHAT, TINY_MU, TINY_ACTION, TINY_REWARD, TINY_EPISODE, 0.9, -1.0)


@pytest.mark.parametrize(("name", "bad", "pattern"), [
    ("reward", TINY_REWARD[:4], r"reward has shape \(4,\) but q_estimates has shape \(5, 2\)"),
    ("reward_estimates", TINY_RHAT[:, :1], r"reward_estimates has shape \(5, 1\) but q_estimates has shape \(5, 2\)"),
    ("behaviour_probs", TINY_MU[:3], r"behaviour_probs has shape \(3, 2\) but q_estimates has shape \(5, 2\)"),
    ("behaviour_probs", TINY_MU[:3, 0], r"behaviour_probs has shape \(3,\) but q_estimates has shape \(5, 2\)"),
    ("episode_id", TINY_EPISODE[:, None], r"episode_id has shape \(5, 1\) but q_estimates has shape \(5, 2\)"),
])
def test_mismatched_shapes_name_the_arrays(name: str, bad: np.ndarray, pattern: str) -> None:
    arrays = {"q_estimates": TINY_QHAT, "reward_estimates": TINY_RHAT, "behaviour_probs": TINY_MU,
              "action": TINY_ACTION, "reward": TINY_REWARD, "episode_id": TINY_EPISODE}
    arrays[name] = bad
    with pytest.raises(ParameterValueError, match=pattern):
        off_policy_estimates(**arrays, discount=0.9, softmax_temperature=1.0)


def test_mismatched_lengths_in_a_single_estimator() -> None:
    with pytest.raises(ParameterValueError, match=r"reward has shape \(4,\) but rho has shape \(5,\)"):
        inverse_propensity_score(TINY_RHO, TINY_REWARD[:4])


def test_episode_ids_must_be_contiguous() -> None:
    with pytest.raises(ParameterValueError, match=r"episode_id 7 reappears at row 4 .*contiguous"):
        weighted_importance_sampling(TINY_RHO, TINY_REWARD, np.array([7, 7, 3, 3, 7]), 0.9)
    with pytest.raises(ParameterValueError, match=r"episode_id 3 reappears at row 2 "):
        sequential_doubly_robust(TINY_RHO, TINY_REWARD, TINY_ACTION, TINY_PI, TINY_QHAT, np.array([3, 1, 3, 1, 1]),
                                 0.9)


def test_zero_behaviour_probability_of_logged_action_names_the_row() -> None:
    mu = TINY_MU.copy()
    mu[3, 0] = 0.0  # row 3 logged action 0
    with pytest.raises(ParameterValueError, match=r"logged action 0 at row 3 is 0\.0"):
        importance_ratios(TINY_PI, mu, TINY_ACTION)
    mu = TINY_MU.copy()
    mu[3, 1] = 0.0  # an action that was not taken may have probability 0
    np.testing.assert_allclose(importance_ratios(TINY_PI, mu, TINY_ACTION), TINY_RHO)


def test_action_out_of_range_and_discount_out_of_range() -> None:
    with pytest.raises(ParameterValueError, match=r"action\[1\] = 2 .*2-action space"):
        importance_ratios(TINY_PI, TINY_MU, np.array([0, 2, 1, 0, 1]))
    with pytest.raises(ParameterValueError, match=r"discount = 1\.5"):
        weighted_importance_sampling(TINY_RHO, TINY_REWARD, TINY_EPISODE, 1.5)


# ---------------------------------------------------------------------------------------------------------


def reference_sequential_dr(rho, reward, action, pi, qhat, episode_id, discount) -> float:
    """Jiang & Li's recursion, one episode and one transition at a time."""
    values = []
    for episode in dict.fromkeys(episode_id.tolist()):
        rows = np.flatnonzero(episode_id == episode)
        dr = 0.0
        for t in reversed(rows):
            v = float(np.dot(pi[t], qhat[t]))
            dr = v + rho[t] * (reward[t] + discount * dr - qhat[t, action[t]])
        values.append(dr)
    return float(np.mean(values))


def test_sequential_dr_matches_reference_loop_on_random_data() -> None:
    rng = np.random.default_rng(0)
    num_actions, num_transitions = 3, 10_000
    # 500 episodes from 499 random cut points: very unequal lengths, 1-step episodes likely
    cuts = np.sort(rng.choice(np.arange(1, num_transitions), size=499, replace=False))
    lengths = np.diff(np.concatenate([[0], cuts, [num_transitions]]))
    ids = rng.permutation(10_000)[:500]  # arbitrary, unsorted ids
    episode_id = np.repeat(ids, lengths)
    pi = softmax_policy(rng.normal(size=(num_transitions, num_actions)), 0.5)
    mu = rng.dirichlet(np.ones(num_actions), size=num_transitions)
    action = np.array([rng.choice(num_actions, p=p) for p in mu])
    rho = importance_ratios(pi, mu, action)
    reward = rng.normal(size=num_transitions)
    qhat = rng.normal(size=(num_transitions, num_actions))
    got = sequential_doubly_robust(rho, reward, action, pi, qhat, episode_id, 0.95)
    want = reference_sequential_dr(rho, reward, action, pi, qhat, episode_id, 0.95)
    assert got == pytest.approx(want, rel=1e-10)
