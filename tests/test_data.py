"""``VectoredGymEnvironment`` and ``rlframe-collect``: the batch-RL dataset CSV on real gymnasium environments.

The CSV must load in Coach's ``EpisodicExperienceReplay.load_csv`` (sagemaker-examples.md section 5.2): exact
header, contiguous episodes, the episode return on each episode's last row and the pre-step observation.
"""
from __future__ import annotations

import ast
import json
import os
import re
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from rlframe.data import VectoredGymEnvironment, collect_main
from rlframe.errors import EnvironmentLevelError, ParameterValueError

pytestmark = pytest.mark.unit

HEADER = ("action,all_action_probabilities,episode_id,reward,cumulative_rewards,"
          "state_feature_0,state_feature_1,state_feature_2,state_feature_3")
UNIFORM = [0.5, 0.5]


def collect(num_envs: int = 4, seed: int = 0, **kwargs: object) -> pd.DataFrame:
    with VectoredGymEnvironment("CartPole-v0", num_envs, seed) as envs:
        return envs.collect_rollouts_with_given_action_probs(**kwargs)


def episodes(frame: pd.DataFrame) -> dict[int, pd.DataFrame]:
    return {int(k): g for k, g in frame.groupby("episode_id", sort=False)}


def check_episodes_contiguous(frame: pd.DataFrame) -> None:
    """Every episode id's rows form one block (load_csv splits episodes where the id changes)."""
    ids = frame["episode_id"].to_numpy()
    starts = ids[np.r_[True, ids[1:] != ids[:-1]]]
    assert len(starts) == len(set(starts.tolist()))


# ---- the DataFrame ----------------------------------------------------------------------------------------
def test_episodes_mode_dataframe_has_coach_layout() -> None:
    num_envs, num_episodes = 4, 3
    with VectoredGymEnvironment("CartPole-v0", num_envs, seed=7) as envs:
        frame = envs.collect_rollouts_with_given_action_probs(num_episodes=num_episodes, action_probs=[UNIFORM] * num_envs)
        returns = envs.last_episode_returns
    assert frame.to_csv(index=False).splitlines()[0] == HEADER
    assert {ast.literal_eval(text) == UNIFORM for text in frame["all_action_probabilities"]} == {True}
    assert set(frame["action"]) == {0, 1}
    check_episodes_contiguous(frame)
    by_episode = episodes(frame)
    assert list(by_episode) == [i + num_envs * k for i in range(num_envs) for k in range(num_episodes)]
    for rows in by_episode.values():
        assert len(rows) <= 200
        assert rows["cumulative_rewards"].iloc[-1] == pytest.approx(rows["reward"].sum())
        assert (rows["cumulative_rewards"].iloc[:-1] == 0.0).all()
    assert returns == pytest.approx([rows["reward"].sum() for rows in by_episode.values()])
    # Rows are grouped by environment: environment i's episodes come i-th, in order.
    env_of_row = frame["episode_id"].to_numpy() % num_envs
    assert (np.diff(env_of_row) >= 0).all()


def test_state_features_are_the_pre_step_observation() -> None:
    num_envs, seed = 3, 11
    frame = collect(num_envs, seed, num_steps=5, action_probs=UNIFORM)
    features = frame.filter(like="state_feature").to_numpy()
    for i in range(num_envs):
        expected, _ = gym.make("CartPole-v0").reset(seed=seed + i)
        np.testing.assert_array_equal(features[5 * i], np.asarray(expected, dtype=np.float64))
    # Replaying environment 0's actions from the same reset reproduces its next observations.
    env = gym.make("CartPole-v0")
    env.reset(seed=seed)
    for t in range(4):
        observation, *_ = env.step(int(frame["action"].iloc[t]))
        np.testing.assert_array_equal(features[t + 1], np.asarray(observation, dtype=np.float64))


def test_time_limit_ends_an_episode_at_200_steps() -> None:
    # A balancing controller, one step per call, keeps the pole up; CartPole-v0 must still stop at 200.
    rows = []
    with VectoredGymEnvironment("CartPole-v0", 1, seed=0) as envs:
        for _ in range(205):
            state = envs.get_environment_states()["environment_0"]
            push_right = state[2] + 0.5 * state[3] > 0
            rows.append(envs.collect_rollouts_with_given_action_probs(
                num_steps=1, action_probs=[0.0, 1.0] if push_right else [1.0, 0.0]))
    frame = pd.concat(rows, ignore_index=True)
    first = frame[frame["episode_id"] == 0]
    assert len(first) == 200
    assert first["cumulative_rewards"].iloc[-1] == 200.0
    assert (first["cumulative_rewards"].iloc[:-1] == 0.0).all()
    assert (frame["episode_id"].iloc[200:] == 1).all()


def test_steps_mode_continues_across_calls_without_repeating_rows() -> None:
    num_envs = 3
    with VectoredGymEnvironment("CartPole-v0", num_envs, seed=0) as envs:
        first = envs.collect_rollouts_with_given_action_probs(num_steps=30, action_probs=UNIFORM)
        second = envs.collect_rollouts_with_given_action_probs(num_steps=30, action_probs=UNIFORM)
    assert len(first) == len(second) == num_envs * 30
    for i in range(num_envs):
        before, after = first.iloc[30 * i:30 * (i + 1)], second.iloc[30 * i:30 * (i + 1)]
        # The running episode goes on with the same id; ids only grow.
        assert after["episode_id"].iloc[0] == before["episode_id"].iloc[-1]
        assert (np.diff(np.r_[before["episode_id"], after["episode_id"]]) % num_envs == 0).all()
        assert not after.filter(like="state_feature").iloc[0].equals(before.filter(like="state_feature").iloc[0])
    both = pd.concat([first, second], ignore_index=True).sort_values("episode_id", kind="stable")
    for rows in episodes(both).values():
        if (rows["cumulative_rewards"] != 0).any():  # finished: its total covers the rows of both calls
            assert rows["cumulative_rewards"].iloc[-1] == pytest.approx(rows["reward"].sum())


def test_same_seed_same_data_and_different_seed_different_data() -> None:
    kwargs = {"num_episodes": 2, "action_probs": UNIFORM}
    a, b, c = collect(3, 5, **kwargs), collect(3, 5, **kwargs), collect(3, 6, **kwargs)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_uniform_policy_average_return_is_that_of_random_cartpole() -> None:
    frame = collect(20, 0, num_episodes=3, action_probs=[UNIFORM] * 20)
    average = frame["cumulative_rewards"].sum() / 60
    assert 15 < average < 35


def test_reset_all_envs_starts_new_episode_ids() -> None:
    with VectoredGymEnvironment("CartPole-v0", 2, seed=0) as envs:
        before = envs.get_environment_states()
        envs.reset_all_envs()
        assert envs.get_environment_states() != before
        frame = envs.collect_rollouts_with_given_action_probs(num_steps=1, action_probs=UNIFORM)
        assert envs.get_environment_ids() == ["environment_0", "environment_1"]
    assert frame["episode_id"].tolist() == [2, 3]


def test_shipped_module_callable_level() -> None:
    with VectoredGymEnvironment("patient_envs:PatientMountainCar", 2, seed=0) as envs:
        frame = envs.collect_rollouts_with_given_action_probs(num_steps=10, action_probs=[1.0, 0.0, 0.0])
    assert (frame["action"] == 0).all()
    assert list(frame.columns[-2:]) == ["state_feature_0", "state_feature_1"]
    assert (frame["reward"] == -1.0).all()


def test_probabilities_must_sum_to_one_within_the_dataset_tolerance() -> None:
    # Off by more than the loader's tolerance: refused, not rescaled (0.2, 0.2 is a typo, not a uniform policy).
    with pytest.raises(ParameterValueError, match=r"environment 0 are \[0\.2, 0\.2\]: they sum to 0\.4, not 1"):
        collect(2, num_steps=3, action_probs=[0.2, 0.2])
    with pytest.raises(ParameterValueError, match=r"sum to 1\.002, not 1"):
        collect(1, num_steps=1, action_probs=[0.5, 0.502])
    # Within it (probabilities written with a few digits): accepted silently, the rounding divided away.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        frame = collect(1, num_steps=2, action_probs=[0.5, 0.5004])
    probs = ast.literal_eval(frame["all_action_probabilities"].iloc[0])
    assert sum(probs) == pytest.approx(1.0) and probs[0] == pytest.approx(0.5 / 1.0004)


# ---- batch-transform files --------------------------------------------------------------------------------
def write_lines(path: Path, records: list[object]) -> str:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("wrapped", [True, False], ids=["SageMakerOutput", "plain"])
def test_batch_transform_output_drives_sampling(tmp_path: Path, wrapped: bool) -> None:
    with VectoredGymEnvironment("CartPole-v0", 2, seed=0) as envs:
        states = envs.get_environment_states()
        records: list[object] = []
        for state, probs in zip(states.values(), [[1.0, 0.0], [0.0, 1.0]]):
            output = {"predictions": [probs]}
            records.append({"SageMakerInput": state, "SageMakerOutput": output} if wrapped else output)
        frame = envs.collect_rollouts_with_given_action_probs(num_steps=20, file_name=write_lines(tmp_path / "out.jsonl", records))
    assert frame["action"].tolist() == [0] * 20 + [1] * 20
    assert frame["all_action_probabilities"].tolist() == ["[1.0, 0.0]"] * 20 + ["[0.0, 1.0]"] * 20


def test_dump_environment_states_writes_the_batch_transform_input(tmp_path: Path) -> None:
    with VectoredGymEnvironment("CartPole-v0", 3, seed=4) as envs:
        envs.collect_rollouts_with_given_action_probs(num_steps=5, action_probs=UNIFORM)
        path = envs.dump_environment_states(str(tmp_path / "input"), "env_states.json")
        states = envs.get_environment_states()
    assert path == os.path.join(str(tmp_path / "input"), "env_states.json")
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == list(states.values())
    assert all(len(state) == 4 and all(isinstance(x, float) for x in state) for state in states.values())


# ---- errors -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"num_steps": 5}, r"exactly one of action_probs .* and file_name"),
    ({"num_steps": 5, "action_probs": UNIFORM, "file_name": "x.jsonl"}, r"exactly one of action_probs"),
    ({"action_probs": UNIFORM}, r"exactly one of num_steps .* and num_episodes"),
    ({"num_steps": 5, "num_episodes": 1, "action_probs": UNIFORM}, r"exactly one of num_steps"),
    ({"num_steps": 0, "action_probs": UNIFORM}, r"num_steps=0: give a positive integer"),
    ({"num_steps": 5, "action_probs": [UNIFORM] * 3}, r"3 lists but there are 2 environments"),
    ({"num_steps": 5, "action_probs": [UNIFORM, [0.2, 0.3, 0.5]]}, r"environment 1 .*3 values, but the action space has 2"),
    ({"num_steps": 5, "action_probs": [UNIFORM, [1.5, -0.5]]}, r"environment 1 .*-0\.5 is not a probability"),
    ({"num_steps": 5, "action_probs": [[float("nan"), 1.0], UNIFORM]}, r"environment 0 .*nan is not a probability"),
    ({"num_steps": 5, "action_probs": [UNIFORM, [0.0, 0.0]]}, r"environment 1 .*all zero"),
    ({"num_steps": 5, "action_probs": [UNIFORM, ["0.5", 0.5]]}, r"environment 1 .*'0\.5' is not a number"),
])
def test_bad_arguments_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ParameterValueError, match=match):
        collect(2, **kwargs)


@pytest.mark.parametrize("text, match", [
    ('{"predictions": [[0.5, 0.5]]}\n{"predictions": [[0.5, 0.5]]\n', r"'out.jsonl' line 2 is not valid JSON"),
    ('{"predictions": [[0.5, 0.5]]}\n\n{"SageMakerOutput": {"policy": [[0.5, 0.5]]}}\n',
     r"'out.jsonl' line 3 has no non-empty 'predictions'"),
    ('[0.5, 0.5]\n[0.5, 0.5]\n', r"'out.jsonl' line 1 has no non-empty 'predictions'"),
    ('{"predictions": [[0.5, 0.5]]}\n', r"'out.jsonl' has 1 predictions but there are 2 environments"),
    ('{"predictions": [[0.5, 0.5]]}\n{"predictions": [[0.5, -0.5]]}\n', r"'out.jsonl' line 2 .*-0\.5 is not a probability"),
    ('{"predictions": [[0.5, 0.5]]}\n{"predictions": [[1.0]]}\n', r"'out.jsonl' line 2 .*1 values, but the action space has 2"),
    ('{"predictions": [[0.5, 0.5]]}\n{"predictions": [[0.2, 0.2]]}\n', r"'out.jsonl' line 2 .*they sum to 0\.4, not 1"),
])
def test_bad_batch_transform_files_are_rejected(text: str, match: str) -> None:
    Path("out.jsonl").write_text(text, encoding="utf-8")
    with pytest.raises(ParameterValueError, match=match):
        collect(2, num_steps=1, file_name="out.jsonl")


def test_missing_batch_transform_file_is_rejected() -> None:
    with pytest.raises(ParameterValueError, match=r"Cannot read batch-transform output 'missing.jsonl'"):
        collect(2, num_steps=1, file_name="missing.jsonl")


@pytest.mark.parametrize("level, error, match", [
    ("Pendulum-v1", ParameterValueError, r"action space Box.*needs discrete actions"),
    ("patient_envs:PatientContinuousMountainCar", ParameterValueError, r"needs discrete actions"),
    ("CartPol-v0", EnvironmentLevelError, r"'CartPol-v0' is not a registered gymnasium id.*Did you mean"),
])
def test_unusable_levels_are_rejected(level: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        VectoredGymEnvironment(level, 2)


def test_bad_constructor_arguments_are_rejected() -> None:
    with pytest.raises(ParameterValueError, match=r"num_of_envs=0"):
        VectoredGymEnvironment("CartPole-v0", 0)
    with pytest.raises(ParameterValueError, match=r"seed=-1"):
        VectoredGymEnvironment("CartPole-v0", 1, seed=-1)


# ---- rlframe-collect --------------------------------------------------------------------------------------
def test_collect_command_writes_the_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    code = collect_main(["--level", "CartPole-v0", "--num-envs", "10", "--episodes", "2", "--seed", "3",
                         "-o", "data/cartpole_dataset.csv"])
    out, err = capsys.readouterr()
    assert code == 0, err
    frame = pd.read_csv("data/cartpole_dataset.csv")
    assert Path("data/cartpole_dataset.csv").read_text(encoding="utf-8").splitlines()[0] == HEADER
    assert frame["episode_id"].nunique() == 20
    average = frame["cumulative_rewards"].sum() / 20
    assert out == (f"wrote {len(frame):,} rows, 20 episodes (10 environments) to data/cartpole_dataset.csv; "
                   f"average return {average:.4g}\n")
    pd.testing.assert_frame_equal(frame, collect(10, 3, num_episodes=2, action_probs=UNIFORM), check_exact=False)


def test_collect_command_steps_and_probabilities(capsys: pytest.CaptureFixture[str]) -> None:
    assert collect_main(["--level", "CartPole-v0", "--num-envs", "2", "--steps", "50", "--action-probs", "1,0",
                         "-o", "steps.csv"]) == 0
    out = capsys.readouterr().out
    frame = pd.read_csv("steps.csv")
    assert len(frame) == 100 and (frame["action"] == 0).all()
    assert out.startswith("wrote 100 rows, ") and "unfinished" in out
    write_lines(Path("out.jsonl"), [{"predictions": [[0.0, 1.0]]}])
    assert collect_main(["--level", "CartPole-v0", "--episodes", "1", "--action-probs-file", "out.jsonl",
                         "-o", "file.csv"]) == 0
    assert (pd.read_csv("file.csv")["action"] == 1).all()
    assert ", 1 episode (1 environment) to file.csv;" in capsys.readouterr().out
    # Probabilities rounded to a few digits are within the dataset loader's tolerance: no message.
    assert collect_main(["--level", "CartPole-v0", "--steps", "5", "--action-probs", "0.3333,0.6667", "-o", "rounded.csv"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv, match", [
    (["--level", "CartPol-v0", "--episodes", "1", "-o", "x.csv"], r"'CartPol-v0' is not a registered gymnasium id"),
    (["--level", "CartPole-v0", "--episodes", "0", "-o", "x.csv"], r"--episodes 0: give a positive integer"),
    (["--level", "CartPole-v0", "--num-envs", "0", "--steps", "1", "-o", "x.csv"], r"--num-envs 0"),
    (["--level", "CartPole-v0", "--episodes", "1", "--action-probs", "a,b", "-o", "x.csv"], r"comma-separated numbers"),
    (["--level", "CartPole-v0", "--episodes", "1", "--action-probs", "1,0,0", "-o", "x.csv"],
     r"--action-probs are \[1\.0, 0\.0, 0\.0\]: 3 values"),
    (["--level", "CartPole-v0", "--episodes", "1", "--action-probs", "0.3,0.3", "-o", "x.csv"],
     r"--action-probs are \[0\.3, 0\.3\]: they sum to 0\.6, not 1 .*e\.g\. \[0\.5, 0\.5\]"),
    (["--level", "CartPole-v0", "--episodes", "1", "--action-probs", "2,2", "-o", "x.csv"], r"they sum to 4, not 1"),
    (["--level", "CartPole-v0", "--episodes", "1", "--action-probs=-0.5,1.5", "-o", "x.csv"],
     r"--action-probs are \[-0\.5, 1\.5\]: -0\.5 is not a probability"),
    (["--level", "CartPole-v0", "--episodes", "1", "--action-probs", "1", "-o", "x.csv"],
     r"--action-probs are \[1\.0\]: 1 values, but the action space has 2 actions"),
    (["--level", "Pendulum-v1", "--episodes", "1", "-o", "x.csv"], r"needs discrete actions"),
])
def test_collect_command_user_mistakes_exit_2(argv: list[str], match: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert collect_main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(match, lines[0]), lines[0]
    assert not Path("x.csv").exists()


def test_collect_command_rejects_a_file_row_that_does_not_sum_to_one(capsys: pytest.CaptureFixture[str]) -> None:
    write_lines(Path("out.jsonl"), [{"predictions": [[0.5, 0.5]]}, {"predictions": [[0.6, 0.6]]}])
    assert collect_main(["--level", "CartPole-v0", "--num-envs", "2", "--episodes", "1", "--action-probs-file",
                         "out.jsonl", "-o", "x.csv"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "'out.jsonl' line 2 are [0.6, 0.6]: they sum to 1.2, not 1" in err
    assert not Path("x.csv").exists()


def test_collect_help_describes_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        collect_main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--level", "--num-envs", "--episodes", "--steps", "--seed", "--action-probs", "--action-probs-file",
                   "--output"):
        assert option in text
