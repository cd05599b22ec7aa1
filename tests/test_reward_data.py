"""Rubric data: importers on the real files in ../shared/data, JSONL <-> Parquet round trips, flat shapes."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from promedical.cli.main import main
from promedical.errors import UserError
from promedical.reward.importers import IMPORTERS, expand_inputs
from promedical.reward.rubric import Tier
from promedical.reward.rubric_io import check_records, load_records

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HB_DIR, KQA = SHARED / "healthbench", SHARED / "kqa" / "questions_w_answers.jsonl"
def _statements(value) -> list[str]:
    """K-QA stores statement lists as JSON lists or as their Python repr."""
    return ast.literal_eval(value) if isinstance(value, str) else list(value)


needs_shared = pytest.mark.skipif(not HB_DIR.is_dir(), reason="../shared/data not present")


@needs_shared
def test_healthbench_imports_every_criterion_with_its_points_and_tags():
    paths = expand_inputs(HB_DIR)
    records = IMPORTERS["healthbench"](paths)
    assert len(records) == 30 and not check_records(records)
    for path, rec in zip(paths, records):
        src = json.loads(path.read_text())
        assert rec.prompt_id == src["prompt_id"]
        assert [c.text for c in rec.criteria] == [r["criterion"] for r in src["rubrics"]]
        for c, r in zip(rec.criteria, src["rubrics"]):
            assert c.tags == (f"points:{r['points']:g}", *r["tags"])
            assert (c.tier is Tier.VETO) == (r["points"] < 0)
    counts = {t: sum(len(r.by_tier(t)) for r in records) for t in Tier}
    assert sum(counts.values()) == 352 and counts[Tier.VETO] == 102


@needs_shared
def test_kqa_imports_every_non_blank_statement():
    records = IMPORTERS["kqa"]([KQA])
    rows = [json.loads(line) for line in KQA.read_text().splitlines() if line.strip()]
    assert len(records) == len(rows) == 201 and not check_records(records)
    for rec, row in zip(records, rows):
        must = [s.strip() for s in _statements(row["Must_have"]) if s.strip()]
        assert [c.text for c in rec.by_tier(Tier.PROFICIENCY)] == must
    assert sum(len(r.by_tier(Tier.BONUS)) for r in records) == 697


@needs_shared
@pytest.mark.parametrize("fmt, src", [("healthbench", HB_DIR), ("kqa", KQA)])
def test_cli_import_then_export_round_trips(tmp_path, capsys, fmt, src):
    assert main(["data", "import", "--from", fmt, str(src), str(tmp_path / "a.parquet")]) == 0
    assert "proficiency" in capsys.readouterr().out
    assert main(["data", "convert", str(tmp_path / "a.parquet"), str(tmp_path / "b.jsonl")]) == 0
    assert main(["data", "convert", str(tmp_path / "b.jsonl"), str(tmp_path / "c.parquet")]) == 0
    direct = IMPORTERS[fmt](expand_inputs(src))
    assert load_records(tmp_path / "a.parquet") == direct
    assert load_records(tmp_path / "b.jsonl") == direct == load_records(tmp_path / "c.parquet")


def test_shipped_files_round_trip_through_parquet(tmp_path):
    from promedical.reward.rubric_parquet import write_parquet
    data = Path(__file__).resolve().parents[1] / "data"
    for name in ("medical.jsonl", "pairs_heldout.jsonl"):
        records = load_records(data / name)
        write_parquet(records, tmp_path / "x.parquet")
        assert load_records(tmp_path / "x.parquet") == records


@needs_shared
def test_flat_points_on_healthbench_rubrics(tmp_path):
    lines = []
    for path in expand_inputs(HB_DIR)[:5]:
        src = json.loads(path.read_text())
        lines.append(json.dumps({"id": src["prompt_id"], "prompt": src["prompt"],
                                 "rubric": [{"criterion": r["criterion"], "points": r["points"]} for r in src["rubrics"]]}))
    (tmp_path / "flat.jsonl").write_text("\n".join(lines) + "\n")
    records = IMPORTERS["flat-points"]([tmp_path / "flat.jsonl"])
    hb = IMPORTERS["healthbench"](expand_inputs(HB_DIR)[:5])
    for flat, ref in zip(records, hb):
        assert flat.prompt_id == ref.prompt_id and flat.messages == ref.messages
        assert [(c.text, c.tier is Tier.VETO) for c in flat.criteria] == [(c.text, c.tier is Tier.VETO) for c in ref.criteria]


@needs_shared
def test_flat_weighted_on_kqa_statements(tmp_path):
    rows = [json.loads(line) for line in KQA.read_text().splitlines()[:5]]
    items = []
    for row in rows:
        must = [s for s in _statements(row["Must_have"]) if s.strip()]
        nice = [s for s in _statements(row["Nice_to_have"]) if s.strip()]
        rubric = [{"title": "Essential Criteria", "description": s, "weight": 5} for s in must]
        rubric += [{"title": "Optional Criteria", "description": s, "weight": 1} for s in nice]
        rubric.append({"title": "Pitfall Criteria", "description": "Claims to be a doctor.", "weight": -1})
        items.append({"question": row["Question"], "rubric": rubric})
    (tmp_path / "rar.json").write_text(json.dumps(items))
    records = IMPORTERS["flat-weighted"]([tmp_path / "rar.json"])
    assert len(records) == 5 and not check_records(records)
    assert [c.tier for c in records[0].criteria][-1] is Tier.VETO
    assert records[0].criteria[0].weight == 5.0 and records[0].criteria[0].text.startswith("Essential Criteria: ")
    assert records[0].prompt_id == "rar-0000"


@pytest.mark.parametrize("item, message", [
    ({"criterion": "x", "points": 0}, "points: 0 carries no preference"),
    ({"criterion": "x", "points": "5"}, "is not a finite number"),
    ({"text": "x", "points": 5}, "expected {criterion"),
])
def test_flat_points_bad_items(tmp_path, item, message):
    (tmp_path / "f.jsonl").write_text(json.dumps({"prompt": "q", "rubric": [item]}) + "\n")
    with pytest.raises(UserError, match=message) as err:
        IMPORTERS["flat-points"]([tmp_path / "f.jsonl"])
    assert "f.jsonl:1" in str(err.value)


def test_failed_import_writes_nothing(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.json").write_text('{"prompt_id": "p", "prompt": [')
    assert main(["data", "import", "--from", "healthbench", str(tmp_path / "in"), str(tmp_path / "out.jsonl")]) == 2
    assert "a.json" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_import_with_invalid_records_writes_nothing(tmp_path, capsys):
    (tmp_path / "f.jsonl").write_text(json.dumps({"prompt": "q", "rubric": [{"criterion": "bad", "points": -3}]}) + "\n")
    assert main(["data", "import", "--from", "flat-points", str(tmp_path / "f.jsonl"), str(tmp_path / "o.parquet")]) == 2
    assert "no proficiency criterion" in capsys.readouterr().err
    assert not (tmp_path / "o.parquet").exists()
