"""Prompt source: deterministic order, unique group ids, epoch wrap-around, resumable state."""
from promedical.reward.rubric import Criterion, Message, RubricRecord, Tier
from promedical.rollout.prompts import PromptSource, SourceState


def _records(n):
    crit = (Criterion(id="c", text="t", tier=Tier.PROFICIENCY, weight=1.0),)
    return [RubricRecord(prompt_id=f"p{i}", messages=(Message("user", f"q{i}"),), criteria=crit) for i in range(n)]


def test_epochs_cover_every_prompt_once_and_group_ids_are_unique():
    src = PromptSource(_records(5), seed=3)
    first = src.next_batch(5)
    second = src.next_batch(5)
    assert sorted(r.prompt_id for _, r in first) == [f"p{i}" for i in range(5)]
    assert sorted(r.prompt_id for _, r in second) == [f"p{i}" for i in range(5)]
    assert [g for g, _ in first + second] == list(range(10))
    assert [r.prompt_id for _, r in first] != [r.prompt_id for _, r in second]  # reshuffled per epoch


def test_same_seed_same_stream_and_state_resumes():
    a, b = PromptSource(_records(7), seed=1), PromptSource(_records(7), seed=1)
    a.next_batch(4)
    b.state = SourceState(**vars(a.state))
    assert [(g, r.prompt_id) for g, r in a.next_batch(6)] == [(g, r.prompt_id) for g, r in b.next_batch(6)]
