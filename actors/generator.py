"""Generator role: a vLLM engine that samples G responses per prompt with per-token logprobs.

It owns the only vLLM import of the project. Weights arrive by version (`load_weights`) between
generate calls, so every row records exactly which policy version produced it.
"""
from __future__ import annotations

import os
import time
import zlib
from typing import Sequence

import pyarrow as pa

from promedical.runtime.memory import release_memory
from promedical.runtime.threads import NODE_CORES, apply_threads
from promedical.actors.interfaces import PromptRequest
from promedical.storage.schema import GENERATION_FIELDS, columns_batch

CPU_BLOCK_TOKENS = 32     # vLLM-CPU KV block: a multiple of 32 (its kernels), small so that short prompts cache


def _configure_cpu_env(omp_threads_bind: str, kv_cache_gib: float) -> None:
    """vLLM-CPU's settings, and as many intra-op threads as cores bound: Ray starts a fractional-CPU actor
    with OMP_NUM_THREADS=1, and vLLM then computes on one thread whatever its binding (the demo's generate
    phase: 52.1 s on one thread, 33.7 s on both cores of a 2-core AVX2 machine; README "Measured performance")."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, int(round(kv_cache_gib))))
    if omp_threads_bind == "auto" or omp_threads_bind.startswith("share:"):
        # "share:k/n": the k-th of n equal slices of this node's cores (n generator replicas on one node)
        k, n = map(int, omp_threads_bind[6:].split("/")) if omp_threads_bind != "auto" else (0, 1)
        cores = sorted(os.sched_getaffinity(0))
        mine = [c for i, c in enumerate(cores) if i * n // len(cores) == k] or cores
        omp_threads_bind = ",".join(map(str, mine))
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = omp_threads_bind
    apply_threads(bound_cores(omp_threads_bind))


def bound_cores(bind: str) -> int:
    """How many cores a VLLM_CPU_OMP_THREADS_BIND list ("0,1", "0-3,8") names; NODE_CORES for any other form."""
    if "|" in bind:            # one list per tensor-parallel rank
        return NODE_CORES
    try:
        spans = [item.split("-") for item in bind.split(",")]
        return sum(int(span[-1]) - int(span[0]) + 1 for span in spans)
    except ValueError:
        return NODE_CORES


class Generator:
    """Samples with vLLM; `temperature`/`top_p` fixed per run; logprobs at the sampling temperature."""

    def __init__(self, *, model_path: str, seed: int, max_new_tokens: int, temperature: float,
                 top_p: float, max_prompt_tokens: int, dtype: str = "auto", omp_threads_bind: str = "auto",
                 kv_cache_gib: float = 1.0, gpu_memory_utilization: float = 0.5,
                 enforce_eager: bool = True, replica: int = 0, tensor_parallel_size: int = 1,
                 sleep_between_steps: bool = False, lora_rank: int = 0) -> None:
        import torch
        if not torch.cuda.is_available():
            _configure_cpu_env(omp_threads_bind, kv_cache_gib)
        from vllm import LLM, SamplingParams

        self._SamplingParams = SamplingParams
        kwargs = {}
        if torch.cuda.is_available():
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
            kwargs["tensor_parallel_size"] = tensor_parallel_size
            # colocated on a GPU: weights go to host memory and the KV cache is freed while the policy trains
            kwargs["enable_sleep_mode"] = sleep_between_steps
        else:   # vLLM-CPU's default 128-token blocks would leave short prompts uncached
            # (one demo batch: 35 to 256 tokens, 6 of 8 prompts under 64)
            kwargs["block_size"] = CPU_BLOCK_TOKENS
        if lora_rank:   # model.lora: the policy's adapter arrives by version and is served by name (load_weights)
            from promedical.actors.lora import vllm_max_lora_rank
            kwargs.update(enable_lora=True, max_lora_rank=vllm_max_lora_rank(lora_rank), max_loras=1)
        self.llm = LLM(model=model_path, dtype=dtype, seed=seed, enforce_eager=enforce_eager,
                       max_model_len=max_prompt_tokens + max_new_tokens,
                       worker_extension_cls="promedical.actors.vllm_extension.WeightLoader",
                       logprobs_mode="processed_logprobs", enable_prefix_caching=True,   # see _prefill
                       # whole-prompt prefill: vLLM-CPU cannot rewind a seeded sampler across chunks
                       enable_chunked_prefill=False, max_num_batched_tokens=max(
                           16384, max_prompt_tokens + max_new_tokens), **kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.seed = seed
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.max_prompt_tokens = max_prompt_tokens
        self._version = 0
        self._cached_tokens = 0
        self.replica = replica
        self.sleeps = sleep_between_steps and torch.cuda.is_available()
        self.asleep = False
        self._lora = None              # LoRARequest of the adapter version in use; None = the base weights
        self._lora_ids = 0             # a fresh int id per loaded version (vLLM caches adapters by id)
        self.lora_enabled = bool(lora_rank)

    def version(self) -> int:
        return self._version

    def cached_prompt_tokens(self) -> int:
        """Prompt tokens that the last `generate` read from the prefix cache instead of computing them,
        counted once per prompt (vLLM reports one sample's count for an n=G request)."""
        return self._cached_tokens

    def _prompt_ids(self, messages: tuple[tuple[str, str], ...]) -> list[int]:
        chat = [{"role": r, "content": c} for r, c in messages]
        text = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return list(ids)[-self.max_prompt_tokens:]

    def generate(self, prompts: Sequence[PromptRequest], group_size: int) -> pa.RecordBatch:
        """B prompts -> B*G rows of GENERATION_FIELDS, grouped by prompt, samples in order."""
        start = time.perf_counter()
        self._wake()
        token_prompts = [{"prompt_token_ids": self._prompt_ids(p.messages)} for p in prompts]
        params = [self._SamplingParams(n=group_size, temperature=self.temperature, top_p=self.top_p,
                                       max_tokens=self.max_new_tokens, logprobs=0,
                                       seed=zlib.crc32(f"{self.seed}:{p.group_id}".encode()))
                  for p in prompts]
        self._prefill(token_prompts)
        outputs = self.llm.generate(token_prompts, params, use_tqdm=False, lora_request=self._lora)
        self._cached_tokens = sum(out.num_cached_tokens or 0 for out in outputs)
        elapsed = time.perf_counter() - start
        cols: dict[str, list] = {f.name: [] for f in GENERATION_FIELDS}
        for prompt, request, out in zip(prompts, token_prompts, outputs):
            for k, completion in enumerate(sorted(out.outputs, key=lambda o: o.index)):
                ids = list(completion.token_ids)
                logprobs = [step[tok].logprob for step, tok in zip(completion.logprobs, ids)]
                cols["prompt_id"].append(prompt.prompt_id)
                cols["group_id"].append(prompt.group_id)
                cols["sample_index"].append(k)
                cols["prompt_ids"].append(request["prompt_token_ids"])
                cols["response_ids"].append(ids)
                cols["response_length"].append(len(ids))
                cols["response_text"].append(completion.text)
                cols["finish_reason"].append(completion.finish_reason or "length")
                cols["behaviour_logprobs"].append(logprobs)
                cols["policy_version"].append(self._version)
                cols["generate_seconds"].append(elapsed)
                cols["generator_replica"].append(self.replica)
        if self.sleeps:
            self.llm.sleep(level=1)
            self.asleep = True
        return columns_batch(GENERATION_FIELDS, cols)

    def _prefill(self, token_prompts: list[dict]) -> None:
        """Run each prompt once, so that its G samples read the prompt's KV blocks from the prefix cache.

        vLLM runs the G samples of a prompt (n=G) as G requests scheduled together, each prefilling the
        whole prompt: G times the prompt's compute. On a 2-core AVX2 machine this pass cut the demo's
        generate phase from 78.7 to 52.1 s (README "Measured performance").
        """
        self.llm.generate(token_prompts, self._SamplingParams(max_tokens=1), use_tqdm=False,
                          lora_request=self._lora)

    def _wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def load_weights(self, version: int, named_tensors: list) -> float:
        """Install policy weights `version` between requests; returns seconds.

        `named_tensors` is [(HF name, CPU tensor)] from the object store, or a payload of
        actors/sync_collective.py or sync_ipc.py (collective, CUDA IPC) that yields those pairs when the vLLM worker lists it.
        """
        from promedical.actors.lora import AdapterPayload

        start = time.perf_counter()
        sent = getattr(named_tensors, "version", version)   # a collective or CUDA-IPC payload names its version
        if sent != version:
            raise RuntimeError(f"generator replica {self.replica}: asked to load version {version}, given {sent}")
        self._wake()
        if isinstance(named_tensors, AdapterPayload):
            self._load_adapter(version, named_tensors)
        else:
            self.llm.collective_rpc("load_policy_weights", args=(named_tensors,))
        del named_tensors
        self.llm.reset_prefix_cache()      # KV blocks of the old weights must never serve the new version
        release_memory()
        self._version = version
        return time.perf_counter() - start

    def _load_adapter(self, version: int, adapter) -> None:
        """Serve adapter `version` from now on: written to this node's disk, loaded into the engine under a
        fresh id; the previous version is dropped from the engine and the disk."""
        import shutil
        import tempfile
        from pathlib import Path
        from vllm.lora.request import LoRARequest

        self._lora_ids += 1
        root = Path(tempfile.gettempdir()) / f"promedical-lora-{os.getpid()}"
        path = adapter.write(root / f"v{version}-{self._lora_ids}")
        request = LoRARequest(f"policy-v{version}", self._lora_ids, str(path))
        engine = self.llm.llm_engine
        engine.add_lora(request)
        old, self._lora = self._lora, request
        if old is not None:
            engine.remove_lora(old.lora_int_id)
            shutil.rmtree(old.lora_path, ignore_errors=True)

    def score_sequences(self, sequences: list[list[int]]) -> list[list[float]]:
        """Log p(token_t | tokens_<t) for t >= 1 of each sequence, from the engine's own forward pass."""
        params = self._SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
        prompts = [{"prompt_token_ids": s} for s in sequences]
        if not self.lora_enabled:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        else:   # vLLM 0.32 CPU with LoRA enabled: prompt logprobs of several requests fail a shape check
            outputs = [self.llm.generate([p], params, use_tqdm=False, lora_request=self._lora)[0] for p in prompts]
        result = []
        for seq, out in zip(sequences, outputs):
            steps = out.prompt_logprobs[1:]
            result.append([step[tok].logprob for step, tok in zip(steps, seq[1:])])
        return result
