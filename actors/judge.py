"""A local LLM judge on vLLM: verdicts constrained to "yes" or "no", the score read from the verdict token.

Decoding is constrained by vLLM structured outputs (a choice of "yes" / "no"), so every verdict is
valid; the criterion's score is P(yes) / (P(yes) + P(no)) over the first verdict token (the grammar
masks every other token, so only prefixes of the two words carry probability): a graded value, not
only 0/1. All triples of a call go to the engine in one generate call. With `prefix_order` the
criteria of one response follow each other and vLLM's prefix cache computes their shared prompt
(template head, instruction, response; the criterion comes last) once; without it, the triples go
criterion-major and the cache is off (the benchmark's baseline, benchmarks/bench_judge.py).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from promedical.actors.generator import _configure_cpu_env
from promedical.reward.judge import OpenAICompatibleJudge, Verdict
from promedical.reward.judge_prompt import DEFAULT_TEMPLATE, JudgeTemplate, load_template
from promedical.reward.rubric import Criterion

CHOICES = ("yes", "no")
FIRST_TOKEN_LOGPROBS = 8      # >= the tokens that can start "yes" or "no" (y, ye, yes, n, no)

Triple = tuple[str, str, Criterion]


def _max_positions(model_path: str) -> int:
    config = Path(model_path) / "config.json"
    if not config.is_file():
        return 1 << 30
    return int(json.loads(config.read_text()).get("max_position_embeddings", 1 << 30))


def verdict_from_logprobs(first: dict[Any, Any]) -> Verdict:
    """The verdict from the first output token's logprobs {token: Logprob(logprob, decoded_token)}."""
    mass = dict.fromkeys(CHOICES, 0.0)
    for entry in first.values():
        token = (entry.decoded_token or "").strip().lower()
        if token and math.isfinite(entry.logprob):
            for word in CHOICES:
                if word.startswith(token):
                    mass[word] += math.exp(entry.logprob)
    total = mass["yes"] + mass["no"]
    if total <= 0:
        return Verdict(met=None, error="no_choice", raw="")
    score = mass["yes"] / total
    return Verdict(met=score >= 0.5, error=None, raw="yes" if score >= 0.5 else "no", score=score)


class LocalJudge:
    """vLLM judge in this process (a Ray actor's, or the CLI's): `judge_batch` grades triples in one call."""

    def __init__(self, *, model_path: str, dtype: str = "auto", max_prompt_tokens: int = 1024,
                 kv_cache_gib: float = 1.0, omp_threads_bind: str = "auto", gpu_memory_utilization: float = 0.3,
                 prefix_order: bool = True, template: JudgeTemplate = DEFAULT_TEMPLATE, seed: int = 0) -> None:
        import torch
        if not torch.cuda.is_available():
            _configure_cpu_env(omp_threads_bind, kv_cache_gib)
        from vllm import LLM, SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        kwargs = {"gpu_memory_utilization": gpu_memory_utilization} if torch.cuda.is_available() else {}
        self.max_model_len = min(max_prompt_tokens + 1, _max_positions(model_path))
        self.llm = LLM(model=model_path, dtype=dtype, seed=seed, enforce_eager=True, max_model_len=self.max_model_len,
                       enable_prefix_caching=prefix_order, **kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.params = SamplingParams(temperature=0.0, max_tokens=1, logprobs=FIRST_TOKEN_LOGPROBS,
                                     structured_outputs=StructuredOutputsParams(choice=list(CHOICES)))
        self.prefix_order, self.template = prefix_order, template

    def _ids(self, instruction: str, response: str, criterion: Criterion) -> list[int]:
        text = self.template.render(instruction, response, criterion, "choice")
        chat = self.tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                                  tokenize=False)
        return list(self.tokenizer.encode(chat, add_special_tokens=False))

    def _cut(self, text: str, tokens: int, keep_end: bool) -> str:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        kept = ids[tokens:] if keep_end else ids[:max(0, len(ids) - tokens)]
        return self.tokenizer.decode(kept)

    def _fitted(self, items: list[Triple]) -> list[list[int] | None]:
        """Token ids per triple; a response's prompts over the limit lose the instruction's start, then the
        response's end, by the same amount for all its criteria (their prefix stays shared); None: no fit."""
        limit = self.max_model_len - 1
        ids = [self._ids(*item) for item in items]
        pairs: dict[tuple[str, str], list[int]] = {}
        for k, (instruction, response, _) in enumerate(items):
            pairs.setdefault((instruction, response), []).append(k)
        for (instruction, response), members in pairs.items():
            over = max(len(ids[k]) for k in members) - limit
            if over <= 0:
                continue
            from_instruction = min(over, len(self.tokenizer.encode(instruction, add_special_tokens=False)))
            short_i = self._cut(instruction, from_instruction + 8, keep_end=True)
            short_r = self._cut(response, over - from_instruction + 8, keep_end=False) if over > from_instruction \
                else response
            for k in members:
                ids[k] = self._ids(short_i, short_r, items[k][2])
        return [x if len(x) <= limit else None for x in ids]

    def _order(self, items: list[Triple]) -> list[int]:
        """Engine order: as given (criteria of a response adjacent), or criterion-major without prefix order."""
        if self.prefix_order:
            return list(range(len(items)))
        rank, seen = [], {}
        for instruction, response, _ in items:
            key = (instruction, response)
            seen[key] = seen.get(key, -1) + 1
            rank.append(seen[key])
        return sorted(range(len(items)), key=lambda k: rank[k])

    def judge_batch(self, items: list[Triple]) -> list[Verdict]:
        ids = self._fitted(items)
        order = [k for k in self._order(items) if ids[k] is not None]
        outputs = self.llm.generate([{"prompt_token_ids": ids[k]} for k in order], self.params, use_tqdm=False)
        verdicts = [Verdict(met=None, error="too_long", raw="")] * len(items)
        for k, out in zip(order, outputs):
            verdicts[k] = verdict_from_logprobs(out.outputs[0].logprobs[0])
        return verdicts

    def judge(self, instruction: str, response: str, criterion: Criterion) -> Verdict:
        return self.judge_batch([(instruction, response, criterion)])[0]


def make_judge(*, url: str, model: str, template: str = "v1", api_key_env: str = "OPENAI_API_KEY",
               timeout_s: float = 30.0, retries: int = 2, concurrency: int = 1, **local: Any):
    """The one judge factory (training's reward role, `promedical eval --judge-url`, `promedical label`):
    url "local" (or empty) -> LocalJudge on `model` (tiny, smollm2 or a directory), else an endpoint
    that `model` names. `local` holds LocalJudge's engine keywords."""
    chosen = load_template(template)
    if url in ("", "local"):
        from promedical.actors.models import resolve_model
        return LocalJudge(model_path=resolve_model(model), template=chosen, **local)
    return OpenAICompatibleJudge(base_url=url, model=model, api_key=os.environ.get(api_key_env), timeout_s=timeout_s,
                                 retries=retries, concurrency=concurrency, template=chosen)
