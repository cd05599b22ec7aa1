"""Evaluation output: a terminal table, a JSON document, and a markdown report with plots."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from promedical.evaluation.runner import SuiteResult

Results = Mapping[str, Mapping[str, SuiteResult]]   # model label -> suite name -> result


def _cell(result: SuiteResult | None, key: str) -> str:
    est = result.metrics.get(key) if result else None
    return f"{est.value:.3f} [{est.low:.3f}, {est.high:.3f}]" if est else "n/a"


def _rows(results: Results) -> list[list[str]]:
    models = list(results)
    rows = []
    suites = list(dict.fromkeys(s for per in results.values() for s in per))
    for suite in suites:
        keys = list(dict.fromkeys(k for per in results.values() if suite in per for k in per[suite].metrics))
        if not keys:
            keys = ["healthbench"]
        n = "/".join(str(results[m][suite].n) if suite in results[m] else "-" for m in models)
        for key in keys:
            rows.append([suite, key, n] + [_cell(results[m].get(suite), key) for m in models])
    return rows


def table(results: Results) -> str:
    """Fixed-width table: suite, metric, n, then 'value [low, high]' per model; notes and warnings below."""
    header = ["suite", "metric", "n"] + list(results)
    rows = [header] + _rows(results)
    widths = [max(len(r[k]) for r in rows) for k in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + [""] + notes(results))


def notes(results: Results) -> list[str]:
    """One line per model and suite: extraction rules or verdict counts, then any warnings."""
    out = []
    for model, per in results.items():
        for suite, result in per.items():
            if "extraction_rules" in result.notes:
                rules = ", ".join(f"{k}={v}" for k, v in result.notes["extraction_rules"].items())
                out.append(f"{model} / {suite}: answers by extraction rule: {rules}")
            if "verdicts" in result.notes:
                v = result.notes["verdicts"]
                out.append(f"{model} / {suite}: grader {result.notes['grader']}: {v['total']} verdicts, "
                           f"{v['valid']} valid, {v['invalid']} invalid")
            out += [f"WARNING {model} / {suite}: {w}" for w in result.warnings]
    return out


def to_json(results: Results, meta: Mapping[str, Any], with_samples: bool = False) -> dict[str, Any]:
    return {"meta": dict(meta), "models": {m: {s: r.as_dict(with_samples) for s, r in per.items()}
                                           for m, per in results.items()}}


def markdown(results: Results, meta: Mapping[str, Any], images: list[Path]) -> str:
    header = ["suite", "metric", "n"] + list(results)
    rows = _rows(results)
    lines = ["# Evaluation report", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", "Values are means with 95% percentile-bootstrap intervals over examples "
              "(HealthBench scores: dataset mean clipped to [0, 1]).", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes(results)] + [""]
    lines += [f"![{p.stem}]({p.name})" for p in images]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, results: Results, meta: Mapping[str, Any]) -> Path:
    """results.json (with every sample), report.md and its PNG plots in `out_dir`; returns report.md."""
    from promedical.evaluation.plots import plot_all

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(to_json(results, meta, with_samples=True), indent=1,
                                                     ensure_ascii=False))
    images = plot_all(out_dir, results)
    path = out_dir / "report.md"
    path.write_text(markdown(results, meta, images))
    return path
