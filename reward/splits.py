"""Stable splits of rubric records by prompt id: held-out prompt sets and reward-model calibration splits.

A record's side depends only on sha1(salt + ":" + prompt_id), so adding or removing other records never
moves it; the same salt always gives the same split. `is_heldout` is the one rule behind the shipped
held-out sets: data/medical_heldout.jsonl (policy evaluation) and data/pairs_heldout.jsonl (reward-model
evaluation) hold out the same prompt ids wherever a prompt appears in both.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

from promedical.errors import UserError
from promedical.reward.rubric import RubricRecord, Tier

HELDOUT_FRACTION = 0.25          # the project's held-out prompts: rubric prompts and reward-model pairs alike
HELDOUT_SALT = "promedical-heldout-v1"


def _unit(salt: str, prompt_id: str) -> float:
    """A stable number in [0, 1) for this prompt id."""
    return int(hashlib.sha1(f"{salt}:{prompt_id}".encode()).hexdigest()[:12], 16) / 16 ** 12


def is_heldout(prompt_id: str) -> bool:
    """Whether `prompt_id` is one of the project's held-out prompts (same rule for every data file)."""
    return _unit(HELDOUT_SALT, prompt_id) < HELDOUT_FRACTION


def in_calibration_split(prompt_id: str, fraction: float, seed: int) -> bool:
    """Whether `calibration_split(..., fraction, seed)` puts `prompt_id` on the calibration side."""
    return _unit(f"calibration:{seed}", prompt_id) < fraction


def hash_split(records: Sequence[RubricRecord], fraction: float, salt: str) -> tuple[list[RubricRecord],
                                                                                      list[RubricRecord]]:
    """(kept, split off): about `fraction` of the records, chosen by prompt id, order preserved."""
    held = [r for r in records if _unit(salt, r.prompt_id) < fraction]
    ids = {r.prompt_id for r in held}
    return [r for r in records if r.prompt_id not in ids], held


def check_disjoint(train: Sequence[RubricRecord], heldout: Sequence[RubricRecord], train_name: str,
                   heldout_name: str) -> None:
    """UserError when a held-out prompt id also appears in the training prompts."""
    shared = sorted({r.prompt_id for r in train} & {r.prompt_id for r in heldout})
    if shared:
        more = f" and {len(shared) - 1} more" if len(shared) > 1 else ""
        raise UserError(f"{heldout_name}: prompt_id {shared[0]!r}{more} also in the training prompts "
                        f"{train_name}; a held-out set must not share prompts with training (use a split file)")


def has_veto_pairs(records: Sequence[RubricRecord]) -> bool:
    for r in records:
        tiers = {c.id: c.tier for c in r.criteria}
        if any(tiers[p.criterion_id] is Tier.VETO for p in r.pairs):
            return True
    return False


def calibration_split(records: Sequence[RubricRecord], fraction: float,
                      seed: int) -> tuple[list[RubricRecord], list[RubricRecord]]:
    """(records to train on, records to calibrate on). fraction 0: calibrate on the training records.

    UserError when the training records hold veto pairs but the calibration split holds none: the veto
    threshold would then be fitted on nothing.
    """
    if fraction <= 0:
        return list(records), list(records)
    fit, calib = hash_split(records, fraction, salt=f"calibration:{seed}")
    if not calib or not fit:
        raise UserError(f"calibration split {fraction}: {len(calib)} of {len(records)} records for calibration; "
                        f"choose a fraction that leaves records on both sides")
    if has_veto_pairs(records) and not has_veto_pairs(calib):
        raise UserError(f"calibration split {fraction} (seed {seed}): its {len(calib)} records hold no veto pairs, "
                        f"so the veto threshold cannot be calibrated; use a larger fraction or more veto pairs")
    return fit, calib
