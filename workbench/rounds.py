"""One drafting round: the next instructions, drafted with the pool (seed rubrics + every rubric accepted so
far in the store, as in the paper's growing example pool) and stored for review, invalid drafts included."""
from __future__ import annotations

import json
import sqlite3
from typing import Sequence

from promedical.reward.rubric import RubricRecord
from promedical.workbench.drafting import Completer, DraftCounts, draft_all
from promedical.workbench.export import accepted_records
from promedical.workbench.instructions import Instruction
from promedical.workbench.pool import Embedder, Pool
from promedical.workbench.store import add_items, drafted_prompt_ids, next_round


def draft_round(conn: sqlite3.Connection, instructions: Sequence[Instruction], completer: Completer, *,
                seed: Sequence[RubricRecord] = (), embedder: Embedder | None = None, round_size: int = 500,
                few_shot: int = 3, retries: int = 2, double_review_every: int = 0,
                backoff_s: float = 0.5) -> tuple[int, DraftCounts, int]:
    """Draft up to `round_size` not-yet-drafted instructions; returns (round, counts, instructions left).

    Every `double_review_every`-th item of the round (0: none) is kept for two reviewers (agreement).
    """
    done = drafted_prompt_ids(conn)
    todo = [i for i in instructions if i.prompt_id not in done]
    batch = todo[:round_size]
    round_no = next_round(conn)
    if not batch:
        return round_no - 1, DraftCounts(), 0
    pool = Pool(list(seed) + accepted_records(conn), embedder)
    drafts, counts = draft_all(completer, batch, lambda inst: pool.nearest(inst.text(), few_shot),
                               retries=retries, backoff_s=backoff_s)
    rows = [{"prompt_id": d.instruction.prompt_id, "round": round_no, "outcome": d.outcome,
             "messages": json.dumps([{"role": m.role, "content": m.content} for m in d.instruction.messages]),
             "draft": json.dumps(list(d.criteria)), "problems": json.dumps(list(d.problems)), "raw": d.raw,
             "attempts": d.attempts,
             "reviews_wanted": 2 if double_review_every and (k + 1) % double_review_every == 0 else 1}
            for k, d in enumerate(drafts)]
    add_items(conn, rows)
    return round_no, counts, len(todo) - len(batch)
