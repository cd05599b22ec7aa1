"""GPU memory estimates of a plan's roles: model sizes, ZeRO-partitioned training state, vLLM KV cache.

Pure arithmetic on numbers (no torch, no Ray); deploy/gpu_fit.py applies it to a placement plan.
Training state per parameter follows DeepSpeed's mixed-precision Adam (the ZeRO paper, section 3.1):
    bf16 training   weights 2 B + gradients 2 B + optimizer 12 B (fp32 master copy 4 + Adam m 4 + v 4)
    fp32 training   weights 4 B + gradients 4 B + optimizer 8 B (Adam m 4 + v 4; weights are the master)
ZeRO partitions across the policy's N data-parallel ranks: stage 1 the optimizer state, stage 2 also the
gradients, stage 3 also the weights (each divided by N); stage 0 replicates all three.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# bytes per parameter: (weights, gradients, optimizer state) for the policy's training dtype
TRAIN_STATE_BYTES = {"bfloat16": (2, 2, 12), "float32": (4, 4, 8)}

# Working allowances, GiB per process on its GPU: a round figure, not a measurement. They cover the CUDA
# context, the allocator's slack and one micro-batch's activations and logits (with ZeRO-3, also the
# gathered layers in flight). vLLM's working memory is its profiled activation peak and CUDA graphs.
TRAIN_WORKING_GIB = 8.0       # policy rank (DeepSpeed)
INFERENCE_WORKING_GIB = 4.0   # reference or reward replica (forward only)
GENERATOR_WORKING_GIB = 2.0   # vLLM replica, inside its gpu_memory_utilization share


@dataclass(frozen=True)
class ModelShape:
    """What the memory plan needs of a model: parameter count and the attention shape of its KV cache."""

    params: int               # total parameters
    layers: int
    kv_heads: int             # key/value heads per layer (grouped-query attention)
    head_dim: int
    hidden: int = 0           # hidden size, attention heads and MLP width: sizes LoRA adapters (0: unknown)
    heads: int = 0
    ffn: int = 0

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        """KV cache bytes of one token: layers x kv_heads x head_dim x 2 (K and V) x bytes."""
        return self.layers * self.kv_heads * self.head_dim * 2 * dtype_bytes


def decoder_params(*, vocab: int, hidden: int, layers: int, heads: int, kv_heads: int, head_dim: int,
                   ffn: int, tied: bool) -> int:
    """Parameters of a Llama-style decoder (Llama, Qwen, Mistral): attention, gated MLP, RMSNorms.

    per layer: q and o (hidden x heads*head_dim each), k and v (hidden x kv_heads*head_dim each),
    gate/up/down (3 x hidden x ffn), two norms (2 x hidden); plus embeddings, the LM head unless tied,
    and the final norm. Biases and per-head q/k norms are left out (under 0.01% at 8B).
    """
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    per_layer = attention + 3 * hidden * ffn + 2 * hidden
    embeddings = vocab * hidden * (1 if tied else 2)
    return layers * per_layer + embeddings + hidden


def _decoder(vocab: int, hidden: int, layers: int, heads: int, kv_heads: int, head_dim: int, ffn: int,
             tied: bool) -> ModelShape:
    params = decoder_params(vocab=vocab, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads,
                            head_dim=head_dim, ffn=ffn, tied=tied)
    return ModelShape(params=params, layers=layers, kv_heads=kv_heads, head_dim=head_dim, hidden=hidden,
                      heads=heads, ffn=ffn)


def lora_params(shape: ModelShape, rank: int, target_modules: str | list[str] | tuple[str, ...]) -> int:
    """Adapter parameters of a Llama-style decoder: a targeted linear (in -> out) adds A (rank x in) and
    B (out x rank), rank x (in + out); `all-linear` targets the seven per layer (q k v o gate up down).
    Names this plan does not know count 0."""
    h, q, kv, f = shape.hidden, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim, shape.ffn
    sizes = {"q_proj": h + q, "k_proj": h + kv, "v_proj": h + kv, "o_proj": q + h,
             "gate_proj": h + f, "up_proj": h + f, "down_proj": f + h}
    names = list(sizes) if target_modules == "all-linear" else (
        [target_modules] if isinstance(target_modules, str) else list(target_modules))
    return shape.layers * rank * sum(sizes.get(n, 0) for n in names)


# Shapes for models whose checkpoint is not on this machine (`model.shape`, `reward.model_shape`), and
# for the built-in model names. Figures from each model's published config.json.
KNOWN_SHAPES: dict[str, ModelShape] = {
    "qwen3-8b": _decoder(151936, 4096, 36, 32, 8, 128, 12288, tied=False),
    "qwen3-4b": _decoder(151936, 2560, 36, 32, 8, 128, 9728, tied=True),
    "qwen3-1.7b": _decoder(151936, 2048, 28, 16, 8, 128, 6144, tied=True),
    "qwen3-0.6b": _decoder(151936, 1024, 28, 16, 8, 128, 3072, tied=True),
    "tiny": _decoder(512, 128, 2, 2, 2, 64, 256, tied=True),           # actors/models.py TINY_SPEC
    "smollm2": _decoder(49152, 576, 30, 9, 3, 64, 1536, tied=True),    # SmolLM2-135M-Instruct
    "minilm": ModelShape(params=22_713_216, layers=6, kv_heads=12, head_dim=32),   # all-MiniLM-L6-v2 (BERT)
    "minilm-ecir": ModelShape(params=22_713_216, layers=6, kv_heads=12, head_dim=32),   # MiniLM + criterion head
}


@dataclass(frozen=True)
class Estimate:
    """One process's memory on one GPU, in bytes, by kind; `kv_cache` is vLLM's KV space."""

    weights: float = 0.0
    gradients: float = 0.0
    optimizer: float = 0.0
    kv_cache: float = 0.0
    working: float = 0.0

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.kv_cache + self.working

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.weights + other.weights, self.gradients + other.gradients,
                        self.optimizer + other.optimizer, self.kv_cache + other.kv_cache,
                        self.working + other.working)


def policy_rank(params: int, *, zero_stage: int, ranks: int, train_dtype: str) -> Estimate:
    """One policy rank: weights, gradients and optimizer state after ZeRO partitioning, plus working."""
    w, g, o = (params * b for b in TRAIN_STATE_BYTES[train_dtype])
    o = o / ranks if zero_stage >= 1 else o
    g = g / ranks if zero_stage >= 2 else g
    w = w / ranks if zero_stage >= 3 else w
    return Estimate(weights=w, gradients=g, optimizer=o, working=TRAIN_WORKING_GIB * GIB)


def lora_policy_rank(params: int, adapter: int, *, zero_stage: int, ranks: int, train_dtype: str) -> Estimate:
    """One LoRA policy rank: the frozen base in the training dtype (no gradients, no optimizer state;
    partitioned only under ZeRO-3) and the adapters' full training state, partitioned as in `policy_rank`."""
    state = policy_rank(adapter, zero_stage=zero_stage, ranks=ranks, train_dtype=train_dtype)
    base = params * DTYPE_BYTES[train_dtype] / (ranks if zero_stage >= 3 else 1)
    return Estimate(weights=base + state.weights, gradients=state.gradients, optimizer=state.optimizer,
                    working=state.working)


def inference_replica(params: int, *, dtype: str) -> Estimate:
    """A reference or reward replica: the full weights in `dtype`, plus working."""
    return Estimate(weights=params * DTYPE_BYTES[dtype], working=INFERENCE_WORKING_GIB * GIB)


def generator_replica(params: int, *, dtype: str, gpu_memory_utilization: float, gpu_bytes: float,
                      tensor_parallel_size: int) -> Estimate:
    """One vLLM replica on each of its GPUs: it takes gpu_memory_utilization x the GPU, holds 1/tp of
    the weights and its working memory there, and the rest becomes KV cache (negative: does not fit)."""
    reserve = gpu_memory_utilization * gpu_bytes
    weights = params * DTYPE_BYTES[dtype] / tensor_parallel_size
    working = GENERATOR_WORKING_GIB * GIB
    return Estimate(weights=weights, kv_cache=reserve - weights - working, working=working)


def kv_cache_needed(shape: ModelShape, *, dtype: str, tokens: int, sequences: int,
                    tensor_parallel_size: int) -> float:
    """KV bytes per GPU to hold `sequences` sequences of `tokens` tokens at once (heads split over tp)."""
    return shape.kv_bytes_per_token(DTYPE_BYTES[dtype]) * tokens * sequences / tensor_parallel_size


def sequences_per_replica(prompts_per_step: int, group_size: int, replicas: int) -> int:
    """Sequences one generator replica holds to generate its share of a step in one wave."""
    return math.ceil(prompts_per_step * group_size / replicas)
