"""``sagemaker_rl.coach_launcher``: the SageMaker Coach launchers users subclass (rlframe's implementation)."""
from rlframe.integrations.sagemaker.launcher import (
    CoachConfigurationList,
    SageMakerCoachLauncher,
    SageMakerCoachPresetLauncher,
)

__all__ = ["CoachConfigurationList", "SageMakerCoachLauncher", "SageMakerCoachPresetLauncher"]
