"""The driver loop in-process with fake role groups: no Ray, no model; checks the loop's own logic.

The fakes implement the role-group Protocols of actors/interfaces.py; tests/test_types.py type-checks
this file, so a fake that drops or changes a method fails there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from promedical.actors.interfaces import Columns, PromptRequest, Rollouts, StepBatch
from promedical.reward.rubric import RubricRecord
from promedical.reward.rubric_io import load_records
from promedical.rollout.loop import LoopSettings, LoopState, Roles, run_loop
from promedical.rollout.prompts import PromptSource
from promedical.storage.schema import GENERATION_FIELDS, REFERENCE_FIELDS, REWARD_FIELDS, columns_batch

TINY = __import__("pathlib").Path(__file__).resolve().parent.parent / "data" / "tiny.jsonl"


class FakeGenerators:
    """Rows whose length is the sample index + 1 and whose version is the generator's current one."""

    def __init__(self) -> None:
        self.version = 0
        self.calls: list[list[int]] = []

    def generate(self, requests: list[PromptRequest], group_size: int) -> Rollouts:
        self.calls.append([r.group_id for r in requests])
        cols: dict[str, Any] = {f.name: [] for f in GENERATION_FIELDS}
        for r in requests:
            for k in range(group_size):
                n = k + 1
                values = dict(prompt_id=r.prompt_id, group_id=r.group_id, sample_index=k, prompt_ids=[1, 2],
                              response_ids=[3] * n, response_length=n, response_text="x" * n, finish_reason="stop",
                              behaviour_logprobs=[-1.0] * n, policy_version=self.version, generate_seconds=0.01,
                              generator_replica=0)
                for key, v in values.items():
                    cols[key].append(v)
        batch = columns_batch(GENERATION_FIELDS, cols)
        return Rollouts(Columns.whole(batch), batch)

    def collect(self, generated: Rollouts) -> Rollouts:
        return generated

    def fetch(self, generated: Rollouts) -> pa.RecordBatch:
        return generated.summary

    def restored(self, batch: pa.RecordBatch, requests: list[PromptRequest]) -> Rollouts:
        return Rollouts(Columns.whole(batch), batch)


@dataclass
class Done:
    batch: pa.RecordBatch

    @property
    def columns(self) -> Columns:
        return Columns.whole(self.batch)

    def small(self) -> pa.RecordBatch:
        return self.batch


class FakeReward:
    """reward = response length / 10 for even groups; a constant 0.5 for odd groups."""

    def score(self, rollouts: Rollouts, rubrics: dict[str, RubricRecord]) -> Done:
        b = rollouts.summary
        n = b.num_rows
        lengths = b.column("response_length").to_numpy()
        groups = b.column("group_id").to_numpy()
        reward = np.where(groups % 2 == 0, lengths / 10.0, 0.5)
        cols = dict(criterion_ids=[["c"]] * n, criterion_tiers=[["proficiency"]] * n, criterion_scores=[[0.0]] * n,
                    criterion_errors=[None] * n,
                    s1=reward, s2=[0.0] * n, s3=[0.0] * n, reward=reward,
                    score_seconds=0.02 + 0.01 * (groups % 2))      # odd groups' replica is the slower one
        return Done(columns_batch(REWARD_FIELDS, cols))


class FakeReference:
    def logprobs(self, rollouts: Rollouts) -> Done:
        b = rollouts.summary
        return Done(columns_batch(REFERENCE_FIELDS, {"ref_logprobs": b.column("behaviour_logprobs").to_pylist(),
                                                     "reference_seconds": 0.03 + 0.01 * (np.arange(b.num_rows) > 0)}))


class FakePolicy:
    def __init__(self) -> None:
        self.trained: list[tuple[int, StepBatch]] = []

    def train_step(self, step: StepBatch, seed: int) -> dict[str, float]:
        self.trained.append((seed, step))
        return {"loss": 0.0, "kl": 0.0, "train_seconds": 0.04}

    def save(self, directory: str) -> None:
        pass

    def restore(self, directory: str) -> list[int]:
        return [0]


class FakeSync:
    def __init__(self, generators: FakeGenerators) -> None:
        self.generators = generators

    def start(self, version: int) -> int:
        self.generators.version = version
        return version

    def wait(self, pending: int) -> float:
        return 0.0


def _roles() -> Roles:
    gens = FakeGenerators()
    return Roles(policy=FakePolicy(), reference=FakeReference(), reward=FakeReward(), generators=gens,
                 sync=FakeSync(gens))


@pytest.mark.parametrize("staleness", [0, 2])
def test_the_loop_trains_each_group_once_within_the_staleness_bound(staleness):
    roles, steps = _roles(), 5
    source = PromptSource(load_records(TINY), seed=0)
    settings = LoopSettings(steps=steps, prompts_per_step=2, group_size=4, max_staleness=staleness, advantage="grpo")
    seen = []
    state = run_loop(roles, source, settings, LoopState(), on_step=lambda s, b, m: seen.append((s, b, m)))
    assert state.step == steps and state.version == steps
    assert [m["policy_version"] for _, _, m in seen] == list(range(1, steps + 1))
    trained_groups = [g for _, b, _ in seen for g in b.summary.column("group_id").to_pylist()]
    assert sorted(set(trained_groups)) == list(range(2 * steps))            # every group exactly once ...
    assert len(trained_groups) == 2 * steps * 4                              # ... with all its samples
    assert max(m["staleness_max"] for _, _, m in seen) == staleness
    # the policy got the version as its mini-batch seed, and the driver's training columns
    assert [seed for seed, _ in roles.policy.trained] == list(range(steps))
    for step, (_, batch, m) in enumerate(seen):
        training = batch.sources[3].pieces[0]
        adv = training.column("advantage").to_numpy()
        groups = batch.summary.column("group_id").to_numpy()
        for g in set(groups.tolist()):
            a = adv[groups == g]
            if g % 2:                                   # constant reward: exactly zero advantage
                assert (a == 0.0).all()
            else:                                       # rewards 0.1..0.4: centred, increasing
                assert abs(a.sum()) < 1e-5 and (np.diff(a) > 0).all()
        assert training.column("step").to_pylist() == [step] * 8
        assert m["zero_advantage_fraction"] == 0.5 and m["driver_bytes"] > 0
        # phase times are the slowest replica's (rows carry their replica's seconds; row 0's is the fastest)
        assert m["time_score"] == pytest.approx(0.03) and m["time_reference"] == pytest.approx(0.04)
        assert m["time_train"] == pytest.approx(0.04)


def test_async_launches_ahead_and_stops_at_the_step_count():
    roles = _roles()
    source = PromptSource(load_records(TINY), seed=0)
    settings = LoopSettings(steps=3, prompts_per_step=2, group_size=2, max_staleness=1, advantage="grpo")
    run_loop(roles, source, settings, LoopState(), on_step=lambda *a: None)
    assert len(roles.generators.calls) == 3                   # never a batch beyond the last step
