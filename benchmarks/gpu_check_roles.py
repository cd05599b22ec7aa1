"""The role phases of benchmarks/gpu_check.py: the logprob path, Reference, RewardModel and a DeepSpeed Policy
(ZeRO-0/2/3, one rank), in-process on one device. Each phase returns a Phase; nothing here imports Ray or vLLM.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    tokens: int = 0                      # tokens through the model in the timed part (0: not a token phase)
    ok: bool = True
    note: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.tokens and self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Workload:
    """Synthetic GRPO step: `groups` prompts x `group_size` responses of random ids (fixed seed)."""

    groups: int = 4
    group_size: int = 4
    prompt_len: int = 32
    response_len: int = 48
    vocab: int = 500
    bf16: bool = False                   # policy trains and exports in bf16, the reference runs in bf16

    def tokens(self) -> int:
        return self.groups * (self.prompt_len + self.group_size * self.response_len)


def sync(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def scored_batch(w: Workload, seed: int = 0):
    """A batch as the trainer hands it to the policy: generation, reference and training columns."""
    from promedical.storage.schema import (GENERATION_FIELDS, REFERENCE_FIELDS, TRAINING_FIELDS, columns_batch,
                                           merge_columns)
    rng = np.random.default_rng(seed)
    rows = w.groups * w.group_size
    prompts = [rng.integers(10, w.vocab, size=w.prompt_len).tolist() for _ in range(w.groups)]
    lengths = [int(n) for n in rng.integers(w.response_len // 2, w.response_len + 1, size=rows)]
    cols: dict[str, list] = {f.name: [] for f in GENERATION_FIELDS}
    for row, n in enumerate(lengths):
        g = row // w.group_size
        values = dict(prompt_id=f"kqa-{g:04d}", group_id=g, sample_index=row % w.group_size, prompt_ids=prompts[g],
                      response_ids=rng.integers(10, w.vocab, size=n).tolist(), response_length=n,
                      response_text=f"I am a doctor: the answer {row} is the rest", finish_reason="stop",
                      behaviour_logprobs=(-rng.random(n) * 4).tolist(), policy_version=0, generate_seconds=0.0,
                      generator_replica=0)
        for key, v in values.items():
            cols[key].append(v)
    ref = {"ref_logprobs": [(-rng.random(n) * 4).tolist() for n in lengths], "reference_seconds": [0.0] * rows}
    training = {"advantage": rng.normal(size=rows).tolist(), "trained_version": [0] * rows, "step": [0] * rows,
                "loss_mask": [True] * rows}
    return merge_columns(columns_batch(GENERATION_FIELDS, cols), columns_batch(REFERENCE_FIELDS, ref),
                         columns_batch(TRAINING_FIELDS, training))


def _response_tokens(batch) -> int:
    return int(sum(len(r) for r in batch.column("response_ids").to_pylist()))


def logprob_phase(model_path: str, device, w: Workload) -> Phase:
    """Shared-prefix logprobs (CUDA tensors on a GPU) against the full-sequence forward, both fp32."""
    import torch
    from transformers import AutoModelForCausalLM

    from promedical.actors.logprobs import forward_logprobs, make_group_micro_batch
    from promedical.runtime.devices import autocast

    torch.backends.cuda.matmul.allow_tf32 = False
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).to(device).eval()
    batch = scored_batch(w)
    prompts, responses = batch.column("prompt_ids").to_pylist(), batch.column("response_ids").to_pylist()
    worst, seconds = 0.0, 0.0
    with torch.no_grad():
        for g in range(w.groups):
            rows = list(range(g * w.group_size, (g + 1) * w.group_size))
            mb = make_group_micro_batch(prompts, responses, rows)
            shared = forward_logprobs(model, mb, 1.0, shared_prefix=True)
            whole = forward_logprobs(model, mb, 1.0, shared_prefix=False)
            if shared.device.type != device.type:
                return Phase("logprobs", ok=False, note=f"logprobs on {shared.device}, model on {device}")
            worst = max(worst, float((shared - whole).abs().max()))
        sync(device)
        start = time.perf_counter()
        for g in range(w.groups):
            rows = list(range(g * w.group_size, (g + 1) * w.group_size))
            with autocast(device, device.type == "cuda"):
                forward_logprobs(model, make_group_micro_batch(prompts, responses, rows), 1.0)
        sync(device)
        seconds = time.perf_counter() - start
    ok = worst < 1e-3
    timed = "bf16 autocast" if device.type == "cuda" else "fp32"
    return Phase("logprobs", seconds, w.tokens(), ok, f"shared-prefix vs full-sequence fp32 max |diff| {worst:.2e} "
                 f"(tolerance 1e-3) on {shared.device}; timed pass in {timed}", {"max_abs_diff": worst})


def reference_phase(model_path: str, device, w: Workload) -> tuple[Phase, list[list[float]]]:
    import torch

    from promedical.actors.reference import Reference
    dtype = "bfloat16" if w.bf16 else "float32"
    ref = Reference(model_path=model_path, temperature=1.0, micro_batch_size=w.group_size, dtype=dtype,
                    device=str(device))
    param = next(ref.model.parameters())
    want = torch.bfloat16 if w.bf16 and device.type == "cuda" else torch.float32   # CPU: fp32 + autocast
    batch = scored_batch(w)
    ref.logprobs(batch)                                   # warm-up
    sync(device)
    start = time.perf_counter()
    out = ref.logprobs(batch).column("ref_logprobs").to_pylist()
    sync(device)
    seconds = time.perf_counter() - start
    finite = all(np.isfinite(v).all() for v in out)
    ok = param.device.type == device.type and param.dtype == want and finite
    del ref
    return Phase("reference", seconds, w.tokens(), ok, f"weights {param.dtype} on {param.device}, "
                 f"logprobs finite: {finite}"), out


def reward_checkpoint(model_path: str, out: Path) -> Path:
    """A decoder reward model in train-rm's format (random scalar head, criterion-last layout)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1).save_pretrained(out)
    AutoTokenizer.from_pretrained(model_path).save_pretrained(out)
    (out / "promedical_calibration.json").write_text(json.dumps({"layout": "prefix"}))
    return out


def reward_phase(model_path: str, device, w: Workload, work: Path) -> Phase:
    from promedical.actors.reward_model import RewardModel
    from promedical.reward.aggregate import RewardShape
    from promedical.reward.rubric_io import load_records

    records = {r.prompt_id: r for r in load_records(Path(__file__).resolve().parents[1] / "data" / "tiny.jsonl")}
    rm = RewardModel(grader="trained", model_path=str(reward_checkpoint(model_path, work / "reward")),
                     aggregator="promedical", shape=RewardShape(), batch_size=64, max_length=256, dtype="auto")
    param = next(rm.grader.model.parameters())
    batch = scored_batch(w)
    rm.score(batch, records)                              # warm-up
    sync(device)
    start = time.perf_counter()
    scores = rm.score(batch, records)
    sync(device)
    seconds = time.perf_counter() - start
    triples = sum(len(records[p].criteria) for p in batch.column("prompt_id").to_pylist())
    finite = bool(np.isfinite(scores.column("reward").to_numpy(zero_copy_only=False)).all())
    ok = param.device.type == device.type and finite
    return Phase("reward", seconds, 0, ok, f"trained decoder grader (prefix layout), weights {param.dtype} on "
                 f"{param.device}; {triples} triples, {triples / seconds:.1f} triples/s; rewards finite: {finite}",
                 {"triples": triples})


def policy_kwargs_for(model_path: str, device, w: Workload, zero_stage: int) -> dict[str, Any]:
    from promedical.deploy.build import policy_kwargs
    from promedical.deploy.config import load_config

    bf16 = "bfloat16" if w.bf16 else "float32"
    settings = [f"rollout.prompts_per_step={w.groups}", f"rollout.group_size={w.group_size}",
                f"algo.micro_batch_size={w.group_size}", "algo.mini_batches=1", f"trainer.zero_stage={zero_stage}",
                f"model.train_dtype={bf16}", f"generator.dtype={bf16}"]
    return policy_kwargs(load_config("tiny", settings), model_path)


def policy_phase(model_path: str, device, w: Workload, zero_stage: int, ref_logprobs=None):
    """A DeepSpeed Policy on one rank: logprobs at version 0 (against the reference's), two train steps
    (the second timed), and the weights moved. Returns (Phase, policy) - the caller drops the policy."""
    from promedical.actors.policy import Policy

    start = time.perf_counter()
    policy = Policy(**policy_kwargs_for(model_path, device, w, zero_stage))
    init_seconds = time.perf_counter() - start
    batch = scored_batch(w)
    note = []
    if ref_logprobs is not None:
        mine = policy.logprobs(batch)
        gap = max(float(np.max(np.abs(np.subtract(a, b)))) for a, b in zip(mine, ref_logprobs) if a)
        note.append(f"policy vs reference logprobs at version 0: max |diff| {gap:.3g}")
    before = _checksum(policy.export_weights())
    policy.train_step(batch)                               # warm-up step
    sync(device)
    start = time.perf_counter()
    stats = policy.train_step(scored_batch(w, seed=1))
    sync(device)
    seconds = time.perf_counter() - start
    after = _checksum(policy.export_weights())
    moved = before is None or after != before
    finite = all(np.isfinite(v) for v in stats.values())
    device_seen = str(policy._device())
    ok = moved and finite and policy._device().type == device.type
    note.append(f"engine start {init_seconds:.1f}s, weights on {device_seen}, moved: {moved}, loss {stats['loss']:.4f}, "
                f"grad_norm {stats['grad_norm']:.3g}")
    tokens = w.tokens()
    return Phase(f"policy-zero{zero_stage}", seconds, tokens, ok, "; ".join(note),
                 {"train_tokens": _response_tokens(batch)}), policy


def _checksum(weights) -> float | None:
    if weights is None:
        return None
    return float(sum(t.double().sum() for _, t in weights))
