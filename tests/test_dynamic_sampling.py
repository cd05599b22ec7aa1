"""Dynamic sampling and overlong shaping in the driver, in-process with fake role groups (no Ray, no model).

Pieces are plain RecordBatches here; in a run they are object refs, and the code only moves them.
"""
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from promedical.actors.interfaces import Columns, PromptRequest, Rollouts, StepBatch
from promedical.reward.rubric import RubricRecord
from promedical.reward.rubric_io import load_records
from promedical.rollout.dynamic_sampling import Scoring, combine, sample_informative, shaped_rewards
from promedical.rollout.loop import LoopSettings, LoopState, Roles, run_loop
from promedical.rollout.prompts import PromptSource
from promedical.storage.schema import (GENERATION_FIELDS, REFERENCE_FIELDS, REWARD_FIELDS, SUMMARY_COLUMNS,
                                       columns_batch, gather_rows)

TINY = __import__("pathlib").Path(__file__).resolve().parent.parent / "data" / "tiny.jsonl"


def _generation(group_ids: list[int], group_size: int, version: int = 0, lengths=None) -> pa.RecordBatch:
    cols: dict[str, Any] = {f.name: [] for f in GENERATION_FIELDS}
    for g in group_ids:
        for k in range(group_size):
            n = lengths[k] if lengths else k + 1
            row = dict(prompt_id="p", group_id=g, sample_index=k, prompt_ids=[1, 2], response_ids=[3] * n,
                       response_length=n, response_text="x" * n, finish_reason="stop", behaviour_logprobs=[-1.0] * n,
                       policy_version=version, generate_seconds=0.01, generator_replica=0)
            for key, v in row.items():
                cols[key].append(v)
    return columns_batch(GENERATION_FIELDS, cols)


def _rewards(batch: pa.RecordBatch) -> pa.RecordBatch:
    """reward = length / 10 for even groups; a constant 0.5 for odd groups (no signal)."""
    n = batch.num_rows
    lengths = batch.column("response_length").to_numpy()
    reward = np.where(batch.column("group_id").to_numpy() % 2 == 0, lengths / 10.0, 0.5)
    return columns_batch(REWARD_FIELDS, dict(criterion_ids=[["c"]] * n, criterion_tiers=[["proficiency"]] * n,
                                             criterion_scores=[[0.0]] * n, criterion_errors=[None] * n,
                                             s1=reward, s2=[0.0] * n, s3=[0.0] * n,
                                             reward=reward, score_seconds=[0.02] * n))


def _scoring(batch: pa.RecordBatch, split: int) -> Scoring:
    """A round held as two generation pieces and two reward pieces in reversed row order (like pools)."""
    n = batch.num_rows
    gen = Columns([batch.slice(0, split), batch.slice(split)], np.arange(n), [split, n - split])
    rew = _rewards(batch)
    reward = Columns([rew.slice(split), rew.slice(0, split)], np.r_[np.arange(split) + n - split, np.arange(n - split)],
                     [n - split, split])
    return Scoring(Rollouts(gen, batch.select(SUMMARY_COLUMNS)), reward, rew)


def _shape(s: Scoring) -> np.ndarray:
    return s.rewards.column("reward").to_numpy().astype(float)


def test_combine_keeps_rows_reachable_through_their_pieces():
    a, b = _scoring(_generation([0, 1], 2), 1), _scoring(_generation([2, 3], 2), 3)
    out = combine([a, b], np.array([6, 7, 0, 1]))                 # group 3 then group 0
    rows = gather_rows(out.rollouts.generation.pieces, out.rollouts.generation.where, np.arange(4))
    assert rows.column("group_id").to_pylist() == [3, 3, 0, 0]
    assert rows.column("sample_index").to_pylist() == [0, 1, 0, 1]
    rewards = gather_rows(out.reward.pieces, out.reward.where, np.arange(4))
    assert rewards.equals(out.rewards)
    assert out.rollouts.summary.column("group_id").to_pylist() == [3, 3, 0, 0]


def test_a_shipment_carries_only_the_pieces_holding_its_rows():
    from promedical.actors.groups import _assemble, shipment

    a, b = _scoring(_generation([0, 1], 2), 1), _scoring(_generation([2, 3, 4], 2), 4)
    out = combine([a, b], np.array([9, 8, 0, 1, 6, 7]))           # groups 4, 0, 3: pieces 3, 0, 2 of 4
    sources = [out.rollouts.generation, out.reward]
    for rows in (np.array([2, 3]), np.array([0, 1, 4, 5]), np.arange(6)):
        lead, refs = shipment(sources, rows)
        whole = [gather_rows(c.pieces, c.where, rows) for c in sources]
        got = _assemble(*lead, *refs)
        assert got.column("group_id").equals(whole[0].column("group_id"))
        assert got.column("reward").equals(whole[1].column("reward"))
        needed = {id(p) for c in sources for k, p in enumerate(c.pieces)
                  if np.isin(c.where[rows], np.arange(sum(c.sizes[:k]), sum(c.sizes[:k + 1]))).any()}
        assert {id(r) for r in refs} == needed and len(refs) == len(needed)
    assert len(shipment(sources, np.array([2, 3]))[1]) == 4 < 8      # group 0's rows: round a's pieces only


def test_sample_informative_generates_until_enough_groups():
    first = _scoring(_generation([0, 1, 3], 2), 2)                 # groups 1 and 3 constant: 1 informative
    asked = []

    def more(n):
        asked.append(n)
        return _scoring(_generation(list(range(4, 4 + n)), 2), 1)
    out, metrics = sample_informative(first, wanted=2, max_rounds=3, group_size=2, more=more, shape=_shape)
    assert asked == [1]                                            # only the shortfall is generated
    assert out.rollouts.summary.column("group_id").to_pylist() == [0, 0, 4, 4]
    assert metrics == {"sampling_rounds": 2.0, "sampled_groups": 4.0, "dropped_constant_groups": 2.0,
                       "filled_constant_groups": 0.0}


def test_sample_informative_fills_with_constant_groups_when_rounds_run_out():
    first = _scoring(_generation([1, 2, 3], 2), 2)                 # only group 2 informative
    out, metrics = sample_informative(first, wanted=3, max_rounds=1, group_size=2,
                                      more=lambda n: pytest.fail("no extra round allowed"), shape=_shape)
    assert out.rollouts.summary.column("group_id").to_pylist() == [2, 2, 1, 1, 3, 3]
    assert metrics["filled_constant_groups"] == 2.0 and metrics["sampling_rounds"] == 1.0


def test_soft_overlong_penalty_shapes_the_rewards_the_advantage_sees():
    # budget 10, buffer 4: lengths 5, 7, 10 -> penalties 0, -0.25, -1; stored rewards are unchanged
    batch = _generation([0], 3, lengths=[5, 7, 10])
    rewards = _rewards(batch)
    shaped, metrics = shaped_rewards(rewards, batch, overlong="soft", max_new_tokens=10, buffer=4)
    np.testing.assert_allclose(shaped, [0.5, 0.7 - 0.25, 1.0 - 1.0])
    assert metrics == {"overlong_penalty_mean": pytest.approx(-1.25 / 3), "overlong_penalised_fraction": 2 / 3}
    assert shaped_rewards(rewards, batch, overlong="none", max_new_tokens=10, buffer=4)[1] == {}
    # filter: rewards unchanged, the share of rows cut at the budget is logged (1 of 3 here)
    cut = batch.set_column(batch.schema.get_field_index("finish_reason"), "finish_reason",
                           pa.array(["stop", "stop", "length"]))
    same, metrics = shaped_rewards(rewards, cut, overlong="filter", max_new_tokens=10, buffer=4)
    np.testing.assert_allclose(same, [0.5, 0.7, 1.0])
    assert metrics == {"overlong_masked_fraction": pytest.approx(1 / 3)}


class _Generators:
    def __init__(self) -> None:
        self.version = 0
        self.calls: list[list[int]] = []

    def generate(self, requests: list[PromptRequest], group_size: int) -> pa.RecordBatch:
        self.calls.append([r.group_id for r in requests])
        return _generation([r.group_id for r in requests], group_size, self.version)

    def collect(self, batch: pa.RecordBatch) -> Rollouts:
        return Rollouts(Columns.whole(batch), batch.select(SUMMARY_COLUMNS))

    def fetch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch

    def restored(self, batch: pa.RecordBatch, requests: list[PromptRequest]) -> pa.RecordBatch:
        return batch


class _Done:
    def __init__(self, columns: pa.RecordBatch) -> None:
        self.columns, self._small = Columns.whole(columns), columns

    def small(self) -> pa.RecordBatch:
        return self._small


class _Reward:
    def score(self, rollouts: Rollouts, rubrics: dict[str, RubricRecord]) -> _Done:
        return _Done(_rewards(gather_rows(rollouts.generation.pieces, rollouts.generation.where,
                                          np.arange(rollouts.num_rows))))


class _Reference:
    def __init__(self) -> None:
        self.rows: list[int] = []

    def logprobs(self, rollouts: Rollouts) -> _Done:
        self.rows.append(rollouts.num_rows)
        return _Done(columns_batch(REFERENCE_FIELDS, {"ref_logprobs": [[-1.0]] * rollouts.num_rows,
                                                      "reference_seconds": [0.03] * rollouts.num_rows}))


class _Policy:
    def train_step(self, step: StepBatch, seed: int) -> dict[str, float]:
        return {"loss": 0.0, "train_seconds": 0.04}

    def save(self, directory: str) -> None:
        pass

    def restore(self, directory: str) -> list[int]:
        return [0]


class _Sync:
    def __init__(self, generators: _Generators) -> None:
        self.generators = generators

    def start(self, version: int) -> int:
        self.generators.version = version
        return version

    def wait(self, pending: int) -> float:
        return 0.0


def _run(staleness: int, rounds: int, steps: int = 3):
    gens, reference = _Generators(), _Reference()
    roles = Roles(policy=_Policy(), reference=reference, reward=_Reward(), generators=gens, sync=_Sync(gens))
    settings = LoopSettings(steps=steps, prompts_per_step=2, group_size=3, max_staleness=staleness, advantage="grpo",
                            dynamic_sampling=True, max_sampling_rounds=rounds)
    seen = []
    run_loop(roles, PromptSource(load_records(TINY), seed=0), settings, LoopState(),
             on_step=lambda s, b, m: seen.append((b.summary.column("group_id").to_pylist(), m)))
    return seen, gens, reference


@pytest.mark.parametrize("staleness", [0, 1])
def test_the_loop_trains_only_informative_groups(staleness):
    seen, gens, reference = _run(staleness, rounds=4)
    for groups, m in seen:
        assert len(groups) == 6 and all(g % 2 == 0 for g in groups)          # odd groups are constant
        assert m["zero_advantage_fraction"] == 0.0 and m["sampling_rounds"] >= 2
        assert m["dropped_constant_groups"] >= 1 and m["filled_constant_groups"] == 0
    assert reference.rows == [6] * 3                 # the reference scores only the rows kept
    # the source hands out group ids in one fixed order: the same run again draws the same rounds
    again, gens2, _ = _run(staleness, rounds=4)
    assert [g for g, _ in again] == [g for g, _ in seen] and gens2.calls == gens.calls


def test_the_loop_counts_the_shortfall_when_rounds_are_capped():
    seen, _, _ = _run(0, rounds=1)
    for groups, m in seen:
        assert m["sampling_rounds"] == 1 and m["filled_constant_groups"] == 1
        assert m["zero_advantage_fraction"] == 0.5
