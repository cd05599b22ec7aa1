"""Criterion graders: turn injected (instruction, response, criterion) triples into v_i in [0, 1].

    rule        regex criteria (`pattern`): v = min(1, matches / RULE_FULL_MATCHES); no model
    similarity  zero-shot: cosine of mean-pooled encoder embeddings of criterion and response, rescaled
    trained     a criterion-injected reward model trained with `promedical train-rm` (scalar head;
                an encoder reads a text pair, a decoder the criterion last, reward_model/scorers.py);
                score -> v_i by the calibration fitted at training time (reward_model/calibration.py):
                P(met) for proficiency and bonus criteria, P(violation) for veto criteria
"""
from __future__ import annotations

import json

import re
from pathlib import Path
from typing import Iterable, Protocol, Sequence

import numpy as np

from promedical.reward.rubric import Criterion, RubricRecord, Tier
from promedical.runtime.threads import apply_threads

RULE_FULL_MATCHES = 4
SIMILARITY_RANGE = (0.1, 0.6)   # cosine at or below the first is v=0, at or above the second v=1


class Grader(Protocol):
    def grade(self, instructions: Sequence[str], responses: Sequence[str],
              criteria: Sequence[Criterion]) -> np.ndarray: ...


class RuleGrader:
    """For tests and the tiny preset: a criterion's regex counted in the response."""

    def grade(self, instructions, responses, criteria) -> np.ndarray:
        out = np.zeros(len(responses))
        for k, (response, criterion) in enumerate(zip(responses, criteria)):
            if criterion.pattern is None:
                raise ValueError(f"criterion {criterion.id!r} has no pattern; the rule grader needs one")
            out[k] = min(1.0, len(re.findall(criterion.pattern, response)) / RULE_FULL_MATCHES)
        return out


def check_rule_patterns(records: Iterable[RubricRecord], *, where: str, fix: str) -> None:
    """Refuse at start, in one line, rubrics the rule grader cannot score: it needs a pattern on every criterion.

    `where` names the input (a file and its config key, or a flag), `fix` says what to do instead.
    """
    from promedical.errors import UserError

    for rec in records:
        for c in rec.criteria:
            if c.pattern is None:
                raise UserError(f"{where}: criterion {rec.prompt_id}/{c.id} has no pattern, which the rule grader "
                                f"needs; {fix}")


class _Encoder:
    def __init__(self, model_path: str, max_length: int, batch_size: int, threads: int = 0) -> None:
        from transformers import AutoTokenizer

        apply_threads(threads)       # runtime/threads.py (0: all cores, not a Ray actor's 1-thread default)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.max_length = max_length
        self.batch_size = batch_size


class SimilarityGrader(_Encoder):
    """Zero-shot grader from a sentence encoder (all-MiniLM-L6-v2); no training needed."""

    def __init__(self, model_path: str, max_length: int = 256, batch_size: int = 64, threads: int = 0) -> None:
        super().__init__(model_path, max_length, batch_size, threads)
        from transformers import AutoModel

        from promedical.runtime.devices import role_device
        self.model = AutoModel.from_pretrained(model_path).to(role_device()).eval()   # fp32: a 22M encoder
        self._cache: dict[str, np.ndarray] = {}

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        from promedical.runtime.devices import model_device
        vectors = []
        with torch.no_grad():
            for k in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(texts[k:k + self.batch_size], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(model_device(self.model))
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                vectors.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
        return np.concatenate(vectors) if vectors else np.zeros((0, 1))

    def grade(self, instructions, responses, criteria) -> np.ndarray:
        todo = sorted({c.text for c in criteria} - set(self._cache))
        if todo:
            self._cache.update(zip(todo, self._embed(todo)))
        unique = sorted(set(responses))
        embedded = dict(zip(unique, self._embed(unique)))
        cos = np.array([embedded[r] @ self._cache[c.text] for r, c in zip(responses, criteria)])
        lo, hi = SIMILARITY_RANGE
        return np.clip((cos - lo) / (hi - lo), 0.0, 1.0)


class TrainedGrader(_Encoder):
    """A reward model trained with `promedical train-rm`: scalar head over an injected triple, in the
    layout recorded beside its weights (reward_model/scorers.py; checkpoints without one are cross-encoders).

    All triples handed to `grade` are scored together: identical triples once; a cross-encoder in
    batches of `batch_size` triples; a decoder by instruction groups of about `batch_size` triples
    that share the instruction's and each response's computation.
    """

    def __init__(self, model_path: str, max_length: int = 256, batch_size: int = 64, threads: int = 0,
                 dtype: str = "auto") -> None:
        super().__init__(model_path, max_length, batch_size, threads)
        from transformers import AutoModelForSequenceClassification

        from promedical.reward_model.calibration import Calibration
        from promedical.reward_model.prefix_scoring import SegmentLimits
        from promedical.reward_model.scorers import make_scorer
        import torch
        on_gpu = torch.cuda.is_available()       # a GPU-placed RewardModel actor sees its GPU here
        if dtype == "auto":
            dtype = "bfloat16" if on_gpu else "float32"
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_path, dtype=getattr(torch, dtype)).to("cuda" if on_gpu else "cpu").eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        calib_path = Path(model_path) / "promedical_calibration.json"
        meta = json.loads(calib_path.read_text()) if calib_path.exists() else {}
        self.calibration = Calibration(**{k: meta[k] for k in Calibration.__dataclass_fields__ if k in meta})
        self.use_criterion = self.calibration.use_criterion
        self.layout = meta.get("layout", "pair")
        self.scorer = make_scorer(self.tokenizer, self.model, self.layout, max_length=max_length,
                                  limits=SegmentLimits(**meta.get("segment_limits", {})),
                                  fusion_layers=meta.get("fusion_layers", 0))

    def raw_scores(self, triples: list[tuple[str, str, str | None]]) -> np.ndarray:
        """Scalar score per (instruction, response, criterion or None) triple."""
        return self.scorer.score_batched(triples, self.batch_size)

    def grade(self, instructions, responses, criteria) -> np.ndarray:
        from promedical.reward_model.calibration import values
        triples = [(i, r, c.text if self.use_criterion else None) for i, r, c in zip(instructions, responses, criteria)]
        is_veto = np.array([c.tier is Tier.VETO for c in criteria], dtype=bool)
        return values(self.raw_scores(triples), is_veto, self.calibration)


def make_grader(name: str, model_path: str | None, *, max_length: int, batch_size: int,
                threads: int = 0, dtype: str = "auto") -> Grader:
    """`dtype` (auto | float32 | bfloat16) applies to the trained grader; auto = bf16 on GPU, fp32 on CPU."""
    if name == "rule":
        return RuleGrader()
    if name == "judge":
        raise ValueError("grader 'judge' is an LLM judge, not a scorer: its reward role is actors/judge_reward.py")
    if model_path is None:
        raise ValueError(f"grader {name!r} needs a model path")
    if name == "trained":
        return TrainedGrader(model_path, max_length=max_length, batch_size=batch_size, threads=threads, dtype=dtype)
    return SimilarityGrader(model_path, max_length=max_length, batch_size=batch_size, threads=threads)


GRADERS = ("rule", "similarity", "trained", "judge")   # judge: actors/judge_reward.py
