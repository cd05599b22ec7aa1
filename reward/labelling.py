"""Label responses criterion by criterion with an LLM judge (reward/judge.py) and merge the verdicts.

Only (response, criterion) pairs without a label are sent; a valid verdict becomes the label, an
invalid one leaves the pair unlabelled and is counted in the returned JudgeStats.
"""
from __future__ import annotations

from dataclasses import replace

from promedical.reward.injection import instruction_text
from promedical.reward.judge import Judge, JudgeStats, judge_many
from promedical.reward.rubric import LabelledResponse, RubricRecord


def unlabelled(records: list[RubricRecord]) -> list[tuple[int, int, str]]:
    """(record index, response index, criterion id) of every missing label."""
    return [(ri, k, c.id) for ri, r in enumerate(records) for k, resp in enumerate(r.responses)
            for c in r.criteria if c.id not in resp.labels]


def label_records(judge: Judge, records: list[RubricRecord]) -> tuple[list[RubricRecord], JudgeStats]:
    todo = unlabelled(records)
    crit = [{c.id: c for c in r.criteria} for r in records]
    items = [(instruction_text(records[ri]), records[ri].responses[k].text, crit[ri][cid]) for ri, k, cid in todo]
    verdicts, stats = judge_many(judge, items)
    new_labels: dict[tuple[int, int], dict[str, bool]] = {}
    for (ri, k, cid), verdict in zip(todo, verdicts):
        if verdict.met is not None:
            new_labels.setdefault((ri, k), {})[cid] = verdict.met
    out = []
    for ri, r in enumerate(records):
        responses = tuple(LabelledResponse(resp.text, resp.labels | new_labels.get((ri, k), {}))
                          for k, resp in enumerate(r.responses))
        out.append(replace(r, responses=responses))
    return out, stats
