"""vLLM worker extension: loads policy weights in place inside each vLLM worker.

Named `load_policy_weights` because vLLM's own worker already has an `update_weights`.
Imported by vLLM inside its worker process by dotted name; it imports nothing heavy itself.
"""
from __future__ import annotations

from typing import Iterable

import torch


class WeightLoader:
    def load_policy_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Reload the model's weights from HF-named tensors; returns how many tensors were given."""
        items = list(named_tensors)
        self.reload_weights(weights_iterator=iter(items), is_checkpoint_format=True)
        return len(items)
