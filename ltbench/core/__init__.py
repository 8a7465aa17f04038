"""The bottom layer: errors, registries, distributed helpers, atomic file writes, seeding.

Nothing here imports any other part of ltbench (enforced by import-linter, see pyproject.toml).
"""
