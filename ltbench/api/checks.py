"""Checking a method's own option values and wording its one-line errors: numbers that are not
booleans, and an exception's first line."""
from ltbench.core.errors import first_line_of
from ltbench.core.values import is_real, is_whole

__all__ = ["is_real", "is_whole", "first_line_of"]
