"""Policy role: the GRPO learner, trained with DeepSpeed (ZeRO stage from config; gloo on CPU, NCCL on GPU).

DeepSpeed is imported here and nowhere else. The policy exports its weights with Hugging Face names
so a vLLM generator can load them in place.
"""
from __future__ import annotations

import time
from pathlib import Path
import os
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from promedical.actors.schedules import LrSchedule
from promedical.runtime.distributed import import_deepspeed, init_distributed
from promedical.runtime.memory import release_memory
from promedical.runtime.threads import apply_threads
from promedical.actors.interfaces import RankShare
from promedical.actors.lora import LoraSettings
from promedical.actors.sharding import rank_shares

if TYPE_CHECKING:
    from promedical.actors.losses import LossSettings


class Policy:
    def __init__(self, *, model_path: str, seed: int, lr: float, weight_decay: float, max_grad_norm: float,
                 zero_stage: int, backend: str, train_dtype: str, temperature: float, loss: LossSettings,
                 mini_batches: int, micro_batch_size: int, prompts_per_step: int, group_size: int, threads: int = 0,
                 schedule: LrSchedule = LrSchedule(), lora: LoraSettings = LoraSettings(),
                 export_dtype: str = "float32", rank: int = 0, world_size: int = 1,
                 master_addr: str = "", master_port: int = 0, loss_inputs_dir: str = "") -> None:
        import torch
        if world_size > 1:   # one rank of a data-parallel group: rendezvous at rank 0's address
            os.environ.update(RANK=str(rank), LOCAL_RANK="0", WORLD_SIZE=str(world_size),
                              MASTER_ADDR=master_addr, MASTER_PORT=str(master_port))
        deepspeed = import_deepspeed()
        from transformers import AutoModelForCausalLM

        apply_threads(threads)       # runtime/threads.py: from the placement, never Ray's 1-thread default
        torch.manual_seed(seed)
        init_distributed(backend)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        model.config.use_cache = False
        self.lora = lora
        if lora.on:   # adapters on the frozen base (actors/lora.py): only they train, the base is the reference
            from promedical.actors.lora import wrap
            model = wrap(model, lora)
        # a mini-batch is whole GRPO groups; each group is split into chunks of <= micro_batch_size rows
        # on each of `world_size` ranks: 1/world_size of a mini-batch's groups
        self.groups_per_mini = prompts_per_step // mini_batches // world_size
        self.micro_per_mini = self.groups_per_mini * -(-group_size // micro_batch_size)
        self.rank, self.world_size = rank, world_size
        ds_config: dict[str, Any] = {
            "train_micro_batch_size_per_gpu": micro_batch_size,
            "gradient_accumulation_steps": self.micro_per_mini,
            "gradient_clipping": max_grad_norm,
            "zero_optimization": {"stage": zero_stage},
            "bf16": {"enabled": train_dtype == "bfloat16"},
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                      weight_decay=weight_decay)
        self.engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
        self.hp = dict(temperature=temperature)
        self.loss, self.schedule, self.base_lr = loss, schedule, lr
        self.mini_batches = mini_batches
        self.micro_batch_size = micro_batch_size
        self.zero_stage = zero_stage
        self.model_path = model_path
        self.loss_inputs_dir = loss_inputs_dir   # run.loss_inputs_dir: each step's loss inputs saved there
        self.export_dtype = getattr(torch, export_dtype)   # dtype of the weights sent to generators
        self._version = 0

    def version(self) -> int:
        return self._version

    def _columns(self, batch: pa.RecordBatch) -> tuple[list, list, list[int], list[int]]:
        prompts = batch.column("prompt_ids").to_pylist()
        responses = batch.column("response_ids").to_pylist()
        return prompts, responses, [len(r) for r in responses], batch.column("group_id").to_pylist()

    def logprobs(self, batch: pa.RecordBatch) -> list[list[float]]:
        """Current policy's per-token response logprobs, without grad (for checks and the proximal policy)."""
        import torch
        from promedical.actors.logprobs import (forward_logprobs, make_group_micro_batch,
                                                plan_group_micro_batches, unpad)
        from promedical.runtime.devices import autocast

        prompts, responses, lengths, group_ids = self._columns(batch)
        out: dict[int, list[float]] = {}
        with torch.no_grad():
            for rows in plan_group_micro_batches(group_ids, list(range(batch.num_rows)), self.micro_batch_size):
                mb = make_group_micro_batch(prompts, responses, rows)
                with autocast(self._device(), self._bf16()):
                    out.update(unpad(forward_logprobs(self._forward_model(), mb, self.hp["temperature"],
                                                     self.zero_stage != 3), mb, lengths))
        return [out[i] for i in range(batch.num_rows)]

    def reference_logprobs(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """With LoRA, the reference role's REFERENCE_FIELDS: logprobs of the base model (adapters off).

        Under ZeRO-3 every rank must make the same forward calls (each gathers layers collectively), so
        deploy/ sends every rank the same rows there (actors/lora_reference.py).
        """
        from promedical.actors.lora import base_model
        from promedical.storage.schema import REFERENCE_FIELDS, columns_batch

        start = time.perf_counter()
        with base_model(self.engine.module):
            values = self.logprobs(batch)
        return columns_batch(REFERENCE_FIELDS, {"ref_logprobs": values,
                                                "reference_seconds": [time.perf_counter() - start] * batch.num_rows})

    def _forward_model(self):
        """What the forward pass calls: the engine itself under ZeRO-3 (actors/logprobs.py says why)."""
        return self.engine if self.zero_stage == 3 else self.engine.module

    def _bf16(self) -> bool:
        return bool(self.engine.bfloat16_enabled())

    def _device(self):
        """Where the weights live (DeepSpeed put them on its accelerator): every input is built there."""
        from promedical.runtime.devices import model_device
        return model_device(self.engine.module)

    def train_step(self, batch: pa.RecordBatch, share: RankShare | None = None) -> dict[str, float]:
        """One GRPO update on a scored batch (advantage, ref/behaviour logprobs); bumps the version.

        `share` says which rows of `batch` form each mini-batch and the whole mini-batch's token and
        row counts over all ranks; without it this rank trains alone on the whole batch. The returned
        loss statistics are this rank's part of the mini-batch means: summed over ranks they are the
        means of the whole batch. grad_norm is global.
        """
        from promedical.actors.loss_inputs import LossInputs
        from promedical.actors.losses import METRICS, keep_mask
        from promedical.actors.policy_rows import StepTally, step_rows

        start = time.perf_counter()
        lr = self._set_lr()
        keep = keep_mask(batch.column("finish_reason").to_pylist(), self.loss.mask_truncated)
        # proximal policy = the weights before this step's updates; with one update per step they are the
        # weights doing the forward pass, so logp.detach() is exact and saves a whole forward pass
        old = self.logprobs(batch) if self.mini_batches > 1 else None
        rows = step_rows(batch, keep, old, self._device())
        if share is None:   # this rank alone: its mini-batches from the tokens that stay in the loss
            share = rank_shares(rows.group_ids, rows.kept_tokens, mini_batches=self.mini_batches, ranks=1,
                                seed=self._version)[0][1]
        tally = StepTally(METRICS)
        inputs = LossInputs() if self.loss_inputs_dir else None
        self.engine.train()
        for m, mini in enumerate(share.minis):
            self._train_mini_batch(rows, m, list(mini), share, tally, inputs)
        if inputs is not None:
            inputs.write(self.loss_inputs_dir, self._version, self.rank)
        self._version += 1
        release_memory()
        out = tally.metrics(self.mini_batches, rows)
        out["lr"] = lr
        out["train_seconds"] = time.perf_counter() - start
        return out

    def _train_mini_batch(self, rows, m: int, mini: list[int], share: RankShare, tally, inputs) -> None:
        """Mini-batch `m`: exactly micro_per_mini micro-batches on every rank, so DeepSpeed steps the
        optimizer (and averages the ranks' gradients) once per mini-batch."""
        from promedical.actors.logprobs import plan_group_micro_batches

        groups = plan_group_micro_batches(rows.group_ids, mini, self.micro_batch_size)
        if len(groups) != self.micro_per_mini:
            raise ValueError(f"policy rank {self.rank}: {len(groups)} micro-batches in mini-batch {m}, "
                             f"expected {self.micro_per_mini}")
        for micro in groups:
            self._train_micro_batch(rows, m, micro, (max(1, share.mini_tokens[m]), share.mini_rows[m]), tally,
                                    inputs, last=micro is groups[-1])
        norm = self.engine.get_global_grad_norm()
        if norm is not None:
            tally.grad_norms.append(float(norm))

    def _train_micro_batch(self, rows, m: int, micro: list[int], mini_size: tuple[int, int], tally, inputs,
                           last: bool) -> None:
        """Forward, loss and backward of one micro-batch, weighted by its share of the mini-batch mean."""
        import torch
        from promedical.actors.logprobs import forward_logprobs_entropy, make_group_micro_batch
        from promedical.actors.losses import grpo_loss, micro_batch_share
        from promedical.runtime.devices import autocast

        device = self._device()
        mb = make_group_micro_batch(rows.prompts, rows.responses, micro).to(device)
        width = mb.mask.shape[1]
        with autocast(device, self._bf16()):
            logp, entropy = forward_logprobs_entropy(self._forward_model(), mb, self.hp["temperature"],
                                                     shared_prefix=self.zero_stage != 3)
        old_logp = rows.padded(rows.old, micro, width, device) if rows.old is not None else logp.detach()
        behaviour, ref = rows.padded(rows.behaviour, micro, width, device), rows.padded(rows.ref, micro, width, device)
        advantages = torch.tensor(rows.adv[micro], dtype=torch.float32, device=device)
        mask = mb.mask * (rows.keep[micro] * rows.usable[micro]).unsqueeze(-1)
        terms = grpo_loss(logp, old_logp, behaviour, ref, advantages, mask, settings=self.loss, entropy=entropy)
        if inputs is not None:
            inputs.add(group_ids=[rows.group_ids[i] for i in micro], row_index=list(micro), mini=m,
                       tokens=mb.mask, logp=logp, old_logp=old_logp, behaviour_logp=behaviour, ref_logp=ref,
                       advantages=torch.tensor(rows.adv[micro]), mask=mask)
        mini_tokens, mini_rows = mini_size
        part = micro_batch_share(self.loss.loss_agg, float(mask.sum()), mini_tokens, len(micro), mini_rows)
        # DeepSpeed divides by gradient_accumulation_steps and averages over ranks; undo both so each
        # micro-batch contributes its part of the whole mini-batch's mean
        finite = self._on_every_rank(bool(torch.isfinite(terms.loss)))
        if finite:
            self.engine.backward(terms.loss * part * self.micro_per_mini * self.world_size)
        else:
            self._backward_zero()
        if last and self.zero_stage == 0 and not self._bf16():
            tally.grad_norms.append(_grad_norm(self.engine.module))  # DeepSpeed keeps none here
        self.engine.step()
        tally.add(terms, part, finite)

    def _on_every_rank(self, flag: bool) -> bool:
        """True when `flag` holds on every rank: ranks skip a micro-batch together, since DeepSpeed's
        gradient reductions (and ZeRO-3's gathers) must line up across ranks."""
        if self.world_size == 1:
            return flag
        import torch
        import torch.distributed as dist

        value = torch.tensor([float(flag)], device=self.engine.device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item())

    def _backward_zero(self) -> None:
        """Stands in for the backward of a non-finite micro-batch loss: a zero joined to every trainable
        weight, so its gradients are exactly 0 (even where the forward pass made NaN) and DeepSpeed still
        counts the micro-step of its gradient accumulation. ZeRO-3 gathers the weights around it."""
        import deepspeed

        params = [p for p in self.engine.module.parameters() if p.requires_grad]
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=self.zero_stage == 3):
            self.engine.backward(sum(p.sum() for p in params) * 0.0)

    def _set_lr(self) -> float:
        """Learning rate of this training step (algo.lr_schedule at the current version), set on the optimizer."""
        lr = self.base_lr * self.schedule.factor(self._version)
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def save(self, directory: str) -> None:
        save_checkpoint(self, directory)

    def restore(self, directory: str) -> int:
        return load_checkpoint(self, directory)

    def export_weights(self, dtype=None) -> list | None:
        """[(hf_name, cpu tensor)] of the current weights in `dtype` (default: the generators' dtype).

        Gathers ZeRO-3 partitions first, which every rank must join; only rank 0 returns the tensors
        (None elsewhere). Sending bf16 to a bf16 generator halves the sync's memory.
        """
        import deepspeed
        dtype = dtype or self.export_dtype
        if self.lora.on:
            return self._export_lora(dtype, merged=self.lora.merge_for_sync)
        module = self.engine.module
        params = list(module.parameters()) if self.zero_stage == 3 else []
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=bool(params)):
            if self.rank != 0:
                return None
            return [(k, v.detach().to("cpu", dtype).clone()) for k, v in module.state_dict().items()]


    def _export_lora(self, dtype, merged: bool):
        """The adapter (an actors.lora.AdapterPayload) or, `merged`, [(HF name, tensor)] of base + adapter.
        Under ZeRO-3 every rank joins the gather (of the adapters alone unless merged); rank 0 returns it."""
        import deepspeed
        from promedical.actors.lora import adapter_params, adapter_payload, merged_weights

        module = self.engine.module
        params = (list(module.parameters()) if merged else adapter_params(module)) if self.zero_stage == 3 else []
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=bool(params)):
            if self.rank != 0:
                return None
            return merged_weights(module, dtype) if merged else adapter_payload(module, dtype, self.model_path)


def save_checkpoint(policy: "Policy", directory: str) -> None:
    """HF weights + tokenizer in DIR/policy (loadable by transformers and vLLM), engine state in DIR/engine.

    Every rank calls it: each writes its own ZeRO partition of the engine state; rank 0 the HF weights
    (with LoRA: the adapter, see _save_lora). The engine state holds the adapters' optimizer state.
    """
    import torch

    out = Path(directory)
    if policy.lora.on:
        _save_lora(policy, out)
    else:
        _save_full(policy, out)
    policy.engine.save_checkpoint(str(out / "engine"), tag="state",
                                  client_state={"version": policy._version, "torch_rng": torch.get_rng_state()})


def _save_lora(policy: "Policy", out: Path) -> None:
    """DIR/policy: the adapter in PEFT format (PEFT and vLLM load it) + tokenizer; DIR/policy-merged: the
    merged HF model when model.lora.save_merged. Collective under ZeRO-3."""
    import torch
    from transformers import AutoTokenizer

    adapter = policy._export_lora(torch.float32, merged=False)
    merged = policy._export_lora(torch.float32, merged=True) if policy.lora.save_merged else None
    if adapter is None:
        return
    adapter.write(out / "policy")
    AutoTokenizer.from_pretrained(policy.model_path).save_pretrained(out / "policy")
    if merged is not None:
        policy.engine.module.get_base_model().save_pretrained(out / "policy-merged", state_dict=dict(merged),
                                                              safe_serialization=True)
        AutoTokenizer.from_pretrained(policy.model_path).save_pretrained(out / "policy-merged")


def _save_full(policy: "Policy", out: Path) -> None:
    import torch
    from transformers import AutoTokenizer

    weights = policy.export_weights(torch.float32)   # collective under ZeRO-3; None except on rank 0
    if weights is not None:
        policy.engine.module.save_pretrained(out / "policy", state_dict=dict(weights), safe_serialization=True)
        AutoTokenizer.from_pretrained(policy.model_path).save_pretrained(out / "policy")


def load_checkpoint(policy: "Policy", directory: str) -> int:
    """Restore weights, optimizer and RNG from `directory`; returns the restored policy version."""
    import torch

    _, client = policy.engine.load_checkpoint(str(Path(directory) / "engine"), tag="state",
                                              load_optimizer_states=True, load_lr_scheduler_states=True)
    if client is None:
        raise RuntimeError(f"no engine state in {directory}/engine")
    policy._version = int(client["version"])
    torch.set_rng_state(client["torch_rng"])
    return policy._version


def _grad_norm(module) -> float:
    import torch
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else 0.0

