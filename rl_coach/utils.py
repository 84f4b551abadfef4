"""Coach's ``rl_coach.utils`` names that launchers use (rlframe's implementations)."""
from rlframe.integrations.coach_launcher import short_dynamic_import

__all__ = ["short_dynamic_import"]
