"""Criterion-level training pairs from real reference answers, without a judge.

For each record with a reference response (K-QA's physician answer; HealthBench's ideal completion):
  1. The reference is cut to whole sentences within MAX_WORDS words (so a pair fits a 160-token window).
  2. Statement deletion (proficiency and bonus criteria): the sentences that carry a criterion's
     statement are those sharing >= CARRY_RATIO of its content words (or, failing that, the single best
     sentence if it shares >= MIN_RATIO); removing them gives a response that misses that criterion.
     Pairs: (c_j: reference > reference minus c_j) and, for two deletions with disjoint carriers,
     the criterion-swap pair (c_i: minus c_j > minus c_i), whose winner depends only on the criterion.
  3. Safety insertion (veto criteria): for SAFETY_PER_RECORD behaviours of SAFETY_TEMPLATES, the
     behaviour's veto criterion (one of its wordings) is added to the rubric, and two responses are made
     by inserting one sentence at a seeded sentence boundary: a violation (+a) and a same-topic safe
     hard negative (+safe_a). Pairs: (v_a: reference > +a), (v_a: +safe_a > +a) and the swap
     (v_a: +b > +a). For veto criteria "better" means safer; the response labels follow the rubric
     convention (True = violation present; +b and +safe_a are labelled not violating v_a).
Held-out pairs use held-out prompts (reward/splits.is_heldout, the rule of data/medical_heldout.jsonl too) and the held-out criterion wordings, violations and safe sentences
of every behaviour (safety_templates.VetoBehaviour.split), never seen in training.
With `extended_wordings` (the recipe v5 candidate's pairs, data/pairs_train_v5.jsonl) the training prompts
also use the extra training wordings, and those that the recipe's calibration split takes
(CALIBRATION_FRACTION, CALIBRATION_SEED = reward_model/ecir.py's calibration_split and seed) use only the
behaviours' calibration wordings, which no gradient step sees; they are tagged "pairs:calibration".
Held-out pairs are the same either way.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import replace

from promedical.reward.rubric import Criterion, LabelledResponse, PairwisePreference, RubricRecord, Tier
from promedical.reward.safety_templates import SAFETY_TEMPLATES
from promedical.reward.splits import in_calibration_split, is_heldout

MAX_WORDS = 80
CARRY_RATIO = 0.5
MIN_RATIO = 0.34
MAX_DELETIONS = {Tier.PROFICIENCY: 6, Tier.BONUS: 3}
MAX_SWAPS = 3
SAFETY_PER_RECORD = 3
CALIBRATION_FRACTION = 0.15      # = ECIR_SPEC["calibration_split"] (tests/test_reward_pairs.py checks it)
CALIBRATION_SEED = 0             # = ECIR_SPEC["seed"]

_STOP = set("""a an the and or but if of to in on at for with by from as is are was were be been being it its
this that these those you your we our they their he she his her them can could should would may might will
do does did not no so than then there here what which who how when why also any some such about into more
most other only very just""".split())
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def content_words(text: str) -> set[str]:
    """Lower-cased content words, plural 's' stripped: the unit of statement-sentence overlap."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {w[:-1] if len(w) > 4 and w.endswith("s") else w for w in words if len(w) > 2 and w not in _STOP}


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def cut_reference(text: str, max_words: int = MAX_WORDS) -> list[str]:
    """Leading whole sentences of `text` within `max_words` words (at least one sentence)."""
    out, words = [], 0
    for s in sentences(text):
        n = len(s.split())
        if out and words + n > max_words:
            break
        out.append(s)
        words += n
    return out


def carriers(statement: str, sents: list[str]) -> set[int]:
    """Indices of the sentences that carry `statement` (see the module docstring); empty if untraceable."""
    target = content_words(statement)
    if not target:
        return set()
    ratios = [len(content_words(s) & target) / len(target) for s in sents]
    found = {i for i, r in enumerate(ratios) if r >= CARRY_RATIO}
    if not found and ratios and max(ratios) >= MIN_RATIO:
        found = {max(range(len(ratios)), key=ratios.__getitem__)}
    return found


def _deletions(record: RubricRecord, sents: list[str], rng: random.Random):
    """(criterion, removed sentence indices) for traceable proficiency and bonus criteria."""
    out = []
    for tier, cap in MAX_DELETIONS.items():
        found = [(c, carriers(c.text, sents)) for c in record.by_tier(tier)]
        found = [(c, idx) for c, idx in found if idx and len(idx) < len(sents)]
        rng.shuffle(found)
        out += found[:cap]
    return out


def _swaps(items: list, rng: random.Random, cap: int = MAX_SWAPS) -> list[tuple[int, int]]:
    """Pairs (i, j) of items with disjoint removed sets, seeded, at most `cap`."""
    cands = [(i, j) for i in range(len(items)) for j in range(len(items))
             if i != j and not (items[i][1] & items[j][1])]
    rng.shuffle(cands)
    return cands[:cap]


def _insert(sents: list[str], sentence: str, rng: random.Random) -> str:
    at = rng.randint(0, len(sents))
    return " ".join(sents[:at] + [sentence] + sents[at:])


def pairs_for(record: RubricRecord, *, heldout: bool, seed: int, side: str = "",
              extended: bool = False) -> RubricRecord | None:
    """The record with its reference, derived responses and pairs; None when it has no reference. `side`
    (train, calibration, heldout; default: the one `heldout` says) and `extended` pick the veto wordings."""
    side = side or ("heldout" if heldout else "train")
    if not record.responses:
        return None
    rng = random.Random(f"{seed}:{record.prompt_id}")
    sents = cut_reference(record.responses[0].text)
    reference = " ".join(sents)
    dels = _deletions(record, sents, rng)
    traced = list(dict.fromkeys(c.id for c, _ in _deletions_all(record, sents)))   # ordered: files byte-stable
    labels0 = {cid: True for cid in traced}
    responses = [LabelledResponse(text=reference, labels=labels0)]
    pairs: list[PairwisePreference] = []
    for c, removed in dels:
        kept_ids = list(dict.fromkeys(d.id for d, idx in _deletions_all(record, sents) if not (idx & removed)))
        labels = {cid: True for cid in kept_ids} | {c.id: False}
        responses.append(LabelledResponse(" ".join(s for k, s in enumerate(sents) if k not in removed), labels))
        pairs.append(PairwisePreference(c.id, 0, len(responses) - 1))
    for i, j in _swaps(dels, rng):
        pairs.append(PairwisePreference(dels[i][0].id, 1 + j, 1 + i))
    phrasings = {cat: b.split(side, extended) for cat, b in SAFETY_TEMPLATES.items()}
    criteria, responses, pairs = _safety(record, sents, responses, pairs, phrasings=phrasings, rng=rng)
    if not pairs:
        return None
    return replace(record, criteria=criteria, responses=tuple(responses), pairs=tuple(pairs),
                   tags=(*record.tags, f"pairs:{side}"))


def _deletions_all(record: RubricRecord, sents: list[str]):
    found = [(c, carriers(c.text, sents)) for c in record.criteria if c.tier is not Tier.VETO]
    return [(c, idx) for c, idx in found if idx]


def _safety(record, sents, responses, pairs, *, phrasings: dict, rng: random.Random):
    """Adds SAFETY_PER_RECORD veto behaviours: their criteria (one wording each), an inserted-violation
    response and a same-topic safe response per behaviour, and their pairs (see the module docstring)."""
    cats = rng.sample(sorted(SAFETY_TEMPLATES), SAFETY_PER_RECORD)
    criteria = list(record.criteria)
    cids = [f"safety_{cat}" for cat in cats]
    added = []
    for cat, cid in zip(cats, cids):
        wordings, violations, safe = phrasings[cat]
        if cid not in {c.id for c in criteria}:
            criteria.append(Criterion(id=cid, text=rng.choice(wordings), tier=Tier.VETO, axis="safety",
                                      tags=("pairs:template",)))
        responses.append(LabelledResponse(_insert(sents, rng.choice(violations), rng),
                                          {c: c == cid for c in cids}))
        responses.append(LabelledResponse(_insert(sents, rng.choice(safe), rng), {c: False for c in cids}))
        bad, ok = len(responses) - 2, len(responses) - 1
        added.append((cid, bad))
        pairs += [PairwisePreference(cid, 0, bad), PairwisePreference(cid, ok, bad)]
    responses[0] = LabelledResponse(responses[0].text, responses[0].labels | {cid: False for cid in cids})
    for k, (cid, bad) in enumerate(added):        # criterion swaps: the other violation is safer under cid
        pairs.append(PairwisePreference(cid, added[(k + 1) % len(added)][1], bad))
    return tuple(criteria), responses, pairs


def build_split(records: list[RubricRecord], seed: int = 0,
                extended_wordings: bool = False) -> tuple[list[RubricRecord], list[RubricRecord]]:
    """(train, held-out) pair records; a record is held out by the project's prompt rule (splits.is_heldout).
    `extended_wordings`: see the module docstring (calibration prompts stay in the training list)."""
    train, heldout = [], []
    for record in (r for r in records if r.responses):
        is_held = is_heldout(record.prompt_id)
        calibrates = extended_wordings and in_calibration_split(record.prompt_id, CALIBRATION_FRACTION,
                                                                 CALIBRATION_SEED)
        built = pairs_for(record, heldout=is_held, seed=seed, extended=extended_wordings,
                          side="heldout" if is_held else "calibration" if calibrates else "train")
        if built is not None:
            (heldout if is_held else train).append(built)
    return train, heldout


def pair_counts(records: list[RubricRecord]) -> str:
    """'N records, M pairs (proficiency a, bonus b, veto c)'."""
    counts: Counter[str] = Counter()
    for r in records:
        tiers = {c.id: c.tier.value for c in r.criteria}
        counts.update(tiers[p.criterion_id] for p in r.pairs)
    per = ", ".join(f"{t.value} {counts[t.value]}" for t in Tier)
    return f"{len(records)} records, {sum(counts.values())} pairs ({per})"
