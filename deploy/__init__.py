"""CLI, typed config and presets, placement planning, job submission and metric views."""
