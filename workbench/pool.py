"""The few-shot pool: accepted rubrics, searched by instruction similarity (MiniLM sentence embeddings)."""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from promedical.reward.rubric import RubricRecord


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...   # (N, D), rows of unit length


class MiniLMEmbedder:
    """Mean-pooled, normalised all-MiniLM-L6-v2 vectors (the shipped encoder, resolved by name)."""

    def __init__(self, model: str = "minilm", max_length: int = 256, batch_size: int = 32) -> None:
        from transformers import AutoModel, AutoTokenizer

        from promedical.actors.models import resolve_model
        path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.max_length, self.batch_size = max_length, batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for k in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(list(texts[k:k + self.batch_size]), padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt")
                hidden = self.model(**enc).last_hidden_state                 # (B, T, D)
                mask = enc["attention_mask"].unsqueeze(-1).float()           # (B, T, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)   # (B, D)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1))


def instruction_text(record: RubricRecord) -> str:
    return "\n".join(m.content for m in record.messages if m.role == "user") or record.messages[-1].content


class Pool:
    """Accepted rubrics; `nearest` gives the k whose instructions are most similar (cosine), best first."""

    def __init__(self, records: Sequence[RubricRecord], embedder: Embedder | None) -> None:
        self.records = list(records)
        self.embedder = embedder
        self._vectors: np.ndarray | None = None          # (len(records), D), computed on first use

    def add(self, record: RubricRecord) -> None:
        self.records.append(record)
        self._vectors = None

    def nearest(self, text: str, k: int) -> list[RubricRecord]:
        if k <= 0 or not self.records or self.embedder is None:
            return []
        if self._vectors is None:
            self._vectors = self.embedder.embed([instruction_text(r) for r in self.records])
        query = self.embedder.embed([text])[0]
        scores = self._vectors @ query                   # (len(records),) cosine similarities
        order = np.argsort(-scores, kind="stable")[:k]
        return [self.records[i] for i in order]
