"""Criterion-last scoring for decoder reward models: what triples share is computed once.

Layout: [instruction segment][response segment][criterion segment], each segment tokenised on its
own and the ids concatenated, so training and serving see the same ids. The scalar head reads the
final hidden state of the last token. Attention is causal, so the instruction's keys and values do
not depend on the response, nor the response's on the criterion. A rollout group of G responses to
one instruction under K criteria then runs

    stage 1  each distinct instruction, once
    stage 2  each distinct response, on its instruction's cache
    stage 3  each (response, criterion) row, on its response's cache, in chunks

that is I + G*R + G*K*C token positions instead of G*K*(I + R + C) for one triple at a time.

Fusion depth. With `fusion_layers = f` < the model's L layers, a criterion's tokens attend to the
instruction only in the lowest L - f layers (computed once per criterion, shared by all responses)
and to instruction + response in the top f layers, so stage 3 costs G*K*C tokens through f layers
instead of L. f = L (or 0, "all") is the plain model, equal to `score_sequences` on the whole
sequence up to float rounding. A model must be served with the fusion depth it was trained with;
train-rm records it beside the weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

INSTRUCTION_HEADER = "Instruction:"
RESPONSE_HEADER = "\nResponse:"
CRITERION_HEADER = "\nCriterion:"
QUESTION = "\nMet?"                       # the scored token is the last of this tail


@dataclass(frozen=True)
class SegmentLimits:
    """Token budget per segment; the instruction keeps its end (the latest turn), the others their start."""
    instruction: int = 256
    response: int = 384
    criterion: int = 64


class SegmentTokenizer:
    """Token ids of the three segments, cached by text (groups repeat instructions and criteria)."""

    def __init__(self, tokenizer, limits: SegmentLimits = SegmentLimits()) -> None:
        self.tokenizer = tokenizer
        self.limits = limits
        self._headers = {h: self._ids(h) for h in (INSTRUCTION_HEADER, RESPONSE_HEADER, CRITERION_HEADER, QUESTION)}
        self._bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        self._cache: dict[tuple[str, str], list[int]] = {}

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def segment(self, kind: str, text: str) -> list[int]:
        key = (kind, text)
        if key not in self._cache:
            body = self._ids(" " + text)
            if kind == "instruction":
                ids = self._bos + self._headers[INSTRUCTION_HEADER] + body[-self.limits.instruction:]
            elif kind == "response":
                ids = self._headers[RESPONSE_HEADER] + body[:self.limits.response]
            elif kind == "criterion":
                ids = self._headers[CRITERION_HEADER] + body[:self.limits.criterion] + self._headers[QUESTION]
            else:
                raise ValueError(f"unknown segment kind {kind!r}")
            self._cache[key] = ids
        return self._cache[key]

    def sequence(self, instruction: str, response: str, criterion: str) -> list[int]:
        return (self.segment("instruction", instruction) + self.segment("response", response)
                + self.segment("criterion", criterion))


@dataclass
class PrefixBatch:
    """Distinct segments of a set of triples and the (response, criterion) rows to score.

    A response and a criterion each belong to one instruction; a row pairs a response and a
    criterion of the same instruction.
    """
    instructions: list[list[int]] = field(default_factory=list)
    responses: list[list[int]] = field(default_factory=list)
    response_owner: list[int] = field(default_factory=list)      # instruction index of each response
    criteria: list[list[int]] = field(default_factory=list)
    criterion_owner: list[int] = field(default_factory=list)     # instruction index of each criterion
    rows: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def of(cls, tokens: SegmentTokenizer, triples: list[tuple[str, str, str]]) -> tuple["PrefixBatch", list[int]]:
        """The batch for `triples` (instruction, response, criterion) and each triple's row index."""
        batch = cls()
        instruction_at: dict[str, int] = {}
        response_at: dict[tuple[int, str], int] = {}
        criterion_at: dict[tuple[int, str], int] = {}
        row_at: dict[tuple[int, int], int] = {}
        row_of = []
        for ins, resp, crit in triples:
            if ins not in instruction_at:
                instruction_at[ins] = len(batch.instructions)
                batch.instructions.append(tokens.segment("instruction", ins))
            i = instruction_at[ins]
            if (i, resp) not in response_at:
                response_at[(i, resp)] = len(batch.responses)
                batch.responses.append(tokens.segment("response", resp))
                batch.response_owner.append(i)
            if (i, crit) not in criterion_at:
                criterion_at[(i, crit)] = len(batch.criteria)
                batch.criteria.append(tokens.segment("criterion", crit))
                batch.criterion_owner.append(i)
            row = (response_at[(i, resp)], criterion_at[(i, crit)])
            if row not in row_at:
                row_at[row] = len(batch.rows)
                batch.rows.append(row)
            row_of.append(row_at[row])
        return batch, row_of


def body_and_head(model) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The transformer body and the scalar head of an AutoModelForSequenceClassification decoder."""
    body = getattr(model, model.base_model_prefix)
    head = getattr(model, "score", None)
    if head is None or not hasattr(body, "layers") or not hasattr(body, "rotary_emb"):
        raise ValueError(f"{type(model).__name__}: the criterion-last layout needs a Llama-style decoder "
                         "(Llama, Qwen2/3, Mistral) loaded with AutoModelForSequenceClassification")
    return body, head


def _right_pad(rows: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, max((len(r) for r in rows), default=1))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    valid = torch.zeros(len(rows), width, dtype=torch.long)
    for j, r in enumerate(rows):
        ids[j, :len(r)] = torch.tensor(r, dtype=torch.long)
        valid[j, :len(r)] = 1
    return ids.to(device), valid.to(device)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def score_sequences(model, sequences: list[list[int]]) -> torch.Tensor:
    """(N,) scalar score of each whole sequence (right-padded batch; head on the last real token)."""
    body, head = body_and_head(model)
    ids, valid = _right_pad(sequences, _device(model))
    hidden = body(input_ids=ids, attention_mask=valid, use_cache=False).last_hidden_state
    return head(hidden[torch.arange(len(sequences), device=ids.device), valid.sum(1) - 1]).squeeze(-1).float()


def _cache(config, layers: list[tuple[torch.Tensor, torch.Tensor]]):
    from transformers import DynamicCache
    return DynamicCache(ddp_cache_data=layers, config=config)


def _run_layers(body, hidden: torch.Tensor, layers: range, positions: torch.Tensor, attention: torch.Tensor,
                cache) -> torch.Tensor:
    """`hidden` through body.layers[layers] on `cache` (which covers every layer, for the mask's length)."""
    from transformers.masking_utils import create_causal_mask

    mask = create_causal_mask(config=body.config, inputs_embeds=hidden, attention_mask=attention,
                              past_key_values=cache, position_ids=positions)
    rope = body.rotary_emb(hidden, position_ids=positions)
    for i in layers:
        hidden = body.layers[i](hidden, attention_mask=mask, position_embeddings=rope, position_ids=positions,
                                past_key_values=cache, use_cache=True)
    return hidden


def _take(kv: list[tuple[torch.Tensor, torch.Tensor]], rows: torch.Tensor, keep: range | None = None):
    """Per-layer (keys, values) of the given batch rows; layers outside `keep` as zero-cost stand-ins."""
    out = []
    for i, (k, v) in enumerate(kv):
        if keep is None or i in keep:
            out.append((k[rows], v[rows]))
        else:                                  # right shape for the mask's length, never read
            out.append((k[:1].expand(len(rows), -1, -1, -1), v[:1].expand(len(rows), -1, -1, -1)))
    return out


def check_fusion(model, fusion_layers: int) -> int:
    """The fusion depth as a layer count (0 = all layers); raises on a depth the model does not have."""
    total = model.config.num_hidden_layers
    if not 0 <= fusion_layers <= total:
        raise ValueError(f"fusion_layers {fusion_layers}: the model has {total} layers; use 1..{total} or 0 (all)")
    if any(t != "full_attention" for t in getattr(model.config, "layer_types", None) or []):
        raise ValueError("the criterion-last layout supports full-attention decoders only (no sliding window)")
    return fusion_layers or total


def score_prefix_batch(model, batch: PrefixBatch, fusion_layers: int = 0, chunk_rows: int = 256) -> torch.Tensor:
    """(len(batch.rows),) scores; differentiable, so training and serving share this path."""
    body, head = body_and_head(model)
    config = model.config
    fused = check_fusion(model, fusion_layers)
    total = config.num_hidden_layers
    low, high = range(0, total - fused), range(total - fused, total)
    device = _device(model)
    index = lambda values: torch.tensor(values, dtype=torch.long, device=device)
    span = lambda n: torch.arange(n, device=device)

    ins_ids, ins_valid = _right_pad(batch.instructions, device)
    ins_len = ins_valid.sum(1)
    out = body(input_ids=ins_ids, attention_mask=ins_valid, use_cache=True)
    ins_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]

    owner = index(batch.response_owner)
    resp_ids, resp_valid = _right_pad(batch.responses, device)
    resp_len = resp_valid.sum(1)
    out = body(input_ids=resp_ids, attention_mask=torch.cat([ins_valid[owner], resp_valid], 1),
               position_ids=ins_len[owner].unsqueeze(1) + span(resp_ids.shape[1]),
               past_key_values=_cache(config, _take(ins_kv, owner)), use_cache=True)
    resp_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]

    c_owner = index(batch.criterion_owner)
    crit_ids, crit_valid = _right_pad(batch.criteria, device)
    crit_hidden = body.embed_tokens(crit_ids)
    if len(low):    # criteria see their instruction only, once each, shared by every response
        crit_hidden = _run_layers(body, crit_hidden, low, ins_len[c_owner].unsqueeze(1) + span(crit_ids.shape[1]),
                                  torch.cat([ins_valid[c_owner], crit_valid], 1),
                                  _cache(config, _take(ins_kv, c_owner, low)))
    scores = []
    for k in range(0, len(batch.rows), chunk_rows):
        part = batch.rows[k:k + chunk_rows]
        r = index([i for i, _ in part])
        c = index([j for _, j in part])
        positions = (ins_len[owner[r]] + resp_len[r]).unsqueeze(1) + span(crit_ids.shape[1])
        attention = torch.cat([ins_valid[owner[r]], resp_valid[r], crit_valid[c]], 1)
        hidden = _run_layers(body, crit_hidden[c], high, positions, attention, _cache(config, _take(resp_kv, r, high)))
        hidden = body.norm(hidden)
        scores.append(head(hidden[span(len(part)), crit_valid[c].sum(1) - 1]).squeeze(-1).float())
    return torch.cat(scores) if scores else torch.zeros(0, device=device)
