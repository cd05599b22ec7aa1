"""Data files as spreadsheet tools and accidents produce them: a UTF-8 byte-order mark, a binary file."""
from __future__ import annotations

import codecs
import json
import os

from promedical.cli.main import main
from promedical.reward.rubric_io import load_records

RECORD = {"prompt_id": "p0", "messages": [{"role": "user", "content": "I have a headache."}],
          "criteria": [{"id": "c0", "text": "Asks about duration.", "tier": "proficiency", "weight": 1.0}]}


def test_a_bom_file_loads_and_validates(tmp_path, capsys):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + json.dumps(RECORD).encode() + b"\n")
    assert [r.prompt_id for r in load_records(path)] == ["p0"]
    assert main(["data", "validate", str(path)]) == 0
    assert "ok, 1 records" in capsys.readouterr().out


def _binary(tmp_path):
    path = tmp_path / "blob.jsonl"
    lines = [os.urandom(40).replace(b"\n", b"x") + b"\xff" for _ in range(100)]   # 100 undecodable lines
    path.write_bytes(b"\n".join(lines))
    return path


def test_a_binary_file_lists_twenty_problems_and_how_many_more(tmp_path, capsys):
    assert main(["data", "validate", str(_binary(tmp_path))]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 22                            # 20 problems, "... and N more", the summary line
    assert err[20] == "... and 80 more (--all lists every one)"
    assert err[21].endswith("100 problem(s); nothing was written")


def test_all_lists_every_problem(tmp_path, capsys):
    assert main(["data", "validate", "--all", str(_binary(tmp_path))]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 101 and "more" not in err[-2]
