"""The SageMaker Mountain Car notebook's hyperparameters, run against its Clipped PPO preset."""
import pandas as pd
import pytest
import yaml

from rlframe.cli import train_main

pytestmark = pytest.mark.integration

CSV_NAME = "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"
NOTEBOOK = ["--discount", "0.995", "--gae_lambda", "0.997", "--evaluation_episodes", "3", "--improve_steps", "100000",
            "--training_freq_env_steps", "75000", "--training_learning_rate", "0.004", "--training_batch_size", "256",
            "--training_epochs", "15", "--save_model", "1"]


def test_notebook_hyperparameters_run_with_their_mapped_values(tmp_path, capsys):
    experiment = tmp_path / "exp"
    # Heatup is not a notebook hyperparameter; two episodes instead of ten keep the test short.
    assert train_main(["-p", "preset-mountain-car-continuous-clipped-ppo", "--seed", "0", "-ep", str(experiment),
                       "--num-envs", "4", "-cp", "heatup_steps=EnvironmentEpisodes(2)", *NOTEBOOK]) == 0
    out = capsys.readouterr().out
    params = yaml.safe_load((experiment / "parameters.yaml").read_text())
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

    # In effect: 15 epochs per update at learning rate 0.004, an update after 75,000 training steps,
    # evaluations of 3 episodes, and training stopping at 100,000 training steps.
    epochs = [line for line in out.splitlines() if line.startswith("Policy training>")]
    assert epochs and all("learning_rate=0.004" in line for line in epochs)
    assert {line.split("training epoch=")[1].split(",")[0] for line in epochs} == {str(i) for i in range(15)}
    frame = pd.read_csv(experiment / CSV_NAME)
    evaluations = frame.dropna(subset=["Evaluation Reward"])
    assert len(evaluations) == 1 + len(epochs) // 15 and len(epochs) // 15 >= 1
    assert (frame["Learning Rate/Mean"].dropna() == 0.004).all()
    model = experiment / "model"
    assert f"Model: {model} (save_model=1: model.onnx, policy-symbol.json, rlframe-model.json; checkpoint 0_Step-100000.ckpt)" in out
    assert (model / "model.onnx").is_file() and (model / "rlframe-model.json").is_file()
    assert "0_Step-100000.ckpt" in (experiment / "checkpoint" / ".coach_checkpoint").read_text()
