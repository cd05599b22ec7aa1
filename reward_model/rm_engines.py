"""Optimisation engines for reward-model training: plain torch (one process) or DeepSpeed ZeRO 0-3.

Both take a model, the learning rate and the number of steps (linear warm-up over the first tenth,
then linear decay), clip gradients at 1.0 and expose the same calls: backward, step, rank, world,
full_weights (a context in which every rank holds the whole model, as ZeRO-3 partitions it), barrier.
"""
from __future__ import annotations

import contextlib

import torch

WEIGHT_DECAY = 0.01
CLIP = 1.0


def _schedule(optimizer, steps: int):
    warmup = max(1, steps // 10)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / steps))


class LocalEngine:
    rank, world = 0, 1

    def __init__(self, model, lr: float, steps: int) -> None:
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optim = torch.optim.AdamW(self.params, lr=lr, weight_decay=WEIGHT_DECAY)
        self.sched = _schedule(self.optim, steps)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.params, CLIP)
        self.optim.step()
        self.sched.step()
        self.optim.zero_grad()

    def full_weights(self):
        return contextlib.nullcontext()

    def barrier(self) -> None:
        pass


class DeepSpeedEngine:
    """Data parallel over the launcher's ranks (one rank without a launcher); `batch_size` pairs per step
    in all, split evenly."""

    def __init__(self, model, lr: float, steps: int, *, stage: int, batch_size: int, bf16: bool) -> None:
        from promedical.runtime.distributed import init_distributed

        init_distributed()
        import deepspeed

        self.rank, self.world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        if batch_size % self.world:
            raise ValueError(f"batch_size {batch_size} is not divisible by the {self.world} ranks")
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                      weight_decay=WEIGHT_DECAY)
        config = {"train_micro_batch_size_per_gpu": batch_size // self.world, "gradient_accumulation_steps": 1,
                  "gradient_clipping": CLIP, "zero_optimization": {"stage": stage}, "bf16": {"enabled": bf16},
                  "steps_per_print": 10**9, "wall_clock_breakdown": False}
        self.engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer,
                                               lr_scheduler=_schedule(optimizer, steps), config=config)
        self.model = self.engine.module
        self.stage = stage

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)

    def step(self) -> None:
        self.engine.step()

    def full_weights(self):
        import deepspeed
        params = list(self.model.parameters()) if self.stage == 3 else []
        return deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=bool(params))

    def barrier(self) -> None:
        torch.distributed.barrier()


def make_engine(model, lr: float, steps: int, *, deepspeed_stage: int, batch_size: int, bf16: bool):
    if deepspeed_stage < 0:
        if bf16:
            raise ValueError("dtype bfloat16 trains through DeepSpeed; set a DeepSpeed stage (0-3)")
        return LocalEngine(model, lr, steps)
    return DeepSpeedEngine(model, lr, steps, stage=deepspeed_stage, batch_size=batch_size, bf16=bf16)
