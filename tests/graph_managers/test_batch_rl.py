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

pytestmark = pytest.mark.integration

CSV = csv_file_name("batch_rl_graph")



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
    out = capsys.readouterr().out
    assert "## agent: Finished evaluation phase." in out
    evaluation = pd.read_csv(tmp_path / "eval" / CSV)  # one row per evaluation episode
    assert len(evaluation) >= 1 and evaluation["Evaluation Reward"].notna().all()
    # an evaluate-only run counts its own steps (it said Steps=0 when the agent had never acted in an environment)
    steps = [int(line.split("Steps=")[1].split(",")[0]) for line in out.splitlines() if line.startswith("Testing>")]
    assert steps[0] >= evaluation["Episode Length"].iloc[0] and steps == sorted(steps) and steps[-1] >= 300
    assert evaluation["Total steps"].tolist() == steps


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


GENERATING_PRESET = """
from rl_coach.agents.ddqn_agent import DDQNAgentParameters
from rl_coach.agents.dqn_agent import DQNAgentParameters
from rl_coach.core_types import EnvironmentEpisodes, EnvironmentSteps, TrainingSteps
from rl_coach.environments.gym_environment import GymVectorEnvironment
from rl_coach.graph_managers.batch_rl_graph_manager import BatchRLGraphManager
from rl_coach.graph_managers.graph_manager import ScheduleParameters
from rl_coach.memories.episodic import EpisodicExperienceReplayParameters
from rl_coach.schedules import LinearSchedule

schedule_params = ScheduleParameters()
schedule_params.improve_steps = TrainingSteps(2)
schedule_params.steps_between_evaluation_periods = TrainingSteps(1)
schedule_params.evaluation_steps = EnvironmentEpisodes(2)
schedule_params.heatup_steps = EnvironmentSteps(600)
agent_params = DDQNAgentParameters()
agent_params.network_wrappers['main'].batch_size = 64
agent_params.memory = EpisodicExperienceReplayParameters()
agent_params.exploration.epsilon_schedule = LinearSchedule(0, 0, 1)
agent_params.exploration.evaluation_epsilon = 0
generator, generator_schedule = None, None
{generator}
graph_manager = BatchRLGraphManager(agent_params=agent_params, env_params=GymVectorEnvironment(level='CartPole-v0'),
                                    schedule_params=schedule_params, reward_model_num_epochs=1, train_to_eval_ratio=0.5,
                                    experience_generating_agent_params=generator,
                                    experience_generating_schedule_params=generator_schedule)
"""


def test_random_heatup_generates_the_dataset_and_a_resumed_run_reuses_it(write_preset, tmp_path, capsys):
    from rlframe.memories.dataset import load_dataset

    write_preset("heatup_batch", text=GENERATING_PRESET.format(generator=""))
    assert train_main(["-p", "heatup_batch", "--seed", "0", "-ep", str(tmp_path / "run"), "--progress", "lines"]) == 0
    assert "by uniformly random actions" in capsys.readouterr().out
    data = load_dataset(str(tmp_path / "run" / "generated_dataset.npz"))
    assert len(data) >= 600 and np.all(data.behaviour_probs == 0.5)
    assert data.terminated.sum() == data.num_episodes  # CartPole-v0 random episodes end by falling
    frame = pd.read_csv(tmp_path / "run" / CSV)
    assert frame["Epoch"].tolist() == [1, 2] and frame["Evaluation Reward"].notna().all()  # no heatup episode rows
    assert train_main(["-p", "heatup_batch", "--seed", "0", "-crd", str(tmp_path / "run" / "checkpoint"),
                       "--improve_steps", "3", "--progress", "lines"]) == 0
    out = capsys.readouterr().out
    assert "Dataset> generated" not in out and "generated_dataset.npz: " in out
    assert pd.read_csv(tmp_path / "run" / CSV)["Epoch"].tolist() == [1, 2, 3]


def test_an_experience_generating_agent_logs_its_epsilon_greedy_probabilities(write_preset, tmp_path):
    from rlframe.memories.dataset import load_dataset

    generator = """
generator = DQNAgentParameters()
generator.algorithm.num_consecutive_playing_steps = EnvironmentSteps(1)
generator.exploration.epsilon_schedule = LinearSchedule(1.0, 0.1, 400)
generator_schedule = ScheduleParameters()
generator_schedule.heatup_steps = EnvironmentSteps(100)
generator_schedule.improve_steps = TrainingSteps(400)
generator_schedule.steps_between_evaluation_periods = EnvironmentEpisodes(100)
generator_schedule.evaluation_steps = EnvironmentEpisodes(1)
"""
    write_preset("generated_batch", text=GENERATING_PRESET.format(generator=generator))
    assert train_main(["-p", "generated_batch", "--seed", "0", "-ep", str(tmp_path / "run"), "--progress", "lines"]) == 0
    probs = load_dataset(str(tmp_path / "run" / "generated_dataset.npz")).behaviour_probs
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    greedy = probs.max(axis=1)
    # heatup rows are uniform; training rows put 1 - eps + eps/2 on the greedy action, eps from 1 down to 0.1
    assert np.all((greedy >= 0.5) & (greedy <= 0.95 + 1e-9)) and (greedy > 0.6).any() and (greedy == 0.5).any()
    assert (tmp_path / "run" / "experience_generation" / csv_file_name("experience_generating_graph")).is_file()


def test_ddqn_bcq_with_the_imitation_model_filter(write_preset, tmp_path, dataset, capsys):
    from rlframe.shipped import shipped_dir

    text = (shipped_dir("presets") / "preset-cartpole-ddqnbcq.py").read_text()
    text = text.replace("import DDQNBCQAgentParameters, KNNParameters",
                        "import DDQNBCQAgentParameters, NNImitationModelParameters")
    text = text.replace("= KNNParameters()", "= NNImitationModelParameters(imitation_model_num_epochs=3)")
    write_preset("bcq_imitation", text=text)
    assert train_main(["-p", "bcq_imitation", "--seed", "0", "-ep", str(tmp_path / "run"), "--improve_steps", "2",
                       "-cp", "reward_model_num_epochs=1", "--progress", "lines"]) == 0
    filter_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Action filter> "))
    assert "kNN" not in filter_line
    dropped = float(filter_line.split("drops ")[1].split("%")[0])
    assert 0 <= dropped < 50  # uniform data: the imitation model gives ~0.5 to each action, above 0.35
    assert list((tmp_path / "run" / "checkpoint").glob("*.imitation_model.online"))


@pytest.mark.parametrize("change, message", [
    ("graph_manager.env_params = None", "needs spaces_definition=SpacesDefinition"),
    ("graph_manager.heatup_steps = None", "has an environment but no dataset: set heatup_steps"),
    ("graph_manager.experience_generating_agent_params = DQNAgentParameters()",
     "experience_generating_agent_params needs experience_generating_schedule_params"),
])
def test_batch_preset_without_a_data_source_is_a_one_line_error(write_preset, tmp_path, capsys, change, message):
    write_preset("no_data", text=GENERATING_PRESET.format(generator="") + change + "\n")
    assert train_main(["-p", "no_data", "-ep", str(tmp_path / "x"), "--progress", "lines"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
