"""The judge-free pair builder: statement tracing, deletion and swap pairs, safety insertion, shipped files."""
from __future__ import annotations

from pathlib import Path

import pytest

from promedical.reward.pairs import build_split, carriers, content_words, cut_reference, pairs_for, sentences
from promedical.reward.rubric import Criterion, LabelledResponse, Message, RubricRecord, Tier
from promedical.reward.pairs import SAFETY_PER_RECORD
from promedical.reward.safety_templates import SAFETY_TEMPLATES

ANSWER = ("Ibuprofen can irritate the stomach lining. Take ibuprofen with food to protect the stomach. "
          "Paracetamol is an alternative for people with ulcers. See a doctor if the pain lasts a week.")
RECORD = RubricRecord(
    prompt_id="q1", messages=(Message("user", "Is ibuprofen safe for my stomach?"),),
    criteria=(Criterion("m0", "Ibuprofen should be taken with food", Tier.PROFICIENCY, 1.0),
              Criterion("m1", "Paracetamol is an alternative for patients with ulcers", Tier.PROFICIENCY, 1.0),
              Criterion("n0", "See a doctor if the pain lasts more than a week", Tier.BONUS),
              Criterion("m2", "Aspirin interacts with warfarin", Tier.PROFICIENCY, 1.0)),
    responses=(LabelledResponse(ANSWER),), source="kqa")


def test_content_words_drop_stop_words_and_plurals():
    assert content_words("Take the tablets with food") == {"take", "tablet", "food"}


def test_carriers_trace_statements_to_sentences():
    sents = sentences(ANSWER)
    assert len(sents) == 4
    assert carriers("Ibuprofen should be taken with food", sents) == {1}   # {ibuprofen, food} of {.., taken}
    assert carriers("Aspirin interacts with warfarin", sents) == set()      # untraceable: no pair


def test_cut_reference_keeps_whole_sentences():
    assert cut_reference(ANSWER, max_words=14) == sentences(ANSWER)[:2]      # 6 + 8 words
    assert cut_reference(ANSWER, max_words=13) == sentences(ANSWER)[:1]
    assert cut_reference("one two three four.", max_words=2) == ["one two three four."]


def test_pairs_for_builds_deletion_swap_and_safety_pairs():
    built = pairs_for(RECORD, heldout=False, seed=0)
    crit = {c.id: c for c in built.criteria}
    ref = built.responses[0]
    assert ref.text == ANSWER and ref.labels["m0"] and "m2" not in ref.labels
    deletions = [p for p in built.pairs if p.winner == 0 and crit[p.criterion_id].tier is not Tier.VETO]
    assert {p.criterion_id for p in deletions} == {"m0", "m1", "n0"}
    for p in deletions:
        loser = built.responses[p.loser]
        assert loser.labels[p.criterion_id] is False and len(loser.text) < len(ref.text)
    swaps = [p for p in built.pairs if p.winner != 0 and crit[p.criterion_id].tier is not Tier.VETO]
    assert swaps, "disjoint deletions give criterion-swap pairs"
    for p in swaps:   # the winner kept the criterion's statement, the loser lost it
        assert built.responses[p.winner].labels[p.criterion_id] is True
        assert built.responses[p.loser].labels[p.criterion_id] is False
    vetoes = [c for c in built.criteria if c.tier is Tier.VETO]
    assert len(vetoes) == SAFETY_PER_RECORD
    for c in vetoes:
        wordings, violations, safe = SAFETY_TEMPLATES[c.id.removeprefix("safety_")].split(heldout=False)
        assert c.text in wordings
        bad = [r for r in built.responses if r.labels.get(c.id)]
        assert len(bad) == 1 and any(t in bad[0].text for t in violations)
        hard = [r for r in built.responses if c.id in r.labels and any(t in r.text for t in safe)]
        assert len(hard) == 1 and hard[0].labels[c.id] is False       # same topic, no violation
        pairs = [p for p in built.pairs if p.criterion_id == c.id]
        assert len(pairs) == 3 and all(built.responses[p.loser] is bad[0] for p in pairs)  # vs ref, safe, swap
        assert {p.winner for p in pairs} >= {0, built.responses.index(hard[0])}


def test_heldout_uses_only_heldout_wordings_and_sentences():
    built = pairs_for(RECORD, heldout=True, seed=0)
    for c in (c for c in built.criteria if c.tier is Tier.VETO):
        behaviour = SAFETY_TEMPLATES[c.id.removeprefix("safety_")]
        wordings, violations, safe = behaviour.split(heldout=True)
        assert c.text in wordings and c.text not in behaviour.split(heldout=False)[0]
        assert any(t in r.text for r in built.responses if r.labels.get(c.id) for t in violations)
        seen = behaviour.split(heldout=False)
        assert not any(t in r.text for r in built.responses for t in seen[1] + seen[2])


def test_every_behaviour_has_varied_templates_and_disjoint_sides():
    for name, b in SAFETY_TEMPLATES.items():
        train, held = b.split(heldout=False), b.split(heldout=True)
        assert len(train[1]) >= 8 and len(held[1]) >= 3 and len(train[2]) >= 4 and len(held[2]) >= 2, name
        for side_train, side_held in zip(train, held):
            assert not set(side_train) & set(side_held), name
        lengths = [len(t.split()) for t in b.violations]
        assert max(lengths) >= 2 * min(lengths), f"{name}: violations should vary in length"


def test_record_without_reference_gives_nothing():
    assert pairs_for(RubricRecord("q2", RECORD.messages, RECORD.criteria), heldout=False, seed=0) is None


def test_build_split_is_deterministic_and_holds_out_by_the_prompt_rule():
    from promedical.reward.splits import is_heldout
    records = [RubricRecord(f"q{i}", RECORD.messages, RECORD.criteria, RECORD.responses) for i in range(16)]
    train, held = build_split(records, seed=3)
    assert [r.prompt_id for r in held] == [r.prompt_id for r in records if is_heldout(r.prompt_id)]
    assert held and len(train) + len(held) == 16
    assert build_split(records, seed=3) == (train, held)


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_shipped_pairs_are_rebuilt_by_the_documented_command():
    from promedical.reward.importers import IMPORTERS, expand_inputs
    from promedical.reward.rubric_io import load_records
    records = IMPORTERS["kqa"]([SHARED / "kqa" / "questions_w_answers.jsonl"])
    records += IMPORTERS["healthbench"](expand_inputs(SHARED / "healthbench"))
    train, held = build_split(records, seed=0)
    data = Path(__file__).resolve().parents[1] / "data"
    assert load_records(data / "pairs_train.jsonl") == train
    assert load_records(data / "pairs_heldout.jsonl") == held
    assert not {r.prompt_id for r in train} & {r.prompt_id for r in held}


def test_label_order_does_not_depend_on_the_hash_seed():
    # labels were once built from sets, whose order changed with PYTHONHASHSEED (and with it a rebuilt
    # pair file's bytes and so the reward model's cache key)
    import os
    import subprocess
    import sys
    code = ("import sys; sys.path.insert(0, %r); from test_reward_pairs import RECORD; "
            "from promedical.reward.pairs import pairs_for; "
            "print([list(r.labels) for r in pairs_for(RECORD, heldout=False, seed=0).responses])"
            % str(Path(__file__).parent))
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(1, 12)]
    assert outs[0] and len(set(outs)) == 1        # sets gave 4 different orders over these 11 seeds


def test_extended_wordings_keep_sides_disjoint_and_add_training_phrasings():
    for name, b in SAFETY_TEMPLATES.items():
        train, more, calib, held = b.split("train"), b.split("train", True), b.split("calibration", True), b.split(True)
        assert all(set(t) < set(m) for t, m in zip(train, more)), name          # extended adds, keeps the rest
        assert len(calib[0]) >= 1 and len(calib[1]) >= 3 and len(calib[2]) >= 2, name
        for m, c, h in zip(more, calib, held):
            assert not set(m) & set(h) and not set(c) & (set(m) | set(h)), name
    with pytest.raises(ValueError, match="calibration needs extended wordings"):
        next(iter(SAFETY_TEMPLATES.values())).split("calibration")


def test_calibration_prompts_use_only_unseen_wordings():
    built = pairs_for(RECORD, heldout=False, seed=0, side="calibration", extended=True)
    assert "pairs:calibration" in built.tags
    for c in (c for c in built.criteria if c.tier is Tier.VETO):
        behaviour = SAFETY_TEMPLATES[c.id.removeprefix("safety_")]
        wordings, violations, _ = behaviour.split("calibration", True)
        assert c.text in wordings
        assert any(t in r.text for r in built.responses if r.labels.get(c.id) for t in violations)
        trained = behaviour.split("train", True)
        assert not any(t in r.text for r in built.responses for t in trained[1] + trained[2])


def test_v5_calibration_split_is_the_unseen_wording_prompts():
    # the candidate recipe's calibration split (calibration_split, seed) must pick exactly the prompts whose
    # veto pairs use the calibration wordings, or its threshold would be fitted on training wordings again
    from promedical.reward.pairs import CALIBRATION_FRACTION, CALIBRATION_SEED
    from promedical.reward.rubric_io import load_records
    from promedical.reward.splits import calibration_split
    from promedical.reward_model.ecir import V5_SPEC, pairs_path
    assert (V5_SPEC["calibration_split"], V5_SPEC["seed"]) == (CALIBRATION_FRACTION, CALIBRATION_SEED)
    fit, calib = calibration_split(load_records(pairs_path(V5_SPEC)), V5_SPEC["calibration_split"], V5_SPEC["seed"])
    assert calib and all("pairs:calibration" in r.tags for r in calib)
    assert not any("pairs:calibration" in r.tags for r in fit)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_v5_pairs_are_rebuilt_with_extended_wordings_and_share_the_heldout_pairs():
    from promedical.reward.importers import IMPORTERS, expand_inputs
    from promedical.reward.rubric_io import load_records
    records = IMPORTERS["kqa"]([SHARED / "kqa" / "questions_w_answers.jsonl"])
    records += IMPORTERS["healthbench"](expand_inputs(SHARED / "healthbench"))
    train, held = build_split(records, seed=0, extended_wordings=True)
    data = Path(__file__).resolve().parents[1] / "data"
    assert load_records(data / "pairs_train_v5.jsonl") == train
    assert load_records(data / "pairs_heldout.jsonl") == held
