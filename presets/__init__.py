"""Presets shipped with rlframe (found by ``rlframe-train --preset NAME``)."""
