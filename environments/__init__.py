"""Example environments shipped with rlframe, usable as ``module:callable`` levels."""
