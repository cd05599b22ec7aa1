"""Policy role: the GRPO learner, trained with DeepSpeed (ZeRO stage from config; gloo on CPU, NCCL on GPU).

DeepSpeed is imported here and nowhere else. The policy exports its weights with Hugging Face names
so a vLLM generator can load them in place.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from promedical.runtime.distributed import init_distributed, use_cpu_accelerator_without_cuda
from promedical.runtime.memory import release_memory


class PolicyRole(Protocol):
    def train_step(self, batch: pa.RecordBatch) -> dict[str, float]: ...
    def export_weights(self) -> list: ...
    def version(self) -> int: ...
    def logprobs(self, batch: pa.RecordBatch) -> list[list[float]]: ...
    def save(self, directory: str) -> None: ...
    def restore(self, directory: str) -> int: ...


class Policy:
    def __init__(self, *, model_path: str, seed: int, lr: float, weight_decay: float, max_grad_norm: float,
                 zero_stage: int, backend: str, train_dtype: str, temperature: float, clip_eps: float,
                 kl_coef: float, kl_estimator: str, loss_agg: str, tis_cap: float, mini_batches: int,
                 micro_batch_size: int, prompts_per_step: int, group_size: int, threads: int = 0,
                 export_dtype: str = "float32") -> None:
        import torch
        use_cpu_accelerator_without_cuda()
        import deepspeed
        from transformers import AutoModelForCausalLM

        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        init_distributed(backend)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        model.config.use_cache = False
        # a mini-batch is whole GRPO groups; each group is split into chunks of <= micro_batch_size rows
        self.groups_per_mini = prompts_per_step // mini_batches
        self.micro_per_mini = self.groups_per_mini * -(-group_size // micro_batch_size)
        ds_config: dict[str, Any] = {
            "train_micro_batch_size_per_gpu": micro_batch_size,
            "gradient_accumulation_steps": self.micro_per_mini,
            "gradient_clipping": max_grad_norm,
            "zero_optimization": {"stage": zero_stage},
            "bf16": {"enabled": train_dtype == "bfloat16"},
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
        self.hp = dict(temperature=temperature, clip_eps=clip_eps, kl_coef=kl_coef, kl_estimator=kl_estimator,
                       loss_agg=loss_agg, tis_cap=tis_cap)
        self.mini_batches = mini_batches
        self.micro_batch_size = micro_batch_size
        self.zero_stage = zero_stage
        self.model_path = model_path
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

        prompts, responses, lengths, group_ids = self._columns(batch)
        out: dict[int, list[float]] = {}
        module = self.engine.module
        with torch.no_grad():
            for rows in plan_group_micro_batches(group_ids, list(range(batch.num_rows)), self.micro_batch_size):
                mb = make_group_micro_batch(prompts, responses, rows)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._bf16()):
                    out.update(unpad(forward_logprobs(module, mb, self.hp["temperature"]), mb, lengths))
        return [out[i] for i in range(batch.num_rows)]

    def _bf16(self) -> bool:
        return bool(self.engine.bfloat16_enabled())

    def train_step(self, batch: pa.RecordBatch) -> dict[str, float]:
        """One GRPO update on a scored batch (advantage, ref/behaviour logprobs); bumps the version."""
        import torch
        from promedical.actors.logprobs import forward_logprobs, make_group_micro_batch, plan_group_micro_batches
        from promedical.actors.losses import grpo_loss

        start = time.perf_counter()
        prompts, responses, lengths, group_ids = self._columns(batch)
        # proximal policy = the weights before this step's updates; with one update per step they are the
        # weights doing the forward pass, so logp.detach() is exact and saves a whole forward pass
        old = self.logprobs(batch) if self.mini_batches > 1 else None
        adv = batch.column("advantage").to_numpy(zero_copy_only=False)
        ref = batch.column("ref_logprobs").to_pylist()
        behaviour = batch.column("behaviour_logprobs").to_pylist()
        rng = np.random.default_rng(self._version)
        groups_in_order = list(dict.fromkeys(group_ids))
        order = [groups_in_order[i] for i in rng.permutation(len(groups_in_order))]
        stats: dict[str, list[float]] = {"loss": [], "policy_loss": [], "kl": [], "clip_fraction": []}
        grad_norms = []
        self.engine.train()
        for m in range(self.mini_batches):
            chosen = set(order[m * self.groups_per_mini:(m + 1) * self.groups_per_mini])
            mini = [i for i, g in enumerate(group_ids) if g in chosen]
            # exactly micro_per_mini micro-batches, so DeepSpeed steps the optimizer once per mini-batch
            groups = plan_group_micro_batches(group_ids, mini, self.micro_batch_size)
            mini_tokens = max(1, sum(lengths[i] for i in mini))
            for rows in groups:
                mb = make_group_micro_batch(prompts, responses, rows)
                pad = lambda seqs: _pad([seqs[i] for i in rows], mb.mask.shape[1])
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._bf16()):
                    logp = forward_logprobs(self.engine.module, mb, self.hp["temperature"])
                old_logp = pad(old) if old is not None else logp.detach()
                terms = grpo_loss(logp, old_logp, pad(behaviour), pad(ref),
                                  torch.tensor(adv[rows], dtype=torch.float32), mb.mask,
                                  clip_eps=self.hp["clip_eps"], kl_coef=self.hp["kl_coef"],
                                  tis_cap=self.hp["tis_cap"], kl_estimator=self.hp["kl_estimator"],
                                  aggregation=self.hp["loss_agg"])
                tokens = float(mb.mask.sum())
                share = tokens / mini_tokens if self.hp["loss_agg"] == "token_mean" else len(rows) / len(mini)
                # DeepSpeed divides by gradient_accumulation_steps; undo it so each micro-batch
                # contributes its share of the mini-batch mean.
                self.engine.backward(terms.loss * share * self.micro_per_mini)
                if rows is groups[-1] and self.zero_stage == 0 and not self._bf16():
                    grad_norms.append(_grad_norm(self.engine.module))  # DeepSpeed keeps none here
                self.engine.step()
                for key in stats:
                    stats[key].append(float(getattr(terms, key).detach()) * share)
            norm = self.engine.get_global_grad_norm()
            if norm is not None:
                grad_norms.append(float(norm))
        self._version += 1
        release_memory()
        out = {k: float(np.sum(v)) / self.mini_batches for k, v in stats.items()}
        out["grad_norm"] = float(np.mean(grad_norms)) if grad_norms else 0.0
        out["train_seconds"] = time.perf_counter() - start
        return out

    def save(self, directory: str) -> None:
        save_checkpoint(self, directory)

    def restore(self, directory: str) -> int:
        return load_checkpoint(self, directory)

    def export_weights(self, dtype=None) -> list:
        """[(hf_name, cpu tensor)] of the current weights in `dtype` (default: the generators' dtype).

        Gathers ZeRO-3 partitions first. Sending bf16 to a bf16 generator halves the sync's memory.
        """
        import deepspeed
        dtype = dtype or self.export_dtype
        module = self.engine.module
        params = list(module.parameters()) if self.zero_stage == 3 else []
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=bool(params)):
            return [(k, v.detach().to("cpu", dtype).clone()) for k, v in module.state_dict().items()]


def save_checkpoint(policy: "Policy", directory: str) -> None:
    """HF weights + tokenizer in DIR/policy (loadable by transformers and vLLM), engine state in DIR/engine."""
    import torch
    from transformers import AutoTokenizer

    out = Path(directory)
    state = dict(policy.export_weights(torch.float32))
    policy.engine.module.save_pretrained(out / "policy", state_dict=state, safe_serialization=True)
    AutoTokenizer.from_pretrained(policy.model_path).save_pretrained(out / "policy")
    policy.engine.save_checkpoint(str(out / "engine"), tag="state",
                                  client_state={"version": policy._version, "torch_rng": torch.get_rng_state()})


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


def _pad(seqs: list[list[float]], width: int):
    import torch
    out = torch.zeros(len(seqs), width)
    for j, s in enumerate(seqs):
        out[j, : len(s)] = torch.tensor(s[:width], dtype=torch.float32)
    return out


def _grad_norm(module) -> float:
    import torch
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else 0.0

