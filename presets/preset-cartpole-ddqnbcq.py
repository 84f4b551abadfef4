"""The SageMaker batch-RL CartPole notebook's training preset (rl_cartpole_batch_coach/src), values unchanged.

DDQN+BCQ (kNN action filter) trained for 50 epochs on a CSV dataset with no environment; 40% of the
transitions train, 60% are held out for off-policy evaluation. Collect the dataset first:

    rlframe-collect --level CartPole-v0 --num-envs 100 --episodes 5 -o cartpole_dataset.csv

then evaluate a checkpoint in the simulator with ``preset-cartpole-ddqnbcq-env``.
"""
from rl_coach.agents.ddqn_bcq_agent import DDQNBCQAgentParameters, KNNParameters
from rl_coach.base_parameters import PresetValidationParameters, VisualizationParameters
from rl_coach.core_types import CsvDataset, TrainingSteps
from rl_coach.graph_managers.batch_rl_graph_manager import BatchRLGraphManager
from rl_coach.graph_managers.graph_manager import ScheduleParameters
from rl_coach.memories.episodic import EpisodicExperienceReplayParameters
from rl_coach.schedules import LinearSchedule
from rl_coach.spaces import DiscreteActionSpace, RewardSpace, SpacesDefinition, StateSpace, VectorObservationSpace

HYPERPARAMETER_SHORTCUTS = "batch"
DATATSET_PATH = 'cartpole_dataset.csv'

####################
# Graph Scheduling #
####################
schedule_params = ScheduleParameters()
schedule_params.improve_steps = TrainingSteps(50)  # 50 epochs: one training step is one pass over the training split
schedule_params.steps_between_evaluation_periods = TrainingSteps(1)

#########
# Agent #
#########
agent_params = DDQNBCQAgentParameters()
agent_params.network_wrappers['main'].batch_size = 128
agent_params.network_wrappers['main'].learning_rate = 0.0001
agent_params.network_wrappers['main'].replace_mse_with_huber_loss = False
agent_params.algorithm.num_steps_between_copying_online_weights_to_target = TrainingSteps(50)
agent_params.algorithm.discount = 0.99
agent_params.algorithm.action_drop_method_parameters = KNNParameters()

agent_params.memory = EpisodicExperienceReplayParameters()
agent_params.memory.load_memory_from_file_path = CsvDataset(DATATSET_PATH, is_episodic=True)

agent_params.exploration.epsilon_schedule = LinearSchedule(initial_value=0, final_value=0, decay_steps=1)
agent_params.exploration.evaluation_epsilon = 0

spaces = SpacesDefinition(state=StateSpace({'observation': VectorObservationSpace(shape=4)}), goal=None,
                          action=DiscreteActionSpace(2), reward=RewardSpace(1))

########
# Test #
########
preset_validation_params = PresetValidationParameters()
preset_validation_params.test = True
preset_validation_params.min_reward_threshold = 150
preset_validation_params.max_episodes_to_achieve_reward = 250

vis_params = VisualizationParameters(dump_gifs=True)
graph_manager = BatchRLGraphManager(agent_params=agent_params, env_params=None, spaces_definition=spaces,
                                    schedule_params=schedule_params, vis_params=vis_params,
                                    reward_model_num_epochs=30, train_to_eval_ratio=0.4,
                                    preset_validation_params=preset_validation_params)
