"""``sagemaker_rl.configuration_list``: hyperparameters stored by name and applied to parameter objects later."""
from rlframe.integrations.sagemaker.launcher import ConfigurationList

__all__ = ["ConfigurationList"]
