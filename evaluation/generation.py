"""Answer generation for evaluation: a pool of Generator actors (the training generator class), greedy.

The pool splits the prompts into one contiguous share per replica and gathers the texts in order, so
it scales like training. A member is a Ray actor handle or, in tests, an in-process Generator.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from promedical.actors.interfaces import PromptRequest

EVAL_SEED = 0
MAX_PROMPT_TOKENS = 1024       # PubMedQA abstracts need ~300-700; longer prompts are cut from the left


def _call(handle: Any, method: str, *args: Any) -> Any:
    """Start `method` on a Ray actor handle (returns an ObjectRef) or run it on an in-process object."""
    fn = getattr(handle, method)
    return fn.remote(*args) if hasattr(fn, "remote") else fn(*args)


def _wait(results: list) -> list:
    import ray
    refs = [r for r in results if isinstance(r, ray.ObjectRef)]
    fetched = dict(zip(map(id, refs), ray.get(refs))) if refs else {}
    return [fetched.get(id(r), r) for r in results]


def generate_texts(handles: Sequence[Any], conversations: Sequence[tuple[tuple[str, str], ...]],
                   ids: Sequence[str]) -> list[str]:
    """One response text per conversation (group size 1), in input order, shared across `handles`."""
    if not conversations:
        return []
    requests = [PromptRequest(prompt_id=pid, group_id=k, messages=tuple(m))
                for k, (pid, m) in enumerate(zip(ids, conversations))]
    share = -(-len(requests) // len(handles))
    chunks = [requests[k:k + share] for k in range(0, len(requests), share)]
    batches = _wait([_call(h, "generate", chunk, 1) for h, chunk in zip(handles, chunks)])
    texts: list[str] = []
    for batch in batches:
        texts += batch.column("response_text").to_pylist()
    return texts


def generator_kwargs(model_path: str, *, max_new_tokens: int, dtype: str = "auto",
                     kv_cache_gib: float = 1.0, seed: int = EVAL_SEED) -> dict[str, Any]:
    """Greedy Generator arguments; the prompt budget shrinks to fit the model's context window."""
    config = json.loads((Path(model_path) / "config.json").read_text())
    window = int(config.get("max_position_embeddings", MAX_PROMPT_TOKENS + max_new_tokens))
    max_prompt = min(MAX_PROMPT_TOKENS, window - max_new_tokens)
    return dict(model_path=model_path, seed=seed, max_new_tokens=max_new_tokens, temperature=0.0,
                top_p=1.0, max_prompt_tokens=max_prompt, dtype=dtype, kv_cache_gib=kv_cache_gib)


class GeneratorPool:
    """`replicas` Generator Ray actors for one model; `close()` frees them before the next model starts."""

    def __init__(self, model_path: str, *, replicas: int, num_cpus: float, max_new_tokens: int,
                 dtype: str = "auto", kv_cache_gib: float = 1.0) -> None:
        import ray
        from promedical.actors.generator import Generator

        kwargs = generator_kwargs(model_path, max_new_tokens=max_new_tokens, dtype=dtype,
                                  kv_cache_gib=kv_cache_gib)
        actor = ray.remote(Generator).options(num_cpus=num_cpus, max_concurrency=1)
        self.handles = [actor.remote(**kwargs) for _ in range(replicas)]

    def generate(self, conversations, ids) -> list[str]:
        return generate_texts(self.handles, conversations, ids)

    def close(self) -> None:
        import ray
        for handle in self.handles:
            ray.kill(handle)
        self.handles = []
