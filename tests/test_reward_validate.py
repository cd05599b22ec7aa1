"""`promedical data validate`: every malformed case gets a clear FILE:LINE error, exit 2, nothing written."""
from __future__ import annotations

import copy
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from promedical.cli.main import main

GOOD = {"prompt_id": "p0", "messages": [{"role": "user", "content": "I have a headache."}],
        "criteria": [{"id": "c0", "text": "Asks about duration.", "tier": "proficiency", "weight": 1.0},
                     {"id": "v0", "text": "Claims to be a doctor.", "tier": "veto"}],
        "responses": [{"text": "How long has it lasted?", "labels": {"c0": True}}],
        "pairs": []}


def _bad(edit) -> bytes:
    rec = copy.deepcopy(GOOD)
    rec["prompt_id"] = "p1"
    edit(rec)
    return json.dumps(rec).encode()


def _set(path, value):
    def edit(rec):
        obj = rec
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return edit


def _del(path):
    def edit(rec):
        obj = rec
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]
    return edit


CASES = {
    "missing tier": (_bad(_del(["criteria", 0, "tier"])), "criteria[0].tier"),
    "unknown tier": (_bad(_set(["criteria", 0, "tier"], "critical")), "is not one of"),
    "negative weight": (_bad(_set(["criteria", 0, "weight"], -1)), "weight: -1 is negative"),
    "NaN weight": (_bad(_set(["criteria", 0, "weight"], float("nan"))), "must be a finite number"),
    "infinite weight": (_bad(_set(["criteria", 0, "weight"], float("inf"))), "must be a finite number"),
    "string weight": (_bad(_set(["criteria", 0, "weight"], "1")), "must be a finite number"),
    "boolean weight": (_bad(_set(["criteria", 0, "weight"], True)), "must be a finite number"),
    "zero proficiency weight": (_bad(_set(["criteria", 0, "weight"], 0)), "needs a weight > 0"),
    "empty criteria": (_bad(_set(["criteria"], [])), "criteria: missing or empty"),
    "duplicate ids": (_bad(_set(["criteria", 1, "id"], "c0")), "duplicate ids ['c0']"),
    "no proficiency criterion": (_bad(_set(["criteria"], [GOOD["criteria"][1]])), "no proficiency criterion"),
    "criterion text wrong type": (_bad(_set(["criteria", 0, "text"], 7)), "criteria[0].text: expected a string"),
    "criterion not an object": (_bad(_set(["criteria", 0], "c0")), "criteria[0]: expected an object"),
    "unknown criterion field": (_bad(_set(["criteria", 0, "points"], 3)), "criteria[0].points: unknown field"),
    "bad regex": (_bad(_set(["criteria", 0, "pattern"], "(")), "invalid regex"),
    "tags not a list": (_bad(_set(["criteria", 0, "tags"], "safety")), "tags: expected a list of strings"),
    "empty prompt_id": (_bad(_set(["prompt_id"], " ")), "prompt_id: empty"),
    "empty messages": (_bad(_set(["messages"], [])), "messages: missing or empty"),
    "bad role": (_bad(_set(["messages", 0, "role"], "doctor")), "messages[0].role"),
    "label for unknown criterion": (_bad(_set(["responses", 0, "labels"], {"zz": True})), "labels.zz: no criterion"),
    "label not boolean": (_bad(_set(["responses", 0, "labels"], {"c0": "yes"})), "responses[0].labels"),
    "pair winner equals loser": (_bad(_set(["pairs"], [{"criterion_id": "c0", "winner": 0, "loser": 0}])), "distinct"),
    "pair names no criterion": (_bad(_set(["pairs"], [{"criterion_id": "x", "winner": 0, "loser": 0}])),
                                "names no criterion"),
    "huge field": (_bad(_set(["messages", 0, "content"], "a" * 100_001)), "over the 100000 limit"),
    "invalid UTF-8": (b'{"prompt_id": "p1", "messages": "\xff\xfe"}', "invalid UTF-8 at byte"),
    "truncated line": (json.dumps(GOOD).replace("p0", "p1").encode()[:60], "truncated line?"),
    "not an object": (b"[1, 2, 3]", "expected a JSON object"),
    "duplicate prompt_id": (json.dumps(GOOD).encode(), "'p0' already used on line 1"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_line_is_reported_with_file_and_line(tmp_path, capsys, name):
    line, expected = CASES[name]
    path = tmp_path / "rubrics.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + line + b"\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["data", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: " in err and expected in err, err
    assert "nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_every_problem_is_reported(tmp_path, capsys):
    path = tmp_path / "many.jsonl"
    path.write_bytes(b"\n".join(CASES[n][0] for n in ("missing tier", "NaN weight", "truncated line")) + b"\n")
    assert main(["data", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:1: " in err and f"{path}:2: " in err and f"{path}:3: " in err
    assert "5 problem(s)" in err       # missing tier also leaves no proficiency criterion


def test_valid_file_passes_with_tier_counts(tmp_path, capsys):
    path = tmp_path / "ok.jsonl"
    path.write_text(json.dumps(GOOD) + "\n")
    assert main(["data", "validate", str(path)]) == 0
    assert "1 records; criteria: proficiency 1, bonus 0, veto 1" in capsys.readouterr().out


def test_empty_file_is_an_error(tmp_path, capsys):
    (tmp_path / "e.jsonl").write_text("\n")
    assert main(["data", "validate", str(tmp_path / "e.jsonl")]) == 2
    assert "no records" in capsys.readouterr().err


def test_parquet_rows_are_validated_like_lines(tmp_path, capsys):
    from promedical.reward.rubric_io import record_from_dict
    from promedical.reward.rubric_parquet import RUBRIC_PARQUET_SCHEMA, _row
    row = _row(record_from_dict(GOOD))
    row["criteria"][0]["tier"] = "critical"
    pq.write_table(pa.Table.from_pylist([row], schema=RUBRIC_PARQUET_SCHEMA), tmp_path / "r.parquet")
    assert main(["data", "validate", str(tmp_path / "r.parquet")]) == 2
    assert f"{tmp_path / 'r.parquet'}:row 1: criteria[0].tier" in capsys.readouterr().err


def test_garbage_parquet_is_an_error(tmp_path, capsys):
    (tmp_path / "g.parquet").write_bytes(b"not parquet at all")
    assert main(["data", "validate", str(tmp_path / "g.parquet")]) == 2
    assert "not a readable Parquet file" in capsys.readouterr().err
