"""Optimizer benchmark: ours vs VROOM on the literature instances, and a city day."""
