"""Table, JSON and markdown report with plots, from hand-made suite results (pure formatting logic)."""
import json

from promedical.evaluation.report import table, to_json, write_report
from promedical.evaluation.runner import SuiteResult
from promedical.evaluation.scoring import Estimate


def results():
    hb = lambda v: SuiteResult(suite="healthbench", kind="rubric", n=3, metrics={
        "healthbench": Estimate(v, v - 0.1, v + 0.1, 3),
        "healthbench/axis:accuracy": Estimate(v / 2, 0.0, v, 3),
        "s1": Estimate(0.5, 0.4, 0.6, 3)},
        notes={"grader": "g", "verdicts": {"total": 9, "valid": 8, "invalid": 1, "by_error": {"timeout": 1}}},
        warnings=["1 of 9 verdicts invalid"])
    mcq = SuiteResult(suite="medqa", kind="choice", n=4, metrics={"accuracy": Estimate(0.25, 0.0, 0.75, 4)},
                      notes={"extraction_rules": {"leading": 3, "none": 1}})
    return {"base": {"healthbench": hb(0.2), "medqa": mcq}, "trained": {"healthbench": hb(0.4)}}


def test_table_shows_models_side_by_side_with_intervals():
    text = table(results())
    header = text.splitlines()[0]
    assert header.split()[-2:] == ["base", "trained"]
    hb_row = next(line for line in text.splitlines() if line.startswith("healthbench  healthbench "))
    assert "0.200 [0.100, 0.300]" in hb_row and "0.400 [0.300, 0.500]" in hb_row
    medqa_row = next(line for line in text.splitlines() if line.startswith("medqa"))
    assert "0.250 [0.000, 0.750]" in medqa_row and medqa_row.rstrip().endswith("n/a")
    assert "WARNING base / healthbench: 1 of 9 verdicts invalid" in text
    assert "leading=3, none=1" in text


def test_report_files(tmp_path):
    path = write_report(tmp_path / "out", results(), {"model": "m"})
    md = path.read_text()
    assert "| healthbench | healthbench | 3/3 |" in md and "![summary](summary.png)" in md
    for png in ("summary.png", "axes_healthbench.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["models"]["trained"]["healthbench"]["metrics"]["healthbench"]["value"] == 0.4
    assert "samples" not in to_json(results(), {})["models"]["base"]["medqa"]
