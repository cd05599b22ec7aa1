"""benchmarks/paper_mini_stats.py on judged results written in `promedical eval`'s results.json layout:
per-prompt tier metrics, tables over seeds and the pre-stated veto test."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from promedical.evaluation.suites import load_suite
from promedical.reward.rubric import Tier

SPEC = importlib.util.spec_from_file_location(
    "paper_mini_stats", Path(__file__).resolve().parents[1] / "benchmarks" / "paper_mini_stats.py")
stats = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(stats)


def _write(path: Path, vetoed) -> None:
    """A results.json whose answers meet every proficiency criterion and violate the first veto criterion
    of the prompts for which `vetoed(suite, index)` is true."""
    models = {"m": {}}
    for suite in (*stats.VETO_SUITES, "kqa"):
        samples = []
        for k, record in enumerate(load_suite(suite).rubrics):
            first_veto = next((i for i, c in enumerate(record.criteria) if c.tier is Tier.VETO), None)
            met = [c.tier is not Tier.VETO or (i == first_veto and vetoed(suite, k))
                   for i, c in enumerate(record.criteria)]
            samples.append({"id": record.prompt_id, "response": "...", "met": met})
        models["m"][suite] = {"samples": samples}
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"meta": {}, "models": models}))


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper_mini")
    _write(out / "eval_base", lambda s, k: k % 2 == 0)                        # half the prompts vetoed
    for seed in (0, 1):
        _write(out / f"eval_promedical-{seed}", lambda s, k: k % 8 == seed)   # an eighth
        _write(out / f"eval_no_veto-{seed}", lambda s, k: k % 2 == 0 or k % 3 == seed)
        _write(out / f"eval_same-{seed}", lambda s, k: k % 8 == seed)
    return out


def test_prompt_metrics_read_the_verdicts_per_prompt(judged):
    per = stats.prompt_metrics(judged / "eval_base" / "results.json", "medsafety")
    assert len(per) == 72
    rates = [per[r.prompt_id]["veto_rate"] for r in load_suite("medsafety").rubrics]
    assert rates == [float(k % 2 == 0) for k in range(72)]
    assert all(v["s1"] == 1.0 for v in per.values())


def test_tables_repeat_the_base_for_every_seed(judged):
    prompts, tables = stats.arm_tables(judged, {"base": ["eval_base"], "promedical": ["eval_promedical-0",
                                                                                       "eval_promedical-1"]})
    assert len(prompts) == 7 + 72                     # one held-out HealthBench prompt has no veto criterion
    assert tables["base"].shape == tables["promedical"].shape == (2, len(prompts))
    assert (tables["base"][0] == tables["base"][1]).all()
    assert not (tables["promedical"][0] == tables["promedical"][1]).all()


def test_the_prestated_test_holds_only_when_the_veto_arm_is_safer(judged):
    arms = {"base": ["eval_base"], "promedical": ["eval_promedical-0", "eval_promedical-1"],
            "no_veto": ["eval_no_veto-0", "eval_no_veto-1"]}
    result = stats.report(judged, arms)
    test = result["test"]
    assert test["holds"] and test["promedical_minus_no_veto"]["high"] < 0
    assert test["promedical_minus_base"]["value"] < 0 and test["promedical_minus_base"]["detectable"] > 0
    with_veto = [k for k, r in enumerate(load_suite("healthbench").rubrics)
                 if any(c.tier is Tier.VETO for c in r.criteria)]
    expected = np.mean([k % 8 == seed for seed in (0, 1) for ks in (with_veto, range(72)) for k in ks])
    assert result["metrics"]["veto_rate"]["promedical"]["value"] == pytest.approx(expected)
    same = stats.report(judged, {**arms, "no_veto": ["eval_same-0", "eval_same-1"]})
    assert not same["test"]["holds"] and same["test"]["promedical_minus_no_veto"]["value"] == 0
    text = stats.markdown(result)
    assert "pre-stated test: holds" in text and "| veto_rate |" in text


def test_the_benchmark_table_and_plot_from_judged_seeds(judged, tmp_path):
    spec = importlib.util.spec_from_file_location("paper_mini", SPEC.origin.replace("_stats", ""))
    paper_mini = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(paper_mini)
    curve = [{"step": k, "reward_mean": 0.1 * k} for k in range(6)]
    summary = {"settings": {"seeds": [0, 1]}, "arms": {
        arm: {str(seed): {"train_seconds": 10.0, "eval_seconds": 2.0, "curve": curve} for seed in (0, 1)}
        for arm in ("promedical", "no_veto")}}
    dirs = paper_mini.arm_dirs(summary)
    assert dirs == {"base": ["eval_base"], "promedical": ["eval_promedical-0", "eval_promedical-1"],
                    "no_veto": ["eval_no_veto-0", "eval_no_veto-1"]}
    summary["veto_prompts"] = stats.report(judged, dirs)
    summary["suites"] = {suite: stats.suite_report(judged, dirs, suite) for suite in paper_mini.SUITES}
    text = paper_mini.table(summary)
    assert "| kqa | s1 | 1.000 [1.000, 1.000]" in text and "pre-stated test: holds" in text
    assert "| promedical | +0.200 -> +0.300 | 20 | 4 |" in text          # steps 0-4 and 1-5, 2 seeds
    paper_mini.plot(summary, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000
