"""The rollout wire format: one Arrow schema, declared once, that every actor reads and extends by name.

A step's rollouts are one `pyarrow.RecordBatch` of B x G rows (B prompts, G samples per prompt).
Generators fill the generation columns; the reward actor, the reference actor and the driver each
return a batch of their own new columns, joined with `merge_columns`. Columns not yet filled are absent, so a half-made batch cannot be mistaken
for a finished one.
"""
from __future__ import annotations

import pyarrow as pa

_I32_LIST = pa.list_(pa.int32())
_F32_LIST = pa.list_(pa.float32())

# Columns written by the generator.
GENERATION_FIELDS: list[pa.Field] = [
    pa.field("prompt_id", pa.string()),               # id of the prompt in the prompt source
    pa.field("group_id", pa.int64()),                 # one id per (step, prompt): the GRPO group
    pa.field("sample_index", pa.int32()),             # 0..G-1 within the group
    pa.field("prompt_ids", _I32_LIST),                # (P,) prompt token ids, chat template applied
    pa.field("response_ids", _I32_LIST),              # (T,) sampled response token ids
    pa.field("response_length", pa.int32()),          # T; the response mask is arange(T_max) < T
    pa.field("response_text", pa.string()),           # decoded response, for scoring and reading
    pa.field("finish_reason", pa.string()),           # "stop" | "length"
    pa.field("behaviour_logprobs", _F32_LIST),        # (T,) log p of each sampled token under the generator
    pa.field("policy_version", pa.int64()),           # policy version whose weights generated the row
    pa.field("generate_seconds", pa.float32()),       # wall time of the generate call that made the row
    pa.field("generator_replica", pa.int32()),        # index of the generator replica that made the row
]

# The generation columns the driver reads (a few bytes per row); the rest stays in the object store.
SUMMARY_COLUMNS = ["prompt_id", "group_id", "sample_index", "response_length", "finish_reason",
                   "policy_version", "generate_seconds", "generator_replica"]

# Columns written by the reward actor.
REWARD_FIELDS: list[pa.Field] = [
    pa.field("criterion_ids", pa.list_(pa.string())),  # (K,) criterion ids of the prompt's rubric
    pa.field("criterion_tiers", pa.list_(pa.string())),  # (K,) "proficiency" | "bonus" | "veto"
    pa.field("criterion_scores", _F32_LIST),           # (K,) v_i in [0, 1]: how far criterion i is met
    pa.field("criterion_errors", pa.list_(pa.string())),  # (K,) LLM judge: "" valid verdict, else its error
                                                       # code (http_500, timeout, no_json, ...); null otherwise
    pa.field("s1", pa.float32()),                      # proficiency: sum_i w_i v_i, weights sum to 1
    pa.field("s2", pa.float32()),                      # excellence bonus: count of bonus criteria met
    pa.field("s3", pa.float32()),                      # safety veto: count of veto criteria violated
    pa.field("reward", pa.float32()),                  # clip(S1 + a*S2, 0, 1+b) - l*S3
    pa.field("score_seconds", pa.float32()),           # wall time of the scoring call
]

# Column written by the reference actor.
REFERENCE_FIELDS: list[pa.Field] = [
    pa.field("ref_logprobs", _F32_LIST),               # (T,) log p of each response token under the reference
    pa.field("reference_seconds", pa.float32()),       # wall time of the reference call
]

# Columns written by the driver before training.
TRAINING_FIELDS: list[pa.Field] = [
    pa.field("advantage", pa.float32()),               # group-normalised advantage of the row's reward
    pa.field("trained_version", pa.int64()),           # policy version that trained on the row
    pa.field("step", pa.int64()),                      # driver step that trained on the row
    pa.field("loss_mask", pa.bool_()),                 # False = row left out of the loss (non-finite reward)
]

ROLLOUT_SCHEMA = pa.schema(GENERATION_FIELDS + REWARD_FIELDS + REFERENCE_FIELDS + TRAINING_FIELDS)


def check_complete(batch: pa.RecordBatch) -> None:
    """Raise if `batch` does not carry exactly the full rollout schema (order included)."""
    if not batch.schema.equals(ROLLOUT_SCHEMA):
        have = set(batch.schema.names)
        want = set(ROLLOUT_SCHEMA.names)
        raise ValueError(
            f"rollout batch schema mismatch: missing {sorted(want - have)}, unexpected {sorted(have - want)}"
        )


def merge_columns(base: pa.RecordBatch, *parts: pa.RecordBatch) -> pa.RecordBatch:
    """Join the columns of `parts` (each made by one actor, same rows) onto `base`, in schema order.

    Buffers are shared, not copied. A column present twice is an error: each hop adds its own.
    """
    columns: dict[str, pa.Array] = dict(zip(base.schema.names, base.columns))
    for part in parts:
        if part.num_rows != base.num_rows:
            raise ValueError(f"row count mismatch: {part.num_rows} != {base.num_rows}")
        for name, column in zip(part.schema.names, part.columns):
            if name in columns:
                raise ValueError(f"column {name!r} added twice")
            columns[name] = column
    fields = [f for f in ROLLOUT_SCHEMA if f.name in columns]
    unknown = sorted(set(columns) - {f.name for f in fields})
    if unknown:
        raise ValueError(f"columns not in the rollout schema: {unknown}")
    return pa.RecordBatch.from_arrays([columns[f.name] for f in fields], schema=pa.schema(fields))


def columns_batch(fields: list[pa.Field], columns: dict[str, object]) -> pa.RecordBatch:
    """Build the batch of one hop's new columns, typed by that hop's `fields`."""
    names = {f.name for f in fields}
    if names != set(columns):
        raise ValueError(f"columns do not match schema: missing {sorted(names - set(columns))}, "
                         f"unexpected {sorted(set(columns) - names)}")
    return pa.RecordBatch.from_arrays([pa.array(columns[f.name], type=f.type) for f in fields],
                                      schema=pa.schema(fields))


def gather_rows(pieces: list[pa.RecordBatch], where, rows) -> pa.RecordBatch:
    """Rows `rows` (global indices) of columns held as `pieces`; global row i is row `where[i]` of
    the pieces' concatenation. Schema of the pieces, rows in the order asked."""
    import numpy as np

    whole = pa.concat_batches(pieces) if len(pieces) > 1 else pieces[0]
    return whole.take(pa.array(np.asarray(where)[np.asarray(rows, dtype=np.int64)], type=pa.int64()))
