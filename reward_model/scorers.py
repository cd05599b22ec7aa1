"""The two input layouts of a criterion-injected reward model, behind one interface.

    pair    cross-encoder text pair (criterion + instruction, response); encoders such as MiniLM.
            Every triple is a full forward pass.
    prefix  criterion-last sequence for decoders (Llama, Qwen, Mistral); triples that share an
            instruction or a response share its computation (reward_model/prefix_scoring.py), and
            `fusion_layers` sets how deep the criterion meets the response.

`train_scores(triples)` is differentiable (training) and `score_batched(triples)` runs without
gradients in bounded batches (serving). A criterion of None is the criterion-agnostic baseline.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from promedical.reward.injection import NO_CRITERION, inject
from promedical.reward_model.prefix_scoring import (PrefixBatch, SegmentLimits, SegmentTokenizer, body_and_head,
                                              check_fusion, score_prefix_batch, score_sequences)

LAYOUTS = ("pair", "prefix")
Triple = tuple[str, str, "str | None"]       # instruction, response, criterion (None = baseline)


class Scorer(Protocol):
    model: torch.nn.Module

    def train_scores(self, triples: list[Triple]) -> torch.Tensor: ...

    def score_batched(self, triples: list[Triple], batch_size: int) -> np.ndarray: ...


def prefix_capable(model) -> bool:
    try:
        body_and_head(model)
    except ValueError:
        return False
    return True


def resolve_layout(model, layout: str) -> str:
    """'auto' -> prefix for Llama-style decoders, pair otherwise; an explicit prefix must be possible."""
    if layout not in ("auto", *LAYOUTS):
        raise ValueError(f"layout {layout!r}: use auto, pair or prefix")
    if layout == "auto":
        return "prefix" if prefix_capable(model) else "pair"
    if layout == "prefix":
        body_and_head(model)                 # raises with the reason
    return layout


FIRST_MIN_TOKENS = 48     # pair layout: tokens always left for [CLS] criterion + instruction [SEP] .. [SEP]


class PairScorer:
    def __init__(self, tokenizer, model, max_length: int) -> None:
        self.tokenizer, self.model, self.max_length = tokenizer, model, max_length

    def train_scores(self, triples: list[Triple]) -> torch.Tensor:
        pairs = [inject(i, r, c) for i, r, c in triples]
        responses = [self._cut_response(b) for _, b in pairs]
        enc = self.tokenizer([a for a, _ in pairs], responses, padding=True,
                             truncation="only_first", max_length=self.max_length, return_tensors="pt")
        return self.model(**enc.to(next(self.model.parameters()).device)).logits[:, 0].float()

    def _cut_response(self, response: str) -> str:
        """The response, cut to leave FIRST_MIN_TOKENS for the criterion and instruction: the window is
        filled by the whole response first (a violation may sit in its last sentence), then the criterion
        and as much of the instruction as fits (cut at its end)."""
        budget = self.max_length - FIRST_MIN_TOKENS
        ids = self.tokenizer(response, add_special_tokens=False)["input_ids"]
        return response if len(ids) <= budget else self.tokenizer.decode(ids[:budget])

    def score_batched(self, triples: list[Triple], batch_size: int = 64) -> np.ndarray:
        """Distinct triples sorted by length (less padding), `batch_size` per forward pass."""
        unique = sorted(dict.fromkeys(triples), key=lambda t: sum(len(x or "") for x in t))
        out = []
        with torch.inference_mode():
            for k in range(0, len(unique), batch_size):
                out.append(self.train_scores(unique[k:k + batch_size]).cpu().numpy())
        found = dict(zip(unique, np.concatenate(out) if out else np.zeros(0)))
        return np.array([found[t] for t in triples], dtype=np.float64)


class PrefixScorer:
    def __init__(self, tokenizer, model, limits: SegmentLimits = SegmentLimits(), fusion_layers: int = 0) -> None:
        check_fusion(model, fusion_layers)
        self.tokens = SegmentTokenizer(tokenizer, limits)
        self.model, self.fusion_layers = model, fusion_layers

    def _batch(self, triples: list[Triple]) -> tuple[PrefixBatch, list[int]]:
        return PrefixBatch.of(self.tokens, [(i, r, NO_CRITERION if c is None else c) for i, r, c in triples])

    def scores(self, triples: list[Triple]) -> torch.Tensor:
        if len(set(triples)) == 1 and self.fusion_layers in (0, self.model.config.num_hidden_layers):
            return self.train_scores(triples[:1]).expand(len(triples))   # nothing shared: one plain pass
        batch, rows = self._batch(triples)
        scores = score_prefix_batch(self.model, batch, self.fusion_layers)
        return scores[torch.tensor(rows, dtype=torch.long, device=scores.device)]

    def train_scores(self, triples: list[Triple]) -> torch.Tensor:
        """Whole sequences when the criterion fuses at every layer (same maths, works with gradient
        checkpointing, which drops KV caches); the staged path otherwise."""
        if self.fusion_layers not in (0, self.model.config.num_hidden_layers):
            return self.scores(triples)
        return score_sequences(self.model, [self.tokens.sequence(i, r, NO_CRITERION if c is None else c)
                                            for i, r, c in triples])

    def score_batched(self, triples: list[Triple], batch_size: int = 256) -> np.ndarray:
        """Triples grouped by instruction (a rollout group stays together), about `batch_size` rows a pass."""
        by_instruction: dict[str, list[int]] = {}
        for k, (ins, _, _) in enumerate(triples):
            by_instruction.setdefault(ins, []).append(k)
        out = np.zeros(len(triples), dtype=np.float64)
        chunk: list[int] = []
        with torch.inference_mode():
            for members in [*by_instruction.values(), []]:
                if chunk and (not members or len(chunk) + len(members) > batch_size):
                    out[chunk] = self.scores([triples[k] for k in chunk]).double().cpu().numpy()
                    chunk = []
                chunk += members
        return out


def make_scorer(tokenizer, model, layout: str, *, max_length: int = 256, limits: SegmentLimits = SegmentLimits(),
                fusion_layers: int = 0):
    if layout == "pair":
        return PairScorer(tokenizer, model, max_length)
    if layout == "prefix":
        return PrefixScorer(tokenizer, model, limits, fusion_layers)
    raise ValueError(f"layout {layout!r}: use one of {', '.join(LAYOUTS)}")
