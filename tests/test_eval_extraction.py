"""Answer extraction on real SmolLM2-135M-Instruct outputs (tests/fixtures/eval, made by make_fixtures.py)."""
import json
from collections import Counter
from pathlib import Path

import pytest

from promedical.evaluation.extraction import extract_choice, extract_decision

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
OPTIONS = {"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Observation only"}


def rows(name):
    return [json.loads(line) for line in (FIXTURES / f"smollm2_{name}.jsonl").read_text().splitlines()]


def test_medqa_fixtures_hand_checked():
    for row in rows("medqa"):
        got = extract_choice(row["response"], row["options"])
        assert (got.answer, got.rule) == (row["expected"], row["expected_rule"]), row["response"][:80]


def test_pubmedqa_fixtures_hand_checked():
    for row in rows("pubmedqa"):
        got = extract_decision(row["response"])
        assert (got.answer, got.rule) == (row["expected"], row["expected_rule"]), row["response"][:80]


def test_fixtures_cover_the_messy_cases():
    medqa = Counter(r["expected_rule"] for r in rows("medqa"))
    pubmedqa = Counter(r["expected_rule"] for r in rows("pubmedqa"))
    assert medqa["list"] >= 1 and medqa["explicit"] >= 1 and medqa["leading"] >= 1
    assert pubmedqa["none"] >= 1 and pubmedqa["explicit"] >= 1


def test_medqa_real_messy_outputs():
    def by_start(prefix):
        return next(r for r in rows("medqa") if r["response"].startswith(prefix))

    # restates a question phrase as "A. ...", then commits: "The correct answer is:\nB. ..."
    r = by_start("A. 3-month-old infant is")
    assert extract_choice(r["response"], r["options"]).answer == "B"
    # echoes all four options line by line: no choice was made
    r = by_start("A. Gram stain positive CSF")
    assert extract_choice(r["response"], r["options"]).answer is None


@pytest.mark.parametrize("text,answer,rule", [
    ("**Answer: (C)**", "C", "explicit"),
    ("The answer is B, not A.", "B", "explicit"),
    ("C", "C", "leading"),
    ("(D) Observation only", "D", "leading"),
    ("A 45-year-old should get heparin", "B", "text"),
    ("I would give heparin rather than aspirin", None, "none"),
    ("Both (A) and (C) are plausible", None, "none"),
    ("Giving option C seems right", "C", "mention"),
    ("", None, "none"),
])
def test_medqa_ladder(text, answer, rule):
    got = extract_choice(text, OPTIONS)
    assert (got.answer, got.rule) == (answer, rule)


@pytest.mark.parametrize("text,answer,rule", [
    ("The answer is:\nyes", "yes", "explicit"),
    ("Answer: **Maybe**", "maybe", "explicit"),
    ("No, it does not.", "no", "leading"),
    ("The data suggest yes. But no trial was randomised.", "yes", "sole"),
    ("Whether yes or no is unclear.", None, "none"),
    ("The study measured blood pressure.", None, "none"),
])
def test_pubmedqa_ladder(text, answer, rule):
    got = extract_decision(text)
    assert (got.answer, got.rule) == (answer, rule)
