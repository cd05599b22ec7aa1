"""PNG plots for the evaluation report: grouped bars (one bar per model) with bootstrap intervals."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from promedical.evaluation.runner import SuiteResult

HEADLINE = {"rubric": ("healthbench", "s1", "veto_rate"), "choice": ("accuracy", "unparseable"),
            "decision": ("accuracy", "unparseable")}


def _grouped_bars(path: Path, title: str, labels: Sequence[str],
                  series: Mapping[str, Sequence[tuple[float, float, float] | None]]) -> Path:
    """One group per label, one bar per model; each value is (value, low, high) or None (missing)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(labels) * max(len(series), 1)), 4.0))
    for k, (model, values) in enumerate(series.items()):
        v = np.array([t[0] if t else np.nan for t in values])
        err = np.array([[t[0] - t[1], t[2] - t[0]] if t else [0.0, 0.0] for t in values]).T
        ax.bar(x + (k - (len(series) - 1) / 2) * width, v, width, yerr=err, capsize=3, label=model)
    ax.set_xticks(x, labels, rotation=25, ha="right")
    ax.set_title(title)
    ax.set_ylabel("score (95% bootstrap interval)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _triple(result: SuiteResult | None, key: str) -> tuple[float, float, float] | None:
    est = result.metrics.get(key) if result else None
    return (est.value, est.low, est.high) if est else None


def plot_all(out_dir: Path, results: Mapping[str, Mapping[str, SuiteResult]]) -> list[Path]:
    """summary.png (headline metrics of every suite) and axes_SUITE.png per HealthBench-scored suite."""
    models = list(results)
    suites = list(dict.fromkeys(s for per in results.values() for s in per))
    keys = [(s, m) for s in suites for m in HEADLINE[next(r[s] for r in results.values() if s in r).kind]]
    paths = [_grouped_bars(out_dir / "summary.png", "Headline metrics", [f"{s}: {m}" for s, m in keys],
                           {model: [_triple(results[model].get(s), m) for s, m in keys] for model in models})]
    for suite in suites:
        axes = sorted({k for per in results.values() if suite in per for k in per[suite].metrics
                       if k.startswith("healthbench/axis:")})
        if axes:
            labels = ["overall"] + [a.split(":", 1)[1] for a in axes]
            series = {model: [_triple(results[model].get(suite), k) for k in ["healthbench", *axes]]
                      for model in models}
            paths.append(_grouped_bars(out_dir / f"axes_{suite}.png", f"{suite}: HealthBench score by axis",
                                       labels, series))
    return paths
