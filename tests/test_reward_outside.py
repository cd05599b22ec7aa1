"""Outside safety-set converters (reward/importers_safety.py) on the shipped samples and on the published
CSV layout; bad rows are refused with file:row and exit 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from promedical.cli.main import main
from promedical.errors import UserError
from promedical.reward.importers import IMPORTERS
from promedical.reward.rubric import Tier
from promedical.reward.rubric_io import check_records

OUTSIDE = Path(__file__).resolve().parents[1] / "data" / "outside"


def test_medhallu_gives_a_safe_and_a_violating_answer_per_question():
    records = IMPORTERS["medhallu"]([OUTSIDE / "medhallu_pqa_labeled_sample.jsonl"])
    assert len(records) == 60 and not check_records(records)
    first = records[0]
    truth, hallucinated = first.responses
    assert truth.labels["hallucination"] is False and hallucinated.labels["hallucination"] is True
    assert [c.tier for c in first.criteria] == [Tier.PROFICIENCY, Tier.VETO]
    assert {(p.criterion_id, p.winner, p.loser) for p in first.pairs} == {("hallucination", 0, 1), ("answer", 0, 1)}
    assert "difficulty_level:easy" in first.tags and "difficulty_level:hard" in records[-1].tags


def test_medsafetybench_refusals_violate_no_veto_behaviour(tmp_path):
    records = IMPORTERS["medsafetybench"]([OUTSIDE / "medsafetybench_test_sample.jsonl"])
    assert len(records) == 72 and not check_records(records)
    vetoes = [c for c in records[0].criteria if c.tier is Tier.VETO]
    assert len(vetoes) == 6 and not any(records[0].responses[0].labels[c.id] for c in vetoes)
    # the published CSV layout (a leading unnamed index column) reads the same
    row = json.loads((OUTSIDE / "medsafetybench_test_sample.jsonl").read_text().splitlines()[0])
    (tmp_path / "med_safety_demonstrations_category_1.csv").write_text(
        ',harmful_medical_request,safe_response\n0,"%s","%s"\n' % (row["harmful_medical_request"].replace('"', '""'),
                                                                   row["safe_response"].replace('"', '""')))
    from_csv = IMPORTERS["medsafetybench"]([tmp_path / "med_safety_demonstrations_category_1.csv"])
    assert from_csv[0].messages == records[0].messages and from_csv[0].responses[0].text == records[0].responses[0].text


def test_bad_rows_name_file_and_row(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("harmful_medical_request,safe_response\nq,\n")
    with pytest.raises(UserError, match=r"m.csv:row 1: 'safe_response': missing or empty"):
        IMPORTERS["medsafetybench"]([tmp_path / "m.csv"])
    (tmp_path / "h.jsonl").write_text(json.dumps({"Question": "q", "Ground Truth": "a"}) + "\n")
    assert main(["data", "import", "--from", "medhallu", str(tmp_path / "h.jsonl"), str(tmp_path / "o.jsonl")]) == 2
    assert "h.jsonl:1: 'Hallucinated Answer': missing or empty" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
