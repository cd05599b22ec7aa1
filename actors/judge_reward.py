"""Reward role graded by an LLM judge (reward.grader=judge): the RewardModel's `score` interface.

The judge is a local vLLM replica (actors/judge.py, constrained verdicts, v = P(yes)) or an
OpenAI-compatible endpoint (reward/judge.py, parsed verdicts, v = 0 or 1). Every criterion of the
batch is judged in one call; an invalid verdict gives v = NaN and its error code in
`criterion_errors`, so its row's reward is NaN and the row is masked in training (rollout/guards.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from promedical.actors.reward_model import aggregators, reward_columns
from promedical.reward.aggregate import RewardShape
from promedical.reward.judge import judge_many
from promedical.reward.rubric import RubricRecord


class JudgeReward:
    def __init__(self, *, model: str, judge_url: str, aggregator: str, shape: RewardShape, template: str = "v1",
                 api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 30.0, retries: int = 2,
                 concurrency: int = 8, local: dict[str, Any] | None = None) -> None:
        from promedical.actors.judge import make_judge

        self.aggregate, self.group_aggregate = aggregators(aggregator, shape)
        self.shape = shape
        self.judge = make_judge(url=judge_url, model=model, template=template, api_key_env=api_key_env,
                                timeout_s=timeout_s, retries=retries, concurrency=concurrency, **(local or {}))

    def _grade(self, instructions, responses, criteria) -> tuple[np.ndarray, list[str | None]]:
        verdicts, _ = judge_many(self.judge, list(zip(instructions, responses, criteria)))
        return np.array([v.value for v in verdicts], dtype=np.float64), [v.error for v in verdicts]

    def score(self, batch: pa.RecordBatch, rubrics: dict[str, RubricRecord]) -> pa.RecordBatch:
        """REWARD_FIELDS for every row of `batch` (needs prompt_id and response_text)."""
        return reward_columns(batch, rubrics, self._grade, aggregate=self.aggregate,
                              group_aggregate=self.group_aggregate, shape=self.shape)
