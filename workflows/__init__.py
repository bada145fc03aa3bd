"""Temporal workflow code and the recipe model it interprets: deterministic, no I/O."""
