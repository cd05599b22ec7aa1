"""`promedical eval` end to end: two models side by side through the Ray generator pool (tiny twice)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from promedical.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def test_unknown_suite_is_a_one_line_error(capsys):
    assert main(["eval", "--model", "tiny", "--suite", "no-such-suite"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("promedical eval: error: --suite no-such-suite:") and "\n" not in err


def test_judge_without_url_is_a_one_line_error(capsys):
    assert main(["eval", "--model", "tiny", "--suite", "healthbench", "--grader", "judge"]) == 2
    assert "--judge-url" in capsys.readouterr().err


@pytest.mark.slow
def test_baseline_and_model_side_by_side(tmp_path):
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "promedical.cli.main", "eval", "--model", "tiny", "--baseline", "tiny",
           "--suite", "medqa", "--suite", "pubmedqa", "--suite", str(ROOT / "data" / "tiny.jsonl"),
           "--grader", "rule", "--limit", "3", "--max-new-tokens", "16", "--dtype", "float32",
           "--out", str(out), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=540, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)                    # stdout is the JSON alone: actor logs stay out
    models = doc["models"]
    assert list(models) == ["tiny (baseline)", "tiny"]
    for per in models.values():
        assert set(per) == {"medqa", "pubmedqa", "tiny"}
        acc = per["medqa"]["metrics"]["accuracy"]
        assert acc["n"] == 3 and acc["low"] <= acc["value"] <= acc["high"]
        assert per["tiny"]["metrics"]["s1"]["n"] == 3
    # greedy decoding: the same model twice gives the same answers, hence the same numbers
    assert models["tiny"]["medqa"]["metrics"] == models["tiny (baseline)"]["medqa"]["metrics"]
    saved = json.loads((out / "results.json").read_text())
    answers = [[s["response"] for s in saved["models"][m]["pubmedqa"]["samples"]] for m in models]
    assert answers[0] == answers[1] and len(answers[0]) == 3
    assert (out / "report.md").is_file() and (out / "summary.png").is_file()
