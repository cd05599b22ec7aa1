"""How a batch is cut across replicas: whole GRPO groups, balanced by tokens. Pure (numpy only).

A GRPO group never straddles two replicas: its rows share a prompt (the shared-prefix forward runs
the prompt once per group) and its advantages are normalised together.
"""
from __future__ import annotations

import numpy as np

from promedical.actors.interfaces import RankShare


def groups_in_order(group_ids: list[int]) -> list[int]:
    """Distinct group ids in order of first appearance."""
    return list(dict.fromkeys(group_ids))


def _rows_by_group(group_ids: list[int]) -> dict[int, list[int]]:
    rows: dict[int, list[int]] = {}
    for i, g in enumerate(group_ids):
        rows.setdefault(g, []).append(i)
    return rows


def balance(weights: list[int], parts: int, per_part: int | None = None) -> list[list[int]]:
    """Item indices per part, heaviest item first onto the lightest part (LPT); `per_part` caps counts.

    Ties go to the lowest part index, so the result is deterministic. Each part's items keep
    ascending order.
    """
    load = [0] * parts
    out: list[list[int]] = [[] for _ in range(parts)]
    for item in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        open_parts = [p for p in range(parts) if per_part is None or len(out[p]) < per_part]
        target = min(open_parts, key=lambda p: (load[p], p))
        out[target].append(item)
        load[target] += weights[item]
    return [sorted(items) for items in out]


def split_groups(group_ids: list[int], lengths: list[int], parts: int) -> list[list[int]]:
    """Row indices per replica (ascending): whole groups, token loads balanced; a part may be empty."""
    rows = _rows_by_group(group_ids)
    order = groups_in_order(group_ids)
    weights = [sum(lengths[i] for i in rows[g]) + len(rows[g]) for g in order]
    return [sorted(i for k in items for i in rows[order[k]]) for items in balance(weights, parts)]


def positions(shards: list[list[int]], n: int) -> np.ndarray:
    """(n,) position of each global row in the concatenation of the shards' results."""
    order = np.concatenate([np.asarray(s, dtype=np.int64) for s in shards]) if shards else np.zeros(0, np.int64)
    if sorted(order.tolist()) != list(range(n)):
        raise ValueError(f"shards do not cover rows 0..{n - 1} exactly once")
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    return inverse


def rank_shares(group_ids: list[int], lengths: list[int], *, mini_batches: int, ranks: int,
                seed: int) -> list[tuple[list[int], RankShare]]:
    """Per policy rank: (its global rows, ascending; its RankShare).

    Mini-batch m holds the groups order[m*k:(m+1)*k] of a permutation drawn from `seed` (k = groups
    per mini-batch), as a single rank would take them; each rank gets k / ranks of those groups,
    token loads balanced, so every rank runs the same number of micro-batches (ZeRO-3 needs it).
    """
    order = groups_in_order(group_ids)
    if len(order) % mini_batches:
        raise ValueError(f"{len(order)} groups do not split into {mini_batches} mini-batches")
    per_mini = len(order) // mini_batches
    if per_mini % ranks:
        raise ValueError(f"{per_mini} groups per mini-batch do not split evenly over {ranks} policy ranks")
    rows = _rows_by_group(group_ids)
    shuffled = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    per_rank: list[list[list[int]]] = [[] for _ in range(ranks)]   # rank -> mini -> global rows
    tokens, counts = [], []
    for m in range(mini_batches):
        chosen = shuffled[m * per_mini:(m + 1) * per_mini]
        weights = [sum(lengths[i] for i in rows[g]) for g in chosen]
        for r, items in enumerate(balance(weights, ranks, per_part=per_mini // ranks)):
            per_rank[r].append(sorted(i for k in items for i in rows[chosen[k]]))
        mini_rows = [i for g in chosen for i in rows[g]]
        tokens.append(sum(lengths[i] for i in mini_rows))
        counts.append(len(mini_rows))
    out = []
    for minis in per_rank:
        mine = sorted(i for mini in minis for i in mini)
        local = {g: k for k, g in enumerate(mine)}
        share = RankShare(minis=tuple(tuple(local[i] for i in mini) for mini in minis),
                          mini_tokens=tuple(tokens), mini_rows=tuple(counts), world_size=ranks)
        out.append((mine, share))
    return out
