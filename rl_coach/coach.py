"""Coach's ``rl_coach.coach`` module: the launcher users subclass (rlframe's implementation)."""
from rlframe.integrations.coach_launcher import CoachLauncher

__all__ = ["CoachLauncher"]
