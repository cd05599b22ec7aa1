r"""Answer extraction for closed QA: a documented ladder of rules, first match wins, else unparseable.

MedQA (options A-D), applied to the response with markdown emphasis (`*`, `_`) removed:
  1. explicit   the last "answer is C", "Answer: (C)", "The correct answer is:\nC. ..."
  -  list       else, two or more lines open with different option letters ("A. ...\nB. ..."): the
                model restated the options instead of choosing, so the answer is unparseable
  2. leading    the response opens with the letter alone: "C", "C.", "(C)", "C)", "C:" (not "A 45-year-old")
  3. text       the response contains the full text of exactly one option (case and spacing ignored)
  4. mention    exactly one letter is named as an option anywhere: "(C)", "C)", "C.", "option C"
  otherwise unparseable (None): two different letters with nothing to choose between them, or none.
PubMedQA (yes / no / maybe):
  1. explicit   the last "answer is yes", "Answer: no", "the answer to the question is:\n\nYes"
  2. leading    the response opens with the word: "Yes, ...", "No.", "Maybe"
  3. sole       exactly one of the three words occurs in the first sentence
  otherwise unparseable (None).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

LETTERS = "ABCD"
LABELS = ("yes", "no", "maybe")

_EMPHASIS = re.compile(r"[*_`]+")
_MCQ_EXPLICIT = re.compile(r"(?i:answer)(?:\s+(?i:is|would be|should be))?\s*[:\-=]?\s*(?i:option\s+)?"
                           r"\(?([A-D])(?![A-Za-z0-9])")
_MCQ_LINE_START = re.compile(r"^[ \t]*\(?([A-D])[\).:]", re.M)
_MCQ_LEADING = re.compile(r"^\s*\(?([A-D])(?:\s*$|[\).:\n])")
_MCQ_MENTION = re.compile(r"\(([A-D])\)|(?<![A-Za-z0-9])([A-D])[\).](?!\w)|(?i:option)\s+([A-D])(?![A-Za-z0-9])")
_QA_EXPLICIT = re.compile(r"(?i)\banswer\b(?:[^.\n:]{0,60}?\b(?:is|would be))?\s*[:\-=]?\W{0,4}(yes|no|maybe)\b")
_QA_LEADING = re.compile(r"(?i)^\W*(yes|no|maybe)\b")
_QA_WORD = re.compile(r"(?i)\b(yes|no|maybe)\b")
_SENTENCE_END = re.compile(r"[.!?\n]")


@dataclass(frozen=True)
class Extraction:
    """The extracted answer (None = unparseable) and the rule of the ladder that produced it."""

    answer: str | None
    rule: str                          # "list" | "explicit" | "leading" | "text" | "mention" | "sole" | "none"


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


def extract_choice(response: str, options: Mapping[str, str]) -> Extraction:
    """The option letter a MedQA response commits to, by the ladder in the module docstring."""
    text = _EMPHASIS.sub("", response)
    explicit = _MCQ_EXPLICIT.findall(text)
    if explicit:
        return Extraction(explicit[-1], "explicit")
    if len(set(_MCQ_LINE_START.findall(text))) >= 2:
        return Extraction(None, "list")
    leading = _MCQ_LEADING.match(text)
    if leading:
        return Extraction(leading.group(1), "leading")
    squashed = _squash(text)
    by_text = {k for k, v in options.items()
               if _squash(v) and re.search(rf"(?<!\w){re.escape(_squash(v))}(?!\w)", squashed)}
    if len(by_text) == 1:
        return Extraction(by_text.pop(), "text")
    mentioned = {next(g for g in m if g) for m in _MCQ_MENTION.findall(text)}
    if len(mentioned) == 1:
        return Extraction(mentioned.pop(), "mention")
    return Extraction(None, "none")


def extract_decision(response: str) -> Extraction:
    """yes / no / maybe from a PubMedQA response, by the ladder in the module docstring."""
    text = _EMPHASIS.sub("", response)
    explicit = _QA_EXPLICIT.findall(text)
    if explicit:
        return Extraction(explicit[-1].lower(), "explicit")
    leading = _QA_LEADING.match(text)
    if leading:
        return Extraction(leading.group(1).lower(), "leading")
    first = _SENTENCE_END.split(text.strip(), maxsplit=1)[0]
    words = {w.lower() for w in _QA_WORD.findall(first)}
    if len(words) == 1:
        return Extraction(words.pop(), "sole")
    return Extraction(None, "none")
