"""Batch-RL CSV datasets: transitions from consecutive rows, every malformed input named by file, line and
column, and the seeded episode-level split."""
import contextlib

import numpy as np
import pandas as pd
import pytest

from rlframe.errors import ParameterValueError
from rlframe.memories.dataset import (
    CsvDataset,
    DatasetError,
    PickledReplayBuffer,
    load_csv_dataset,
    resolve_dataset_path,
    split_episodes,
)
from rlframe.spaces import DiscreteActionSpace, RewardSpace, SpacesDefinition, StateSpace, VectorObservationSpace

pytestmark = pytest.mark.unit

SPACES = SpacesDefinition(StateSpace({"observation": VectorObservationSpace(2)}), None, DiscreteActionSpace(2), RewardSpace(1))


def _rows():
    """Episode 7 (3 rows) and episode 5 (2 rows) interleaved, then episode 3 (1 row)."""
    return [
        {"action": 0, "all_action_probabilities": "[0.5, 0.5]", "episode_id": 7, "reward": 1.0, "cumulative_rewards": 0,
         "state_feature_0": 1.0, "state_feature_1": 2.0},
        {"action": 1, "all_action_probabilities": "[0.25, 0.75]", "episode_id": 5, "reward": 2.0, "cumulative_rewards": 0,
         "state_feature_0": 5.0, "state_feature_1": 5.0},
        {"action": 1, "all_action_probabilities": "[0.5, 0.5]", "episode_id": 7, "reward": 1.5, "cumulative_rewards": 0,
         "state_feature_0": 3.0, "state_feature_1": 4.0},
        {"action": 0, "all_action_probabilities": "[0.5, 0.5]", "episode_id": 5, "reward": 0.5, "cumulative_rewards": 2.5,
         "state_feature_0": 6.0, "state_feature_1": 6.0},
        {"action": 0, "all_action_probabilities": "[0.5, 0.5]", "episode_id": 7, "reward": 9.0, "cumulative_rewards": 11.5,
         "state_feature_0": 5.0, "state_feature_1": 6.0},
        {"action": 1, "all_action_probabilities": "[0.5, 0.5]", "episode_id": 3, "reward": 1.0, "cumulative_rewards": 1.0,
         "state_feature_0": 9.0, "state_feature_1": 9.0},
    ]


def _write(tmp_path, rows, name="data.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def _load(path, spaces=SPACES):
    return load_csv_dataset(CsvDataset(path), path, spaces)


def test_transitions_pair_consecutive_rows_of_each_episode(tmp_path):
    with pytest.warns(UserWarning, match="skipped 1 episode"):
        data = _load(_write(tmp_path, _rows()))
    # episode 7 (first seen) -> transitions (1,2)->(3,4) and (3,4)->(5,6); episode 5 -> (5,5)->(6,6);
    # the last row of an episode only gives the final next state (its reward 9.0 / 0.5 is dropped)
    np.testing.assert_array_equal(data.obs, [[1, 2], [3, 4], [5, 5]])
    np.testing.assert_array_equal(data.next_obs, [[3, 4], [5, 6], [6, 6]])
    np.testing.assert_array_equal(data.action, [0, 1, 1])
    np.testing.assert_array_equal(data.reward, [1.0, 1.5, 2.0])
    np.testing.assert_array_equal(data.terminated, [False, True, True])
    np.testing.assert_array_equal(data.episode_id, [0, 0, 1])
    np.testing.assert_allclose(data.behaviour_probs, [[0.5, 0.5], [0.5, 0.5], [0.25, 0.75]])


def test_coach_tutorial_schema_and_non_episodic_data(tmp_path):
    rows = [dict(r, episode_name=f"ep{r['episode_id']}", transition_number=i) for i, r in enumerate(_rows()[:5])]
    for row in rows:
        del row["cumulative_rewards"]
    path = _write(tmp_path, rows)
    data = load_csv_dataset(CsvDataset(path, is_episodic=False), path, SPACES)
    assert len(data) == 3 and not data.terminated.any()


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns=["reward"]), r"has no column\(s\) 'reward'"),
    (lambda f: f.drop(columns=["state_feature_1"]), r"has 1 state_feature columns; the spaces definition .* has 2"),
    (lambda f: f.assign(state_feature_2=0.0), r"has 3 state_feature columns"),
    (lambda f: f.assign(all_action_probabilities=["[0.5, 0.5]"] * 3 + ["[0.5; 0.5]"] + ["[0.5, 0.5]"] * 2),
     r"line 5, column 'all_action_probabilities': '\[0.5; 0.5\]' is not a list of probabilities"),
    (lambda f: f.assign(all_action_probabilities=["[0.5, 0.5]"] * 2 + ["[0.5, 0.3]"] + ["[0.5, 0.5]"] * 3),
     r"line 4, column 'all_action_probabilities': the probabilities \[0.5, 0.3\] sum to 0.8, not 1"),
    (lambda f: f.assign(all_action_probabilities=["[1.0]"] + ["[0.5, 0.5]"] * 5),
     r"line 2, column 'all_action_probabilities': '\[1.0\]' has 1 value\(s\); the action space has 2 actions"),
    (lambda f: f.assign(all_action_probabilities=["[1.5, -0.5]"] + ["[0.5, 0.5]"] * 5), r"line 2.*negative"),
    (lambda f: f.assign(action=[0, 1, 2, 0, 0, 1]), r"line 4, column 'action': 2 is outside the action space \(actions 0..1\)"),
    (lambda f: f.assign(action=["0", "1", "1", "x", "0", "1"]), r"line 5, column 'action': 'x' is not an integer"),
    (lambda f: f.assign(action=[0, 1.5, 1, 0, 0, 1]), r"line 3, column 'action': '1.5' is not an integer"),
    (lambda f: f.assign(reward=["1", "2", "oops", "0", "9", "1"]), r"line 4, column 'reward': 'oops' is not a number"),
    (lambda f: f.assign(state_feature_0=["1", "5", "3", "6", "", "9"]), r"line 6, column 'state_feature_0': '' is not a number"),
    (lambda f: f.assign(all_action_probabilities=["[0.0, 1.0]"] + ["[0.5, 0.5]"] * 5),
     r"line 2: action 0 has behaviour probability 0"),
    (lambda f: f.iloc[:0], r"has a header but no rows"),
    (lambda f: f[f.episode_id == 3], r"has no episode of 2 or more rows"),
])
def test_malformed_datasets_name_file_line_and_column(tmp_path, change, message):
    path = tmp_path / "bad.csv"
    change(pd.DataFrame(_rows())).to_csv(path, index=False)
    with pytest.raises(DatasetError, match=message) as info:
        with pytest.warns(UserWarning) if "no episode" in message else contextlib.nullcontext():
            _load(str(path))
    assert str(path) in str(info.value)


def test_an_unreadable_file_is_named(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00garbage\x00\xff")
    with pytest.raises(DatasetError, match="binary.csv is not a readable CSV file"):
        _load(str(path))


def _episodes(count, length=5):
    rows = []
    for e in range(count):
        for t in range(length + e % 3):
            rows.append({"action": t % 2, "all_action_probabilities": "[0.5, 0.5]", "episode_id": e, "reward": 1.0,
                         "state_feature_0": float(e), "state_feature_1": float(t)})
    return rows


def test_split_is_by_episode_seeded_and_reproducible(tmp_path):
    data = _load(_write(tmp_path, _episodes(40)))
    first = split_episodes(data, 0.4, np.random.default_rng(3), "d")
    again = split_episodes(data, 0.4, np.random.default_rng(3), "d")
    other = split_episodes(data, 0.4, np.random.default_rng(4), "d")
    np.testing.assert_array_equal(first[0].obs, again[0].obs)
    assert not np.array_equal(first[0].obs[:, 0], other[0].obs[:, 0])
    train_episodes, eval_episodes = set(first[0].obs[:, 0]), set(first[1].obs[:, 0])  # feature 0 = episode
    assert not train_episodes & eval_episodes and len(train_episodes | eval_episodes) == 40
    assert 0.3 < len(first[0]) / len(data) < 0.5
    # each episode's transitions stay contiguous and in time order
    for part in first:
        assert (np.diff(part.episode_id) >= 0).all()
        same = part.episode_id[1:] == part.episode_id[:-1]
        assert (part.obs[1:, 1][same] == part.obs[:-1, 1][same] + 1).all()


def test_split_errors(tmp_path):
    data = _load(_write(tmp_path, _episodes(3)))
    with pytest.raises(ParameterValueError, match="train_to_eval_ratio = 0.99 leaves no evaluation episodes in d"):
        split_episodes(data, 0.99, np.random.default_rng(0), "d")
    with pytest.raises(ParameterValueError, match="strictly between 0 and 1"):
        split_episodes(data, 1.0, np.random.default_rng(0), "d")


def test_relative_dataset_paths_resolve_in_the_current_directory_then_beside_the_preset(tmp_path):
    preset_dir = tmp_path / "presets"
    preset_dir.mkdir()
    (preset_dir / "data.csv").write_text("x")
    assert resolve_dataset_path("data.csv", preset_dir) == str(preset_dir / "data.csv")
    (tmp_path / "data.csv").write_text("x")  # the tests run in tmp_path
    assert resolve_dataset_path("data.csv", preset_dir) == str(tmp_path / "data.csv")
    with pytest.raises(DatasetError, match=r"Dataset 'missing.csv' was not found \(looked for .*missing.csv.*rlframe-collect"):
        resolve_dataset_path("missing.csv", preset_dir)


def test_pickled_replay_buffers_are_refused():
    with pytest.raises(ParameterValueError, match="does not load pickled replay buffers"):
        PickledReplayBuffer("episodes.p")


def test_transition_log_keeps_finished_episodes_with_their_true_end():
    from rlframe.memories.dataset import TransitionLog

    log = TransitionLog()
    probs = np.array([[0.5, 0.5], [0.9, 0.1]])
    step = dict(obs=np.zeros((2, 2)), action=np.array([0, 1]), reward=np.ones(2), next_obs=np.ones((2, 2)))
    log(np.array([0, 1]), **step, terminated=np.array([False, False]), truncated=np.array([False, True]), probs=probs)
    log(np.array([0, 1]), **step, terminated=np.array([True, False]), truncated=np.array([False, False]), probs=probs)
    data = log.dataset()  # copy 1's second episode is still running: left out
    assert log.num_episodes == 2 and len(data) == 3
    np.testing.assert_array_equal(data.episode_id, [0, 1, 1])
    np.testing.assert_array_equal(data.terminated, [False, False, True])  # a time-limit cut is not terminal
    np.testing.assert_allclose(data.behaviour_probs, [[0.9, 0.1], [0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ParameterValueError, match="does not report its action probabilities"):
        log(np.array([0]), **{k: v[:1] for k, v in step.items()}, terminated=np.array([True]),
            truncated=np.array([False]), probs=None)


# ---- Coach's own datasets: each episode ends in a row holding only the final state -----------------------------
def _coach_rows():
    """Episodes 4 (2 steps) and 9 (1 step) interleaved, each closed by a state-only row as Coach writes them, then
    episode 2 (2 steps) written the notebook's way, with no closing row."""
    def step(episode, number, action, probs, reward, state):
        return {"action": action, "all_action_probabilities": probs, "episode_id": episode, "episode_name": f"ep{episode}",
                "reward": reward, "transition_number": number, "state_feature_0": state[0], "state_feature_1": state[1]}

    return [
        step(4, 0, 1, "[0.4, 0.6]", 1.0, (0.0, 0.5)),
        step(9, 0, 0, "[0.5, 0.5]", -1.0, (7.0, 7.5)),
        step(4, 1, 0, "[0.5, 0.5]", 2.0, (1.0, 1.5)),
        step(9, "", "", "", "", (8.0, 8.5)),
        step(4, "", "", "", "", (2.0, 2.5)),
        step(2, 0, 1, "[0.5, 0.5]", 3.0, (4.0, 4.5)),
        step(2, 1, 0, "[0.5, 0.5]", 4.0, (5.0, 5.5)),
    ]


def _coach_reading(rows, is_episodic):
    """Coach's reading, written out row by row: rows grouped by episode in order of first appearance; row t gives the
    state, action and reward, row t + 1 the next state; an episode's last row (a state-only row) gives only that next
    state; the last transition of an episode is terminal when the data is episodic."""
    episodes = {}
    for row in rows:
        episodes.setdefault(row["episode_id"], []).append(row)
    out = []
    for number, episode in enumerate(episodes.values()):
        for t in range(len(episode) - 1):
            row, following = episode[t], episode[t + 1]
            out.append(([row["state_feature_0"], row["state_feature_1"]], int(row["action"]), float(row["reward"]),
                        [following["state_feature_0"], following["state_feature_1"]],
                        is_episodic and t == len(episode) - 2, number))
    return out


@pytest.mark.parametrize("is_episodic", [True, False])
def test_state_only_rows_close_their_episodes_as_coach_reads_them(tmp_path, is_episodic):
    rows = _coach_rows()
    path = _write(tmp_path, rows)
    data = load_csv_dataset(CsvDataset(path, is_episodic=is_episodic), path, SPACES)
    expected = _coach_reading(rows, is_episodic)
    obs, action, reward, next_obs, terminated, episode = (np.array(column) for column in zip(*expected))
    np.testing.assert_array_equal(data.obs, obs)
    np.testing.assert_array_equal(data.action, action)
    np.testing.assert_array_equal(data.reward, reward)
    np.testing.assert_array_equal(data.next_obs, next_obs)
    np.testing.assert_array_equal(data.terminated, terminated)
    np.testing.assert_array_equal(data.episode_id, episode)
    # spelled out: episode 4's steps lead to (1, 1.5) and then to its state-only row's (2, 2.5), terminal when episodic
    np.testing.assert_array_equal(data.next_obs[:2], [[1.0, 1.5], [2.0, 2.5]])
    assert data.terminated[:2].tolist() == [False, is_episodic]
    np.testing.assert_allclose(data.behaviour_probs[:3], [[0.4, 0.6], [0.5, 0.5], [0.5, 0.5]])


def test_a_state_only_row_inside_an_episode_is_named(tmp_path):
    rows = _coach_rows()
    rows[2], rows[4] = rows[4], rows[2]  # episode 4's state-only row now comes before its second step
    path = _write(tmp_path, rows)
    with pytest.raises(DatasetError, match=r"data.csv, line 4: a row with empty action, all_action_probabilities and "
                                           r"reward \(only a state\) is followed by more rows of episode 4"):
        _load(path)


def test_a_row_missing_only_some_step_values_is_still_an_error(tmp_path):
    rows = _coach_rows()
    rows[4]["reward"] = 0.0  # a closing row with a reward but no action is not a state-only row
    with pytest.raises(DatasetError, match=r"line 6, column 'action': '' is not an integer"):
        _load(_write(tmp_path, rows))


def test_batch_rl_trains_on_a_dataset_with_state_only_rows(tmp_path, dataset):
    from rlframe.cli import train_main

    frame = pd.read_csv(dataset)
    closing = frame.groupby("episode_id", sort=False).tail(1).copy()  # each episode's final state, stood in for
    closing[["action", "all_action_probabilities", "reward"]] = ""
    coach_style = pd.concat([frame, closing]).sort_index(kind="stable")
    coach_style.to_csv(dataset, index=False)
    episodes = frame["episode_id"].nunique()
    spaces = SpacesDefinition(StateSpace({"observation": VectorObservationSpace(4)}), None, DiscreteActionSpace(2), RewardSpace(1))
    assert len(load_csv_dataset(CsvDataset(str(dataset)), str(dataset), spaces)) == len(frame)  # one more per episode
    assert len(frame) - episodes > 0
    code = train_main(["-p", "preset-cartpole-ddqnbcq", "--seed", "0", "-ep", str(tmp_path / "run"), "--progress", "lines",
                       "-cp", "reward_model_num_epochs=1", "--improve_steps", "1"])
    assert code == 0
    assert (tmp_path / "run" / "checkpoint").is_dir()
