"""RaR and RubricHub importers (reward/importers_rubricsets.py) on fixture files in the published layouts:
one test per tier mapping, JSONL and Parquet alike, and the refusals (file:line, exit 2, nothing written)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from promedical.cli.main import main
from promedical.errors import UserError
from promedical.reward.importers import IMPORTERS, expand_inputs
from promedical.reward.rubric import Tier
from promedical.reward.rubric_io import check_records, load_records

FIXTURES = Path(__file__).parent / "fixtures" / "rubricsets"
RAR, HUB = FIXTURES / "rar.jsonl", FIXTURES / "rubrichub.jsonl"


def as_parquet(src: Path, out: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist([json.loads(line) for line in src.read_text().splitlines()]), out)
    return out


def by_category(records, category: str):
    return [c for r in records for c in r.criteria if f"rar:{category}" in c.tags]


@pytest.fixture(params=["jsonl", "parquet"])
def rar_records(request, tmp_path):
    path = RAR if request.param == "jsonl" else as_parquet(RAR, tmp_path / "train-00000-of-00001.parquet")
    records = IMPORTERS["rar"]([path])
    assert len(records) == 2 and not check_records(records)
    return records


def test_rar_essential_and_important_are_proficiency_weighted(rar_records):
    essential, important = by_category(rar_records, "essential"), by_category(rar_records, "important")
    assert len(essential) == 3 and len(important) == 2
    assert all(c.tier is Tier.PROFICIENCY for c in essential + important)
    assert [c.weight for c in essential] == [5.0, 5.0, 5.0] and [c.weight for c in important] == [4.0, 3.0]
    assert essential[0].text == "States that ibuprofen with warfarin increases the risk of bleeding."
    assert "title:NSAID bleeding risk" in essential[0].tags


def test_rar_optional_is_bonus(rar_records):
    optional = by_category(rar_records, "optional")
    assert len(optional) == 2 and all(c.tier is Tier.BONUS and c.weight == 0 for c in optional)


def test_rar_pitfall_is_veto(rar_records):
    pitfall = by_category(rar_records, "pitfall")
    assert [c.tier for c in pitfall] == [Tier.VETO, Tier.VETO]
    assert pitfall[0].text == "Says that taking ibuprofen with warfarin is safe." and "weight:-2" in pitfall[0].tags


def test_rar_keeps_the_reference_answer_and_source(rar_records):
    first = rar_records[0]
    assert first.prompt_id == "rar-00000" and first.messages[0].content.startswith("A 58-year-old man")
    assert first.responses[0].text.startswith("He should avoid ibuprofen") and first.source == "rar"
    assert "question_source:written-for-promedical-tests" in first.tags


def test_rar_without_prefix_takes_the_category_from_the_weight(tmp_path):
    row = {"question": "q", "rubric": [{"title": "t", "description": "Names the drug.", "weight": 3},
                                       {"title": "p", "description": "Invents a dose.", "weight": -1}]}
    (tmp_path / "r.jsonl").write_text(json.dumps(row) + "\n")
    first, second = IMPORTERS["rar"]([tmp_path / "r.jsonl"])[0].criteria
    assert (first.tier, first.weight, second.tier) == (Tier.PROFICIENCY, 3.0, Tier.VETO)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_rubrichub_points_map_to_proficiency_and_veto(fmt, tmp_path):
    path = HUB if fmt == "jsonl" else as_parquet(HUB, tmp_path / "medical.parquet")
    records = IMPORTERS["rubrichub"]([path])
    assert len(records) == 2 and not check_records(records)
    first = records[0]
    assert first.prompt_id == "medical-0001" and records[1].prompt_id == "rubrichub-00001"
    assert [(c.tier, c.weight) for c in first.criteria] == [(Tier.PROFICIENCY, 8.0), (Tier.PROFICIENCY, 7.0),
                                                            (Tier.PROFICIENCY, 3.0), (Tier.VETO, 0.0)]
    assert "points:-6" in first.criteria[3].tags
    assert "Uses a friendly tone." not in [c.text for c in first.criteria]      # 0 points: dropped


@pytest.mark.parametrize("name, row, message", [
    ("rar", {"rubric": [{"description": "Essential Criteria: x", "weight": 5}]}, "question: missing or empty"),
    ("rar", {"question": "q", "rubric": []}, "rubric: missing, empty or not a list"),
    ("rar", {"question": "q", "rubric": [{"title": "t", "weight": 5}]}, r"rubric\[0\]: expected"),
    ("rar", {"question": "q", "rubric": [{"description": "Essential Criteria: x", "weight": "5"}]},
     "is not a finite number"),
    ("rar", {"question": "q", "rubric": [{"description": "Essential Criteria: x", "weight": 0}]},
     "0 carries no preference"),
    ("rar", {"question": "q", "rubric": [{"description": "Pitfall Criteria: x", "weight": 2}]},
     "2 for a Pitfall item"),
    ("rar", {"question": "q", "rubric": [{"description": "Essential Criteria: x", "weight": -5}]},
     "-5 for a Essential item"),
    ("rubrichub", {"question": "q", "rubrics": [{"criterion": "x", "points": float("nan")}]},
     "is not a finite number"),
    ("rubrichub", {"question": "q", "rubrics": [{"points": 3}]}, r"rubrics\[0\]: expected"),
    ("rubrichub", {"question": "q", "rubrics": [{"criterion": "x", "points": 0}]}, "every item has 0 points"),
])
def test_bad_rows_are_refused_with_file_and_line(tmp_path, name, row, message):
    good = {"rar": json.loads(RAR.read_text().splitlines()[0]), "rubrichub": json.loads(HUB.read_text().splitlines()[0])}
    (tmp_path / "f.jsonl").write_text(json.dumps(good[name]) + "\n\n" + json.dumps(row) + "\n")
    with pytest.raises(UserError, match=message) as err:
        IMPORTERS[name]([tmp_path / "f.jsonl"])
    assert f"{tmp_path / 'f.jsonl'}:3" in str(err.value)


def test_bad_parquet_row_names_the_row(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text(HUB.read_text() + json.dumps({"question": "", "id": "x", "rubrics": [{"criterion": "c", "points": 1}]}) + "\n")
    with pytest.raises(UserError, match=r"bad.parquet:row 3: question"):
        IMPORTERS["rubrichub"]([as_parquet(src, tmp_path / "bad.parquet")])


def test_cli_imports_a_parquet_directory_and_refuses_bad_rows(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    as_parquet(RAR, tmp_path / "in" / "test-00000-of-00001.parquet")
    assert expand_inputs(tmp_path / "in") == [tmp_path / "in" / "test-00000-of-00001.parquet"]
    assert main(["data", "import", "--from", "rar", str(tmp_path / "in"), str(tmp_path / "rar.jsonl")]) == 0
    assert "proficiency 5, bonus 2, veto 2" in capsys.readouterr().out
    assert len(load_records(tmp_path / "rar.jsonl")) == 2
    (tmp_path / "bad.jsonl").write_text('{"question": "q", "rubrics": [{"criterion": "c", "points": "high"}]}\n')
    assert main(["data", "import", "--from", "rubrichub", str(tmp_path / "bad.jsonl"), str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:1: rubrics[0].points: 'high' is not a finite number" in err and not (tmp_path / "o.jsonl").exists()
