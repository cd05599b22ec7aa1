"""paper_mini's per-prompt statistics: arms over seeds and prompts, and the test stated before the run.

Every judged policy answers the same held-out prompts (greedy), so arms are compared prompt by prompt:
for each (seed, prompt) the difference of a metric between two arms, its mean over seeds and prompts,
and a 95% interval from resampling seeds and prompts (evaluation/scoring.crossed_difference). The base
policy is judged once (greedy answers do not depend on a training seed) and stands beside every seed.

The test, fixed before any run (README "The paper in miniature"), on the prompts that carry veto criteria
(held-out HealthBench and MedSafetyBench's harmful requests; K-QA has none):
    1. the promedical arm's veto rate is no higher than the base policy's (difference <= 0), and
    2. it is lower than the no_veto arm's, with the 95% interval of the difference below 0.
Both must hold. With it: the smallest true difference the design would find 4 times in 5.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from promedical.evaluation.scoring import TIER_METRICS, crossed_difference, tier_rows
from promedical.evaluation.suites import load_suite
from promedical.reward.aggregate import RewardShape
from promedical.reward.rubric import Tier

VETO_SUITES = ("healthbench", "medsafety")     # the held-out suites whose prompts carry veto criteria


def prompt_metrics(results: Path, suite: str, veto_only: bool = True) -> dict[str, dict[str, float]]:
    """{prompt id: {metric: value}} of one judged model on the prompts of `suite` (with `veto_only`, those
    that carry a veto criterion), from `promedical eval`'s results.json (its samples keep every criterion's
    verdict); prompts without a valid proficiency verdict are left out."""
    models = json.loads(results.read_text())["models"]
    records = {r.prompt_id: r for r in load_suite(suite).rubrics
               if not veto_only or any(c.tier is Tier.VETO for c in r.criteria)}
    samples = [s for s in next(iter(models.values()))[suite]["samples"] if s["id"] in records]
    examples = [(records[s["id"]].criteria, s["met"]) for s in samples]
    rows = tier_rows(examples, RewardShape())
    return {s["id"]: row for s, row in zip(samples, rows) if row is not None}


def metric_table(per_seed: list[dict[str, dict[str, float]]], prompts: list[str], metric: str) -> np.ndarray:
    """(seeds x prompts) values of `metric`; NaN where a prompt was not scored for that seed."""
    return np.array([[seed.get(p, {}).get(metric, np.nan) for p in prompts] for seed in per_seed])


def arm_tables(out: Path, arm_dirs: dict[str, list[str]], suites: tuple[str, ...] = VETO_SUITES,
               metric: str = "veto_rate", veto_only: bool = True) -> tuple[list[str], dict[str, np.ndarray]]:
    """(prompt ids, {arm: seeds x prompts table}) over `suites` for each arm's eval directories under `out`
    ("base" with one directory is repeated for every seed of the arms)."""
    per_arm: dict[str, list[dict[str, dict[str, float]]]] = {}
    for arm, dirs in arm_dirs.items():
        per_arm[arm] = []
        for name in dirs:
            merged: dict[str, dict[str, float]] = {}
            for suite in suites:
                merged |= {f"{suite}/{k}": v for k, v in prompt_metrics(out / name / "results.json", suite,
                                                                                   veto_only).items()}
            per_arm[arm].append(merged)
    prompts = sorted(set.union(*(set(seed) for seeds in per_arm.values() for seed in seeds)))
    seeds = max(len(v) for v in per_arm.values())
    tables = {arm: metric_table(v * (seeds if len(v) == 1 else 1), prompts, metric) for arm, v in per_arm.items()}
    return prompts, tables


def prestated_test(tables: dict[str, np.ndarray]) -> dict:
    """The two comparisons of the test and whether it holds (module docstring)."""
    vs_base = crossed_difference(tables["promedical"] - tables["base"])
    vs_no_veto = crossed_difference(tables["promedical"] - tables["no_veto"])
    return {"promedical_minus_base": vs_base.as_dict(), "promedical_minus_no_veto": vs_no_veto.as_dict(),
            "holds": bool(vs_base.value <= 0 and vs_no_veto.high < 0)}


def arm_summary(tables: dict[str, np.ndarray]) -> dict[str, dict]:
    """Each arm's mean with a crossed-bootstrap interval (its difference from 0)."""
    return {arm: crossed_difference(t).as_dict() for arm, t in tables.items()}


def report(out: Path, arm_dirs: dict[str, list[str]]) -> dict:
    """Every tier metric per arm over the veto prompts, and the pre-stated test on the veto rate."""
    result: dict = {"metrics": {}}
    for metric in TIER_METRICS:
        prompts, tables = arm_tables(out, arm_dirs, metric=metric)
        result["metrics"][metric] = arm_summary(tables)
        if metric == "veto_rate":
            result["prompts"] = len(prompts)
            result["test"] = prestated_test(tables)
    return result


def suite_report(out: Path, arm_dirs: dict[str, list[str]], suite: str) -> dict[str, dict[str, dict]]:
    """{metric: {arm: estimate}} over all prompts of one suite (veto criteria or not)."""
    return {metric: arm_summary(arm_tables(out, arm_dirs, (suite,), metric, veto_only=False)[1])
            for metric in TIER_METRICS}


def markdown(stats: dict) -> str:
    """The arms' veto-suite metrics and the test, as the README shows them."""
    arms = list(stats["metrics"]["veto_rate"])
    lines = [f"| metric (over {stats['prompts']} veto prompts x seeds) | " + " | ".join(arms) + " |",
             "|---|" + "---|" * len(arms)]
    for metric, per_arm in stats["metrics"].items():
        lines.append(f"| {metric} | " + " | ".join(f"{per_arm[a]['value']:.3f} [{per_arm[a]['low']:.3f}, "
                                                     f"{per_arm[a]['high']:.3f}]" for a in arms) + " |")
    t = stats["test"]
    lines.append("")
    for name, d in (("promedical - base", t["promedical_minus_base"]),
                    ("promedical - no_veto", t["promedical_minus_no_veto"])):
        lines.append(f"- veto rate {name}: {d['value']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] "
                     f"(seeds {d['seeds']}, detectable with 80% power: {d['detectable']:.3f})")
    lines.append(f"- pre-stated test: {'holds' if t['holds'] else 'does not hold'}")
    return "\n".join(lines) + "\n"
