"""Does a placement plan fit in GPU memory? Which GPU each replica lands on, its estimate, the per-GPU sum.

The numbers come from deploy/memory_plan.py; here they meet the config (model shapes, ZeRO stage, dtypes,
vLLM settings) and the plan (which slots share which GPU). A refusal is one UserError line naming the GPU,
what is on it, the numbers and the fix.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promedical.deploy.memory_plan import (
    GIB, KNOWN_SHAPES, Estimate, ModelShape, decoder_params, generator_replica, inference_replica,
    kv_cache_needed, lora_params, lora_policy_rank, policy_rank, sequences_per_replica)
from promedical.deploy.placement import Node, Plan
from promedical.errors import UserError

DEFAULT_GPU_MEMORY_GIB = 80.0   # an 80-GB-class GPU (A100/H100 80GB); `plan --gpu-memory-gib` overrides


# ----------------------------------------------------------------------------- model shapes


def _safetensors_params(directory: Path) -> int:
    """Parameter count from the headers of the *.safetensors files (8-byte length, then JSON)."""
    total = 0
    for path in sorted(directory.glob("*.safetensors")):
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total


def shape_from_checkpoint(directory: Path) -> ModelShape:
    """A local HF checkpoint's shape: config.json, and the exact parameter count from its safetensors."""
    c = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    heads = c["num_attention_heads"]
    kv_heads = c.get("num_key_value_heads") or heads
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    params = _safetensors_params(directory) or decoder_params(
        vocab=c["vocab_size"], hidden=c["hidden_size"], layers=c["num_hidden_layers"], heads=heads,
        kv_heads=kv_heads, head_dim=head_dim, ffn=c["intermediate_size"],
        tied=bool(c.get("tie_word_embeddings", False)))
    return ModelShape(params=params, layers=c["num_hidden_layers"], kv_heads=kv_heads, head_dim=head_dim,
                      hidden=c["hidden_size"], heads=heads, ffn=c.get("intermediate_size", 0))


def model_shape(path_key: str, path: str, shape_key: str, shape: str) -> ModelShape:
    """The shape named by `shape` (a KNOWN_SHAPES name), or with `auto` read from the checkpoint at `path`
    (or the built-in model of that name); UserError naming both keys when neither gives one."""
    if shape != "auto":
        return KNOWN_SHAPES[shape]
    directory = Path(path)
    if (directory / "config.json").is_file():
        try:
            return shape_from_checkpoint(directory)
        except (KeyError, ValueError, OSError, struct.error) as exc:
            raise UserError(f"{path_key}={path}: cannot read the model's size from config.json ({exc!r}); "
                            f"set {shape_key} to one of {sorted(KNOWN_SHAPES)}") from None
    if path in KNOWN_SHAPES:
        return KNOWN_SHAPES[path]
    raise UserError(f"{path_key}={path}: no checkpoint config.json there to size the GPU memory plan; point "
                    f"it at a local checkpoint or set {shape_key} to one of {sorted(KNOWN_SHAPES)}")


# ----------------------------------------------------------------------------- where each slot lands


def _seat(gpus: float, room: dict[int, float]) -> list[int] | None:
    """GPU indices (of its bundle's `room`, reduced here) that a replica asking `gpus` takes, first fit;
    None when no GPU of the bundle has that much left (Ray would leave the actor pending)."""
    if gpus <= 0:
        return []
    if gpus < 1:
        i = next((i for i, free in room.items() if free >= gpus - 1e-9), None)
        if i is None:
            return None
        room[i] -= gpus
        return [i]
    whole = [i for i, free in room.items() if free >= 1 - 1e-9][:int(gpus)]
    if len(whole) < gpus:
        return None
    for i in whole:
        room[i] = 0.0
    return whole


def slot_gpus(plan: Plan, assignment: dict[tuple[str, int], str],
              nodes: list[Node]) -> dict[tuple[str, int], list[tuple[str, int]]]:
    """(role, replica) -> the (node, GPU index) pairs it holds, replaying `fit`'s reservations in order."""
    free = {n.name: n.copy() for n in nodes}
    out: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for group, bundles in plan.bundles.items():
        for b, need in enumerate(bundles):
            node = free[assignment[(group, b)]]
            before = list(node.gpu_free)
            node.take(need)
            room = {i: before[i] - after for i, after in enumerate(node.gpu_free) if after < before[i] - 1e-12}
            for s in plan.slots:
                if s.group == group and s.bundle == b:
                    seat = _seat(s.resources.gpus, room)
                    if seat is None:
                        raise UserError(f"placement: {s.role} replica {s.replica} asks {s.resources.gpus:g} GPU but "
                                        f"no GPU of bundle {group}#{b} ({need.gpus:g} GPUs) has that much left "
                                        f"after the replicas before it; a fraction must fit within one GPU, so "
                                        f"adjust placement.roles.<role>.num_gpus of group {group!r}")
                    out[(s.role, s.replica)] = [(node.name, i) for i in seat]
    return out


# ----------------------------------------------------------------------------- estimates and the check


@dataclass(frozen=True)
class Placed:
    """A replica's estimate on one GPU it uses."""

    role: str
    replica: int
    estimate: Estimate


def role_estimate(cfg: Any, role: str, policy_ranks: int, gpu_bytes: float) -> Estimate:
    """Per-GPU estimate of one replica of `role`, from the config."""
    if role == "reward":
        if cfg.reward.grader == "rule" or cfg.reward.judge_url:
            return Estimate()                                      # no model: regexes, or a served judge
        if cfg.reward.grader == "judge":                           # a local judge is a vLLM engine
            shape = model_shape("reward.model", cfg.reward.model, "reward.model_shape", cfg.reward.model_shape)
            return generator_replica(shape.params, dtype=_generator_dtype(cfg.generator.dtype), gpu_bytes=gpu_bytes,
                                     gpu_memory_utilization=cfg.reward.judge_gpu_memory_utilization,
                                     tensor_parallel_size=1)
        shape = model_shape("reward.model", cfg.reward.model, "reward.model_shape", cfg.reward.model_shape)
        return inference_replica(shape.params, dtype="bfloat16" if cfg.reward.dtype == "auto" else cfg.reward.dtype)
    params = model_shape("model.policy", cfg.model.policy, "model.shape", cfg.model.shape).params
    if cfg.model.lora.rank and role in ("policy", "generator"):
        return lora_estimate(cfg, role, policy_ranks, gpu_bytes)
    if role == "policy":
        return policy_rank(params, zero_stage=cfg.trainer.zero_stage, ranks=policy_ranks,
                           train_dtype=_generator_dtype(cfg.model.train_dtype))
    if role == "reference":
        return inference_replica(params, dtype=_generator_dtype(cfg.model.train_dtype))
    g = cfg.generator
    return generator_replica(params, dtype=_generator_dtype(g.dtype), gpu_bytes=gpu_bytes,
                             gpu_memory_utilization=g.gpu_memory_utilization,
                             tensor_parallel_size=g.tensor_parallel_size)


def lora_estimate(cfg: Any, role: str, policy_ranks: int, gpu_bytes: float) -> Estimate:
    """model.lora: a policy rank holds the frozen base and the adapters' training state; a generator serving
    the adapter holds one adapter slot of vLLM's max_lora_rank beside the base (deploy/memory_plan.py)."""
    from promedical.actors.lora import vllm_max_lora_rank

    lora = cfg.model.lora
    shape = model_shape("model.policy", cfg.model.policy, "model.shape", cfg.model.shape)
    if role == "policy":
        train_dtype = "bfloat16" if cfg.model.train_dtype == "auto" else cfg.model.train_dtype
        return lora_policy_rank(shape.params, lora_params(shape, lora.rank, lora.target_modules),
                                zero_stage=cfg.trainer.zero_stage, ranks=policy_ranks, train_dtype=train_dtype)
    slot = 0 if lora.merge_for_sync else lora_params(shape, vllm_max_lora_rank(lora.rank), lora.target_modules)
    g = cfg.generator
    return generator_replica(shape.params + slot, dtype=_generator_dtype(g.dtype), gpu_bytes=gpu_bytes,
                             gpu_memory_utilization=g.gpu_memory_utilization,
                             tensor_parallel_size=g.tensor_parallel_size)


def _generator_dtype(dtype: str) -> str:
    return "bfloat16" if dtype == "auto" else dtype              # auto on a GPU: bf16 (runtime/dtypes.py)


def kv_problem(cfg: Any, generator: Estimate) -> str | None:
    """The generator's KV space against one step's share of sequences at full length, or None if it holds."""
    g, r = cfg.generator, cfg.rollout
    shape = model_shape("model.policy", cfg.model.policy, "model.shape", cfg.model.shape)
    tokens = cfg.model.max_prompt_tokens + r.max_new_tokens
    seqs = sequences_per_replica(r.prompts_per_step, r.group_size, g.replicas)
    need = kv_cache_needed(shape, dtype=_generator_dtype(g.dtype), tokens=tokens,
                           sequences=seqs, tensor_parallel_size=g.tensor_parallel_size)
    if generator.kv_cache >= need:
        return None
    return (f"generator: generator.gpu_memory_utilization={g.gpu_memory_utilization:g} leaves "
            f"{generator.kv_cache / GIB:.1f} GiB of KV cache per GPU (after weights {generator.weights / GIB:.1f} "
            f"+ working {generator.working / GIB:.1f}), but {seqs} sequences x {tokens} tokens (a step's share "
            f"per replica) need {need / GIB:.1f} GiB; raise generator.gpu_memory_utilization or "
            f"generator.replicas, or lower rollout.max_new_tokens")


def per_gpu(plan: Plan, seats: dict[tuple[str, int], list[tuple[str, int]]], estimates: dict[str, Estimate],
            tensor_parallel_size: int) -> dict[tuple[str, int], list[Placed]]:
    """(node, GPU) -> the replicas using it. A policy, reference or reward process uses one device (the
    first of its GPUs); a generator uses its first tensor_parallel_size GPUs."""
    out: dict[tuple[str, int], list[Placed]] = {}
    for s in plan.slots:
        used = seats[(s.role, s.replica)][:tensor_parallel_size if s.role == "generator" else 1]
        for gpu in used:
            out.setdefault(gpu, []).append(Placed(s.role, s.replica, estimates[s.role]))
    return dict(sorted(out.items()))


def _gib(x: float) -> str:
    return f"{x / GIB:.1f}"


def _names(placed: list[Placed]) -> str:
    return " ".join(f"{p.role}#{p.replica}" for p in placed)


def memory_problem(gpus: dict[tuple[str, int], list[Placed]], gpu_bytes: float, nccl: bool) -> str | None:
    """The first GPU whose estimate does not fit, or that holds two policy ranks under NCCL, or None."""
    for (node, i), placed in gpus.items():
        ranks = [p for p in placed if p.role == "policy"]
        if nccl and len(ranks) > 1:
            return (f"{node} GPU {i} holds {len(ranks)} policy ranks ({_names(ranks)}); NCCL allows one rank of "
                    f"a group per GPU: give placement.roles.policy.num_gpus > 0.5 so each rank has its own GPU")
        total = sum((p.estimate for p in placed), Estimate())
        if total.total > gpu_bytes + 1:
            parts = " + ".join(f"{p.role}#{p.replica} {_gib(p.estimate.total)}" for p in placed)
            worst = max(placed, key=lambda p: p.estimate.total)
            return (f"{node} GPU {i}: estimated {_gib(total.total)} GiB > {_gib(gpu_bytes)} GiB ({parts}; "
                    f"{worst.role}: {describe(worst.estimate)}); lower replicas per GPU, raise trainer.zero_stage, "
                    f"lower generator.gpu_memory_utilization, or plan for larger GPUs (--gpu-memory-gib)")
    return None


def describe(e: Estimate) -> str:
    kinds = [("weights", e.weights), ("grads", e.gradients), ("optimizer", e.optimizer), ("kv", e.kv_cache),
             ("working", e.working)]
    return " ".join(f"{k} {_gib(v)}" for k, v in kinds if v)


def render_memory(gpus: dict[tuple[str, int], list[Placed]], gpu_bytes: float) -> str:
    """Per GPU: the replicas on it, the sum by kind (GiB) and the total against the GPU's memory."""
    rows = [("GPU", "REPLICAS", "WEIGHTS", "GRADS", "OPTIMIZER", "KV_CACHE", "WORKING", "TOTAL")]
    for (node, i), placed in gpus.items():
        t = sum((p.estimate for p in placed), Estimate())
        rows.append((f"{node}:{i}", _names(placed), _gib(t.weights), _gib(t.gradients), _gib(t.optimizer),
                     _gib(t.kv_cache), _gib(t.working), f"{_gib(t.total)}/{gpu_bytes / GIB:g}"))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


# ----------------------------------------------------------------------------- what `plan` prints


def ranks_line(cfg: Any, plan: Plan) -> str:
    """Replicas per role, saying what they are: DeepSpeed ranks, pools, vLLM engines."""
    n = {role: sum(1 for s in plan.slots if s.role == role) for role in ("policy", "reference", "reward", "generator")}
    return (f"ranks: policy {n['policy']} (DeepSpeed ZeRO-{cfg.trainer.zero_stage} data-parallel), reference "
            f"{n['reference']}, reward {n['reward']}, generator {n['generator']} (vLLM, tensor_parallel_size "
            f"{cfg.generator.tensor_parallel_size})")


def check_total(cfg: Any, plan: Plan, nodes: list[Node], where: str, gpu_memory_gib: float) -> None:
    """UserError (one line) when the plan's estimated GPU memory exceeds all the GPUs of `nodes` together:
    then no packing of the replicas can fit, whatever the GPU count says."""
    on_gpu = [s for s in plan.slots if s.resources.gpus > 0]
    if not on_gpu:
        return
    gpu_bytes = gpu_memory_gib * GIB
    ranks = sum(1 for s in plan.slots if s.role == "policy")
    per_role: dict[str, tuple[int, Estimate]] = {}
    for s in on_gpu:
        devices = cfg.generator.tensor_parallel_size if s.role == "generator" else 1
        count, _ = per_role.get(s.role, (0, Estimate()))
        per_role[s.role] = (count + devices, role_estimate(cfg, s.role, ranks, gpu_bytes))
    need = sum(count * e.total for count, e in per_role.values())
    gpus = sum(sum(n.gpu_free) for n in nodes)
    if need > gpus * gpu_bytes + 1:
        parts = " + ".join(f"{role} {count} x {_gib(e.total)}" for role, (count, e) in per_role.items())
        raise UserError(f"the plan needs an estimated {_gib(need)} GiB of GPU memory ({parts}) but {where} has "
                        f"{gpus:g} GPUs x {gpu_memory_gib:g} GiB = {_gib(gpus * gpu_bytes)} GiB; add GPUs or lower "
                        f"placement.roles.<role>.replicas" + (", or raise trainer.zero_stage"
                                                              if cfg.trainer.zero_stage < 3 else ""))


def check_memory(cfg: Any, plan: Plan, assignment: dict[tuple[str, int], str], nodes: list[Node],
                 gpu_memory_gib: float) -> str:
    """The per-GPU memory table of `plan` as placed by `fit`; UserError (one line) when it does not fit."""
    seats = slot_gpus(plan, assignment, nodes)
    gpu_bytes = gpu_memory_gib * GIB
    on_gpu = {role for (role, _), gpus in seats.items() if gpus}
    if not on_gpu:
        return "GPU memory: no replica asks for a GPU, nothing to estimate"
    ranks = sum(1 for s in plan.slots if s.role == "policy")
    estimates = {role: role_estimate(cfg, role, ranks, gpu_bytes) for role in sorted(on_gpu)}
    gpus = per_gpu(plan, seats, estimates, cfg.generator.tensor_parallel_size)
    nccl = "policy" in on_gpu and cfg.trainer.backend != "gloo"
    problem = memory_problem(gpus, gpu_bytes, nccl) \
        or (kv_problem(cfg, estimates["generator"]) if "generator" in on_gpu else None)
    if problem:
        raise UserError(problem)
    return f"estimated GPU memory, GiB (deploy/memory_plan.py):\n{render_memory(gpus, gpu_bytes)}"
