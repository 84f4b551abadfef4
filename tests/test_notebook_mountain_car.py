"""The SageMaker Mountain Car notebook's hyperparameters, applied to its Clipped PPO preset.

The notebook's own values (100,000 steps, an update every 75,000) are checked where they land in the parameter
tree; the run that shows them in effect uses the same hyperparameters with a few thousand steps instead of
100,000, on gymnasium's 999-step Mountain Car (the same mapping code; seconds instead of the three minutes the
notebook's numbers take on 2 cores).
"""
import pandas as pd
import pytest
import yaml

from rlframe.cli import prepare, train_main

PRESET = "preset-mountain-car-continuous-clipped-ppo"
CSV_NAME = "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"


def notebook_hyperparameters(improve_steps: int = 100000, training_freq_env_steps: int = 75000) -> list[str]:
    """The notebook's hyperparameters as rlframe-train arguments (SageMaker passes them as ``--name value``)."""
    return ["--discount", "0.995", "--gae_lambda", "0.997", "--evaluation_episodes", "3",
            "--improve_steps", str(improve_steps), "--training_freq_env_steps", str(training_freq_env_steps),
            "--training_learning_rate", "0.004", "--training_batch_size", "256", "--training_epochs", "15",
            "--save_model", "1"]


@pytest.mark.unit
def test_notebook_hyperparameters_land_on_their_mapped_parameters(tmp_path):
    graph_manager, _, _ = prepare(["-p", PRESET, "--seed", "0", "-ep", str(tmp_path / "exp"),
                                   *notebook_hyperparameters()])
    graph_manager.dump_parameters(str(tmp_path / "parameters.yaml"))
    params = yaml.safe_load((tmp_path / "parameters.yaml").read_text())
    algorithm = params["agent_params"]["algorithm"]
    assert algorithm["discount"] == 0.995 and algorithm["gae_lambda"] == 0.997
    assert algorithm["optimization_epochs"] == 15
    assert algorithm["num_consecutive_playing_steps"] == "EnvironmentSteps(75000)"
    assert algorithm["num_steps_between_copying_online_weights_to_target"] == "EnvironmentSteps(75000)"
    assert params["steps_between_evaluation_periods"] == "EnvironmentSteps(75000)"
    assert params["improve_steps"] == "EnvironmentSteps(100000)"
    assert params["evaluation_steps"] == "EnvironmentEpisodes(3)"
    assert params["agent_params"]["network_wrappers"]["main"]["batch_size"] == 256
    assert params["hyperparameters"]["recorded"] == {"save_model": 1}


@pytest.mark.integration
def test_notebook_hyperparameters_take_effect_in_a_run(tmp_path, capsys):
    experiment = tmp_path / "exp"
    # Heatup is not a notebook hyperparameter; one episode keeps the test short. Gymnasium's Mountain Car (999-step
    # episodes) stands in for the preset's 10,000-step Patient one: Clipped PPO acts for full episodes, which would
    # stretch each rollout and evaluation to 10,000 steps.
    assert train_main(["-p", PRESET, "--seed", "0", "-ep", str(experiment), "--num-envs", "4",
                       "-lvl", "MountainCarContinuous-v0", "-cp", "heatup_steps=EnvironmentEpisodes(1)",
                       *notebook_hyperparameters(improve_steps=6000, training_freq_env_steps=3000)]) == 0
    out = capsys.readouterr().out
    params = yaml.safe_load((experiment / "parameters.yaml").read_text())
    assert params["improve_steps"] == "EnvironmentSteps(6000)"
    assert params["agent_params"]["algorithm"]["num_consecutive_playing_steps"] == "EnvironmentSteps(3000)"

    # In effect: 15 epochs per update at learning rate 0.004, an update after 3,000 training steps (rounded up to
    # whole episodes), evaluations of 3 episodes, and training stopping at 6,000 steps.
    epochs = [line for line in out.splitlines() if line.startswith("Policy training>")]
    assert epochs and all("learning_rate=0.004" in line for line in epochs)
    assert {line.split("training epoch=")[1].split(",")[0] for line in epochs} == {str(i) for i in range(15)}
    frame = pd.read_csv(experiment / CSV_NAME)
    evaluations = frame.dropna(subset=["Evaluation Reward"])
    assert len(evaluations) == 1 + len(epochs) // 15 and len(epochs) // 15 >= 1
    assert (frame["Learning Rate/Mean"].dropna() == 0.004).all()
    model = experiment / "model"
    assert f"Model: {model} (save_model=1: model.onnx, policy-symbol.json, rlframe-model.json; checkpoint 0_Step-6000.ckpt)" in out
    assert (model / "model.onnx").is_file() and (model / "rlframe-model.json").is_file()
    assert "0_Step-6000.ckpt" in (experiment / "checkpoint" / ".coach_checkpoint").read_text()
