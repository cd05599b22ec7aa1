"""Arrow wire formats, the rollout buffer and the run directory."""
