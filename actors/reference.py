"""Reference role: a frozen copy of the initial policy that returns reference logprobs."""
from __future__ import annotations

import time

import pyarrow as pa

from promedical.runtime.threads import apply_threads


class Reference:
    def __init__(self, *, model_path: str, temperature: float, micro_batch_size: int = 16,
                 threads: int = 0, dtype: str = "float32", device: str = "auto") -> None:
        import torch
        from transformers import AutoModelForCausalLM

        from promedical.runtime.devices import role_device

        apply_threads(threads)       # runtime/threads.py: from the placement, never Ray's 1-thread default
        # `auto`: the actor's GPU when it sees one, else the CPU. On the CPU the weights stay fp32 and
        # bfloat16 means bf16 autocast, as in the policy's forward pass; on a GPU bfloat16 also means
        # bf16 weights, as DeepSpeed's bf16 policy holds them (and as deploy/memory_plan.py budgets them)
        self.device = role_device() if device == "auto" else torch.device(device)
        self.autocast = dtype == "bfloat16"
        weights = torch.bfloat16 if self.autocast and self.device.type == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=weights).to(self.device)
        self.model.eval().requires_grad_(False)
        self.temperature = temperature
        self.micro_batch_size = micro_batch_size

    def logprobs(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """REFERENCE_FIELDS for every row: `ref_logprobs` (T,) per row and the call's wall time."""
        import torch
        from promedical.actors.logprobs import (forward_logprobs, make_group_micro_batch,
                                                plan_group_micro_batches, unpad)
        from promedical.runtime.devices import autocast
        from promedical.storage.schema import REFERENCE_FIELDS, columns_batch

        start = time.perf_counter()
        prompts = batch.column("prompt_ids").to_pylist()
        responses = batch.column("response_ids").to_pylist()
        lengths = [len(r) for r in responses]
        group_ids = batch.column("group_id").to_pylist()
        result: dict[int, list[float]] = {}
        with torch.no_grad():
            for rows in plan_group_micro_batches(group_ids, list(range(batch.num_rows)), self.micro_batch_size):
                mb = make_group_micro_batch(prompts, responses, rows)
                with autocast(self.device, self.autocast):
                    values = forward_logprobs(self.model, mb, self.temperature)
                result.update(unpad(values, mb, lengths))
        elapsed = time.perf_counter() - start
        return columns_batch(REFERENCE_FIELDS, {"ref_logprobs": [result[i] for i in range(batch.num_rows)],
                                                "reference_seconds": [elapsed] * batch.num_rows})
