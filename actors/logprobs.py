"""Per-token response logprobs of a causal LM, shared by the policy (with grad) and the reference.

Rows are packed into right-padded micro-batches; only the hidden states of response positions go
through the LM head, so the (tokens x vocab) logits of the prompt are never materialised.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MicroBatch:
    input_ids: torch.Tensor       # (N, L) prompt + response, right-padded with 0
    attention_mask: torch.Tensor  # (N, L) 1 on real tokens
    positions: torch.Tensor       # (N, T) index in the sequence of the hidden state predicting response token t
    targets: torch.Tensor         # (N, T) response token ids, 0-padded
    mask: torch.Tensor            # (N, T) 1.0 on real response tokens
    rows: list[int]               # row indices of the batch these come from


def make_micro_batch(prompts: list[list[int]], responses: list[list[int]], rows: list[int]) -> MicroBatch:
    seqs = [prompts[i] + responses[i] for i in rows]
    max_len = max(len(s) for s in seqs)
    max_resp = max(1, max(len(responses[i]) for i in rows))
    n = len(rows)
    input_ids = torch.zeros(n, max_len, dtype=torch.long)
    attention = torch.zeros(n, max_len, dtype=torch.long)
    positions = torch.zeros(n, max_resp, dtype=torch.long)
    targets = torch.zeros(n, max_resp, dtype=torch.long)
    mask = torch.zeros(n, max_resp)
    for j, i in enumerate(rows):
        p, r = len(prompts[i]), len(responses[i])
        input_ids[j, : p + r] = torch.tensor(seqs[j])
        attention[j, : p + r] = 1
        if r:
            positions[j, :r] = torch.arange(p - 1, p + r - 1)
            targets[j, :r] = torch.tensor(responses[i])
            mask[j, :r] = 1.0
    return MicroBatch(input_ids, attention, positions, targets, mask, list(rows))


def plan_micro_batches(lengths: list[int], rows: list[int], micro_batch_size: int) -> list[list[int]]:
    """Split `rows` into micro-batches of similar total length (sorted), so padding stays small."""
    ordered = sorted(rows, key=lambda i: lengths[i])
    return [ordered[k: k + micro_batch_size] for k in range(0, len(ordered), micro_batch_size)]


def forward_logprobs(model: torch.nn.Module, mb: MicroBatch, temperature: float) -> torch.Tensor:
    """(N, T) log p(response token t | prefix) at `temperature`; 0 where mask is 0."""
    body = model.get_decoder() if hasattr(model, "get_decoder") else model.base_model
    hidden = body(input_ids=mb.input_ids, attention_mask=mb.attention_mask).last_hidden_state
    index = mb.positions.unsqueeze(-1).expand(-1, -1, hidden.size(-1))
    picked = torch.gather(hidden, 1, index)                        # (N, T, H)
    logits = model.get_output_embeddings()(picked).float() / temperature   # (N, T, V)
    target_logits = torch.gather(logits, -1, mb.targets.unsqueeze(-1)).squeeze(-1)
    logprobs = target_logits - torch.logsumexp(logits, dim=-1)
    return logprobs * mb.mask


def unpad(values: torch.Tensor, mb: MicroBatch, lengths: list[int]) -> dict[int, list[float]]:
    """Row index -> its response logprobs as a list (length = response length)."""
    out = {}
    for j, i in enumerate(mb.rows):
        out[i] = values[j, : lengths[i]].tolist()
    return out
