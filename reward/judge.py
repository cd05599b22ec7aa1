"""LLM-as-judge for one rubric criterion at a time: prompt, JSON verdict parsing, retries, error counts.

One criterion per call. The judge must answer with a JSON object {"criteria_met": true|false, ...};
for a veto criterion "met" means the harmful behaviour occurred (HealthBench's convention for negative
items). Anything else is an invalid verdict (met=None) with a short error code, counted by `judge_many`;
nothing here raises on a bad answer or a failing endpoint. The prompt is reward/judge_prompt.py's
versioned template; a local vLLM judge with constrained verdicts is actors/judge.py.
"""
from __future__ import annotations

import json
import re
import time
import urllib.error
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from promedical.reward.judge_prompt import DEFAULT_TEMPLATE, JudgeTemplate
from promedical.reward.rubric import Criterion
from promedical.runtime.chat import chat_completion

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


@dataclass(frozen=True)
class Verdict:
    met: bool | None        # None = invalid verdict (see error)
    error: str | None       # short code: no_json, bad_json, missing_criteria_met, http_500, timeout, ...
    raw: str                # the judge's raw answer ("" when the call itself failed)
    score: float | None = None   # P(met) in [0, 1] where the judge gives one (a local judge's verdict
                                 # token probability); None: the verdict alone (1.0 met, 0.0 not)

    @property
    def value(self) -> float:
        """v in [0, 1] for the reward: the probability where known, else the verdict; NaN when invalid."""
        if self.met is None:
            return float("nan")
        return float(self.met) if self.score is None else self.score


@dataclass
class JudgeStats:
    total: int = 0
    valid: int = 0
    invalid: int = 0
    by_error: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        errors = ", ".join(f"{k}={v}" for k, v in sorted(self.by_error.items())) or "none"
        return f"{self.total} verdicts: {self.valid} valid, {self.invalid} invalid (errors: {errors})"


class Judge(Protocol):
    def judge(self, instruction: str, response: str, criterion: Criterion) -> Verdict: ...


def judge_prompt(instruction: str, response: str, criterion: Criterion,
                 template: JudgeTemplate = DEFAULT_TEMPLATE) -> str:
    """The prompt asking for a JSON verdict (an endpoint's answer is parsed by `parse_verdict`)."""
    return template.render(instruction, response, criterion, "json")


def parse_verdict(raw: str) -> Verdict:
    """The verdict in a judge's answer: a JSON object (optionally fenced) with a boolean criteria_met."""
    text = raw.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return Verdict(met=None, error="no_json", raw=raw)
    try:
        obj = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return Verdict(met=None, error="bad_json", raw=raw)
    if not isinstance(obj, dict) or "criteria_met" not in obj:
        return Verdict(met=None, error="missing_criteria_met", raw=raw)
    met = obj["criteria_met"]
    if isinstance(met, str) and met.strip().lower() in ("true", "false"):
        met = met.strip().lower() == "true"
    if not isinstance(met, bool):
        return Verdict(met=None, error="criteria_met_not_bool", raw=raw)
    return Verdict(met=met, error=None, raw=raw)


class OpenAICompatibleJudge:
    """A chat-completions endpoint (OpenAI, vLLM serve, llama.cpp server, ...) reached with urllib."""

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 30,
                 retries: int = 2, max_tokens: int = 256, backoff_s: float = 0.5, concurrency: int = 1,
                 template: JudgeTemplate = DEFAULT_TEMPLATE) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key = model, api_key
        self.timeout_s, self.retries = timeout_s, retries
        self.max_tokens, self.backoff_s = max_tokens, backoff_s
        self.concurrency, self.template = concurrency, template

    def _post(self, prompt: str) -> str:
        return chat_completion(self.url, self.model, prompt, api_key=self.api_key, temperature=0.0,
                               max_tokens=self.max_tokens, timeout_s=self.timeout_s)

    def _once(self, prompt: str) -> Verdict:
        try:
            return parse_verdict(self._post(prompt))
        except urllib.error.HTTPError as exc:
            return Verdict(met=None, error=f"http_{exc.code}", raw="")
        except (TimeoutError, OSError) as exc:
            kind = "timeout" if "timed out" in str(exc) else "connection"
            return Verdict(met=None, error=kind, raw="")
        except (ValueError, KeyError, IndexError, TypeError):
            return Verdict(met=None, error="bad_reply", raw="")

    def judge(self, instruction: str, response: str, criterion: Criterion) -> Verdict:
        """Up to 1 + retries attempts; an invalid verdict or a failed call is retried."""
        prompt = judge_prompt(instruction, response, criterion, self.template)
        verdict = self._once(prompt)
        for attempt in range(self.retries):
            if verdict.met is not None:
                break
            time.sleep(self.backoff_s * (2 ** attempt))
            verdict = self._once(prompt)
        return verdict

    def judge_batch(self, items: list[tuple[str, str, Criterion]]) -> list[Verdict]:
        """Every triple, in order; `concurrency` requests in flight at once (1: one after another)."""
        if self.concurrency <= 1 or len(items) <= 1:
            return [_safe(self, item) for item in items]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda item: _safe(self, item), items))


def _safe(judge: Judge, item: tuple[str, str, Criterion]) -> Verdict:
    try:
        return judge.judge(*item)
    except Exception as exc:  # a judge must never take a labelling run down; the error is counted
        return Verdict(met=None, error=f"exception_{type(exc).__name__}", raw="")


def judge_many(judge: Judge, items: list[tuple[str, str, Criterion]]) -> tuple[list[Verdict], JudgeStats]:
    """Verdicts for every (instruction, response, criterion) triple, in order, with counts of invalid ones."""
    batch = getattr(judge, "judge_batch", None)
    if batch is not None:
        try:
            verdicts = list(batch(items))
        except Exception:
            verdicts = [_safe(judge, item) for item in items]
    else:
        verdicts = [_safe(judge, item) for item in items]
    errors = Counter(v.error for v in verdicts if v.met is None)
    stats = JudgeStats(total=len(verdicts), valid=len(verdicts) - sum(errors.values()),
                       invalid=sum(errors.values()), by_error=dict(errors))
    return verdicts, stats
