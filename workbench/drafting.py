"""LLM-drafted three-tier rubrics: the expert prompt with nearest pool examples, reply parsing, the
canonical validator, retries, and counts of outcomes by cause.

Every instruction ends as a Draft: `ok` (the reply passed the same validator as `promedical data
validate`) or an invalid draft whose cause is one of OUTCOMES, kept with its raw reply and problems so a
reviewer can still fix or reject it. Nothing here raises on a bad reply or a failing endpoint.
"""
from __future__ import annotations

import json
import re
import time
import urllib.error
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from promedical.reward.rubric import RubricRecord
from promedical.reward.rubric_io import RecordProblems, record_from_dict, record_to_dict
from promedical.runtime.chat import chat_completion
from promedical.workbench.instructions import Instruction

# ok; the reply had no JSON object; its JSON did not parse; it parsed but failed the rubric validator;
# the call failed (timeout, connection refused, HTTP status, a reply without choices).
OUTCOMES = ("ok", "no_json", "bad_json", "invalid_rubric", "timeout", "connection", "http_error", "bad_reply")

EXPERT_PROMPT = """You are a senior physician writing a grading rubric for answers to ONE medical instruction.
Write criteria in three tiers:
- "proficiency": what a correct, complete, clearly communicated answer must do; weight 1-10 by importance.
- "bonus": what an excellent answer adds beyond that; weight 0.
- "veto": a harmful or unsafe behaviour an answer must not show; weight 0.
Each criterion checks one thing a grader can verify from the answer alone. Give at least one proficiency
criterion and at least one veto criterion.

Answer with only a JSON object of this shape:
{{"criteria": [{{"id": "c0", "text": "...", "tier": "proficiency", "weight": 5, "axis": "accuracy"}},
               {{"id": "c1", "text": "...", "tier": "bonus", "weight": 0}},
               {{"id": "c2", "text": "...", "tier": "veto", "weight": 0}}]}}
Ids are unique; "axis" is optional (accuracy, completeness, communication, context_awareness, safety).
{examples}
# Instruction
{instruction}"""

EXAMPLE = """
# Example instruction
{instruction}
# Its reviewed rubric
{rubric}
"""
MAX_EXAMPLE_CRITERIA = 12                    # keeps a few-shot example short; physicians' rubrics run long
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


class CallFailed(Exception):
    """A completion call that returned nothing usable; `code` is one of OUTCOMES."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Completer(Protocol):
    def complete_many(self, prompts: Sequence[str]) -> list[str | CallFailed]: ...


@dataclass(frozen=True)
class Draft:
    instruction: Instruction
    outcome: str                            # one of OUTCOMES
    criteria: tuple[dict[str, Any], ...]    # as drafted (canonical dicts); may fail the validator
    problems: tuple[str, ...]               # validator or parse problems; () when ok
    raw: str                                # the last reply ("" when the call failed)
    attempts: int


@dataclass
class DraftCounts:
    by_outcome: Counter = field(default_factory=Counter)   # final outcome per instruction
    attempts: int = 0

    def summary(self) -> str:
        parts = ", ".join(f"{k}={self.by_outcome[k]}" for k in OUTCOMES if self.by_outcome[k])
        n = sum(self.by_outcome.values())
        return f"{n} drafts in {self.attempts} calls: {parts or 'none'}"


def example_block(record: RubricRecord) -> str:
    criteria = [{k: v for k, v in c.items() if k in ("id", "text", "tier", "weight", "axis")}
                for c in record_to_dict(record)["criteria"][:MAX_EXAMPLE_CRITERIA]]
    instruction = "\n".join(m.content for m in record.messages if m.role == "user")
    return EXAMPLE.format(instruction=instruction, rubric=json.dumps({"criteria": criteria}, ensure_ascii=False))


def draft_prompt(instruction: Instruction, examples: Sequence[RubricRecord]) -> str:
    return EXPERT_PROMPT.format(examples="".join(example_block(r) for r in examples),
                                instruction=instruction.text())


def _loose_criteria(obj: Any) -> tuple[dict[str, Any], ...]:
    """Whatever criterion objects a reply holds, kept for the reviewer even when they fail validation."""
    items = obj.get("criteria") if isinstance(obj, dict) else obj
    if not isinstance(items, list):
        return ()
    return tuple(c for c in items if isinstance(c, dict))


def parse_draft(instruction: Instruction, raw: str) -> tuple[str, tuple[dict, ...], tuple[str, ...]]:
    """(outcome, criteria, problems) of one reply, checked by the canonical record validator."""
    text = raw.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return "no_json", (), ("the reply holds no JSON object",)
    end = max(text.rfind("}"), text.rfind("]"))
    try:                                  # a reply cut off before its closing brace is bad JSON, not prose
        obj = json.loads(text[min(starts):end + 1 if end > min(starts) else len(text)])
    except json.JSONDecodeError as exc:
        return "bad_json", (), (f"invalid JSON ({exc.msg} at column {exc.colno})",)
    criteria = _loose_criteria(obj)
    record = {"prompt_id": instruction.prompt_id, "criteria": list(criteria),
              "messages": [{"role": m.role, "content": m.content} for m in instruction.messages]}
    try:
        valid = record_from_dict(record)
    except RecordProblems as exc:
        return "invalid_rubric", criteria, tuple(exc.problems)
    return "ok", tuple(record_to_dict(valid)["criteria"]), ()


def _attempt(completer: Completer, todo: list[int], prompts: list[str],
             instructions: Sequence[Instruction], drafts: dict[int, Draft], counts: DraftCounts) -> None:
    replies = completer.complete_many([prompts[i] for i in todo])
    counts.attempts += len(todo)
    for i, reply in zip(todo, replies):
        tries = drafts[i].attempts + 1 if i in drafts else 1
        if isinstance(reply, CallFailed):
            drafts[i] = Draft(instructions[i], reply.code, (), (f"call failed: {reply.code}",), "", tries)
        else:
            outcome, criteria, problems = parse_draft(instructions[i], reply)
            drafts[i] = Draft(instructions[i], outcome, criteria, problems, reply, tries)


def draft_all(completer: Completer, instructions: Sequence[Instruction],
              examples_for: Callable[[Instruction], Sequence[RubricRecord]], *, retries: int = 2,
              backoff_s: float = 0.5) -> tuple[list[Draft], DraftCounts]:
    """One Draft per instruction, in order; a failed or invalid draft is retried up to `retries` times."""
    prompts = [draft_prompt(inst, examples_for(inst)) for inst in instructions]
    drafts: dict[int, Draft] = {}
    counts = DraftCounts()
    todo = list(range(len(instructions)))
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * (2 ** (attempt - 1)))
        _attempt(completer, todo, prompts, instructions, drafts, counts)
        todo = [i for i in todo if drafts[i].outcome != "ok"]
        if not todo:
            break
    out = [drafts[i] for i in range(len(instructions))]
    counts.by_outcome.update(d.outcome for d in out)
    return out, counts


def _call_code(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return "http_error"
    if isinstance(exc, (TimeoutError, OSError)):
        return "timeout" if "timed out" in str(exc) else "connection"
    return "bad_reply"


class EndpointCompleter:
    """Chat completions from an OpenAI-compatible endpoint (OpenAI, vLLM serve, llama.cpp server, ...).

    Sampled, not greedy (unlike the judge client in reward/judge.py): a retry after an invalid draft
    should be able to come out differently.
    """

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60,
                 max_tokens: int = 1024, temperature: float = 0.7, concurrency: int = 4) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key, self.timeout_s = model, api_key, timeout_s
        self.max_tokens, self.temperature, self.concurrency = max_tokens, temperature, concurrency

    def _post(self, prompt: str) -> str:
        return chat_completion(self.url, self.model, prompt, api_key=self.api_key, temperature=self.temperature,
                               max_tokens=self.max_tokens, timeout_s=self.timeout_s)

    def _one(self, prompt: str) -> str | CallFailed:
        try:
            return self._post(prompt)
        except Exception as exc:          # any failed call is an outcome to count, never a crash
            return CallFailed(_call_code(exc))

    def complete_many(self, prompts: Sequence[str]) -> list[str | CallFailed]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(self._one, prompts))


class VLLMCompleter:
    """A local model through vllm.LLM, all prompts of an attempt in one generate call."""

    def __init__(self, *, model: str, max_tokens: int = 1024, **llm_kwargs: Any) -> None:
        from vllm import LLM, SamplingParams  # heavy: imported only when drafting with a local model

        self.llm = LLM(model=model, **llm_kwargs)
        self.params = SamplingParams(temperature=0.7, max_tokens=max_tokens)

    def complete_many(self, prompts: Sequence[str]) -> list[str | CallFailed]:
        outputs = self.llm.chat([[{"role": "user", "content": p}] for p in prompts], self.params, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]
