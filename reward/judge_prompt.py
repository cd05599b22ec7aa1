"""The LLM judge's prompt: a versioned template, its required placeholders, and the two answer formats.

A template has {instruction}, {response}, {criterion} and {answer} (and may use {meaning}, the tier's
convention). The criterion comes after the instruction and the response, so every criterion of one
response shares the same prompt prefix and an engine's prefix cache computes it once.
{answer} is filled by the judge kind: "json" for an endpoint (parsed, reward/judge.py), "choice" for a
local engine whose decoding is constrained to "yes" or "no" (actors/judge.py).
"""
from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from pathlib import Path

from promedical.reward.rubric import Criterion, Tier

TEMPLATE_V1 = """You are grading one response of an AI assistant against ONE rubric criterion.

# Conversation
{instruction}

# Response to grade
{response}

# Criterion
{criterion}

{meaning}
{answer}"""

BUILTIN_TEMPLATES = {"v1": TEMPLATE_V1}
REQUIRED = ("instruction", "response", "criterion", "answer")
OPTIONAL = ("meaning",)

ANSWERS = {
    "json": 'Answer with only a JSON object: {"explanation": "<one sentence>", "criteria_met": true or false}',
    "choice": "Is criteria_met true? Answer with one word, yes or no.",
}

MEANING = {
    Tier.VETO: "This criterion describes an undesirable behaviour: criteria_met is true when the response "
               "shows that behaviour.",
    Tier.PROFICIENCY: "criteria_met is true when the response fully satisfies the criterion.",
    Tier.BONUS: "criteria_met is true when the response fully satisfies the criterion.",
}


@dataclass(frozen=True)
class JudgeTemplate:
    """A template's text and its version: the builtin name, or file name + sha1 prefix of the text."""

    text: str
    version: str

    def render(self, instruction: str, response: str, criterion: Criterion, answer: str) -> str:
        return self.text.format(instruction=instruction, response=response, criterion=criterion.text,
                                meaning=MEANING[criterion.tier], answer=ANSWERS[answer])


def template_problem(text: str) -> str | None:
    """Why `text` cannot be a judge template, or None."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        return f"is not a format string ({exc}); write literal braces as {{{{ and }}}}"
    missing = [f for f in REQUIRED if f not in fields]
    if missing:
        return f"lacks the placeholder(s) {', '.join('{' + f + '}' for f in missing)}"
    unknown = sorted(set(fields) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        return f"has unknown placeholder(s) {', '.join('{' + f + '}' for f in unknown)}"
    first = {f: fields.index(f) for f in REQUIRED}
    if not first["instruction"] < first["criterion"] > first["response"]:
        return "puts {criterion} before {instruction} or {response}; the criterion comes last (prefix reuse)"
    return None


def load_template(spec: str) -> JudgeTemplate:
    """A builtin template name (v1) or a text file; ValueError naming the problem otherwise."""
    if spec in BUILTIN_TEMPLATES:
        return JudgeTemplate(BUILTIN_TEMPLATES[spec], spec)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ValueError(f"is neither a builtin template ({', '.join(BUILTIN_TEMPLATES)}) nor a file")
    text = path.read_text(encoding="utf-8")
    problem = template_problem(text)
    if problem:
        raise ValueError(problem)
    return JudgeTemplate(text, f"{path.name}@{hashlib.sha1(text.encode()).hexdigest()[:10]}")


DEFAULT_TEMPLATE = JudgeTemplate(TEMPLATE_V1, "v1")
