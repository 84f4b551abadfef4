"""Batch RL end to end on real CartPole data: the notebook's preset pair, OPE on every epoch row, checkpoints
that restore into the environment preset, resuming, and the mistakes a batch preset can make."""
import numpy as np
import pandas as pd
import pytest

from rlframe.agents.ddqn_bcq import knn_allowed
from rlframe.cli import train_main
from rlframe.data import VectoredGymEnvironment
from rlframe.graph_managers.batch_rl import OPE_COLUMNS
from rlframe.outputs.csv_logger import csv_file_name
from rlframe.outputs.screen import format_value

CSV = csv_file_name("batch_rl_graph")


@pytest.fixture
def dataset(tmp_path):
    """A uniform-random CartPole-v0 dataset of 20 environments x 5 episodes, in the notebook's format."""
    path = tmp_path / "cartpole_dataset.csv"
    with VectoredGymEnvironment("CartPole-v0", num_of_envs=20, seed=0) as envs:
        envs.collect_rollouts_with_given_action_probs(num_episodes=5, action_probs=[0.5, 0.5]).to_csv(path, index=False)
    return path


def _train(tmp_path, name, *extra):
    return train_main(["-p", "preset-cartpole-ddqnbcq", "--seed", "0", "-ep", str(tmp_path / name), "--progress", "lines",
                       "-cp", "reward_model_num_epochs=2", *extra])


def test_epochs_write_ope_on_their_own_rows_and_the_checkpoint_restores_into_the_env_preset(tmp_path, dataset, capsys):
    other = tmp_path / "elsewhere.csv"
    dataset.rename(other)  # --dataset replaces the preset's cartpole_dataset.csv
    assert _train(tmp_path, "run", "--improve_steps", "3", "--dataset", str(other)) == 0
    out = capsys.readouterr().out
    frame = pd.read_csv(tmp_path / "run" / CSV)
    assert frame.columns[0] == "Epoch" and frame["Epoch"].tolist() == [1, 2, 3]
    for column in OPE_COLUMNS.values():
        assert frame[column].notna().all(), column
    assert (frame["Training Iter"].diff().dropna() > 0).all() and frame["Loss/Mean"].notna().all()
    lines = [line for line in out.splitlines() if line.startswith("Off-Policy Evaluation> ")]
    assert [line.split(",")[0] for line in lines] == [f"Off-Policy Evaluation> Epoch={e}" for e in (1, 2, 3)]
    assert f"WIS={format_value(frame['Weighted Importance Sampling'].iloc[2])}," in lines[2]
    assert lines[2].endswith(f"Sequential-DR={format_value(frame['Sequential Doubly Robust'].iloc[2])}")
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoint").glob("*.ckpt.main_level.agent.main.online"))
    assert len(checkpoints) == 3 and "2_Step-3.ckpt" in checkpoints[-1]
    code = train_main(["-p", "preset-cartpole-ddqnbcq-env", "-crd", str(tmp_path / "run" / "checkpoint"), "--evaluate", "300",
                       "-ep", str(tmp_path / "eval"), "--progress", "lines"])
    assert code == 0
    assert "## agent: Finished evaluation phase." in capsys.readouterr().out


def test_a_resumed_run_continues_the_epochs_and_the_csv(tmp_path, dataset):
    assert _train(tmp_path, "run", "--improve_steps", "2") == 0
    assert train_main(["-p", "preset-cartpole-ddqnbcq", "--seed", "0", "-crd", str(tmp_path / "run" / "checkpoint"),
                       "--improve_steps", "4", "--progress", "lines"]) == 0
    frame = pd.read_csv(tmp_path / "run" / CSV)
    assert frame["Epoch"].tolist() == [1, 2, 3, 4]
    assert frame["Training Iter"].is_monotonic_increasing


def test_ddqn_bcq_learns_cartpole_from_random_data(tmp_path, capsys):
    """The notebook's flow at full size (100 x 5 uniform-random episodes, 50 epochs): the final checkpoint
    balances far longer than the data's ~22 steps (200 on seed 0; a state matching itself in the kNN filter
    or per-update target copies brought it to ~130)."""
    with VectoredGymEnvironment("CartPole-v0", num_of_envs=100, seed=0) as envs:
        envs.collect_rollouts_with_given_action_probs(num_episodes=5, action_probs=[0.5, 0.5]).to_csv(
            tmp_path / "cartpole_dataset.csv", index=False)
    assert train_main(["-p", "preset-cartpole-ddqnbcq", "--seed", "0", "-ep", str(tmp_path / "run"), "--progress", "lines"]) == 0
    capsys.readouterr()
    assert train_main(["-p", "preset-cartpole-ddqnbcq-env", "-crd", str(tmp_path / "run" / "checkpoint"), "--evaluate",
                       "-cp", "evaluation_steps=EnvironmentEpisodes(10)", "-ep", str(tmp_path / "eval"), "--progress", "lines"]) == 0
    rewards = [float(line.split("Total reward=")[1].split(",")[0]) for line in capsys.readouterr().out.splitlines()
               if line.startswith("Testing>")]
    assert len(rewards) == 10 and np.mean(rewards) >= 150, rewards


def test_knn_filter_drops_actions_far_from_the_data():
    # action 0 was taken at x = 0 and 1, action 1 at x = 10. A state is not its own neighbour, so the
    # distances of the training states to each index are: action 0 -> [1, 1, 9], action 1 -> [10, 9, none];
    # average = (1 + 1 + 9 + 10 + 9) / 3 transitions = 10
    features = np.array([[0.0], [1.0], [10.0]])
    action = np.array([0, 0, 1])
    allowed, average = knn_allowed(features, action, np.array([[0.5], [30.0], [1.0]]), 2, 1.0, 100)
    assert average == pytest.approx(10.0)
    # s' = 0.5: 0.5 and 9.5, both within 10; s' = 30: 29 and 20, both too far; s' = 1 (a dataset state):
    # its nearest other action-0 state is 0 at 1, action 1's is 10 at 9
    np.testing.assert_array_equal(allowed, [[True, True], [False, False], [True, True]])
    allowed, _ = knn_allowed(features, action, np.array([[0.5]]), 2, 0.5, 100)  # threshold 5
    np.testing.assert_array_equal(allowed, [[True, False]])


def test_bcq_refuses_online_training(write_preset, tmp_path):
    write_preset("bcq_online", text=(
        "from rl_coach.agents.ddqn_bcq_agent import DDQNBCQAgentParameters\n"
        "from rl_coach.core_types import EnvironmentSteps, TrainingSteps, EnvironmentEpisodes\n"
        "from rl_coach.environments.gym_environment import GymVectorEnvironment\n"
        "from rl_coach.graph_managers.basic_rl_graph_manager import BasicRLGraphManager\n"
        "from rl_coach.graph_managers.graph_manager import SimpleSchedule\n"
        "graph_manager = BasicRLGraphManager(agent_params=DDQNBCQAgentParameters(),"
        " env_params=GymVectorEnvironment(level='CartPole-v0'), schedule_params=SimpleSchedule())\n"
    ))
    assert train_main(["-p", "bcq_online", "-ep", str(tmp_path / "x"), "--progress", "lines"]) == 2


@pytest.mark.parametrize("extra, message", [
    ("-cp", "improve_steps=EnvironmentSteps(100)"),
    ("-cp", "train_to_eval_ratio=1.5"),
    ("--dataset", "missing.csv"),
])
def test_batch_preset_mistakes_are_one_line_errors(tmp_path, dataset, capsys, extra, message):
    assert train_main(["-p", "preset-cartpole-ddqnbcq", "-ep", str(tmp_path / "x"), extra, message, "--progress", "lines"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_validating_a_preset_without_environment_is_refused(capsys):
    from rlframe.cli import validate_main

    assert validate_main(["-p", "preset-cartpole-ddqnbcq"]) == 2
    assert "has no environment" in capsys.readouterr().err


def test_knn_measures_distances_in_the_reward_models_embedding_unless_every_reward_is_the_same(tmp_path, dataset, capsys):
    assert _train(tmp_path, "constant", "--improve_steps", "1") == 0
    assert "(kNN in raw states (every training reward is the same" in capsys.readouterr().out
    frame = pd.read_csv(dataset)
    frame["reward"] = np.random.default_rng(0).normal(size=len(frame))
    frame.to_csv(dataset, index=False)
    assert _train(tmp_path, "varying", "--improve_steps", "1") == 0
    assert "(kNN in the reward model's embedding)" in capsys.readouterr().out
