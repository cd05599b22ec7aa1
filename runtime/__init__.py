"""Process-level helpers shared by the roles: torch.distributed start, memory release, model cache."""
