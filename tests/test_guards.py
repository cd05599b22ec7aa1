"""Bad values never train: non-finite rewards masked with zero advantage, logprob rows refused, bad steps
counted until run.max_bad_steps stops the run (hand-worked numbers)."""
import numpy as np
import pytest

from promedical.actors.policy_rows import usable_rows
from promedical.deploy.config import load_config
from promedical.errors import UserError
from promedical.rollout.advantages import drgrpo, grpo
from promedical.rollout.guards import BadSteps, BadValuesError, describe, finite_rows, masked_advantages, step_health

NAN, INF = float("nan"), float("inf")


def test_finite_rows_of_numbers_and_of_ragged_sequences():
    assert finite_rows(np.array([1.0, NAN, -INF, 0.0])).tolist() == [True, False, False, True]
    assert finite_rows([[0.1, -2.0], [], [0.3, NAN], [INF]]).tolist() == [True, True, False, False]


def test_nonfinite_rewards_get_zero_advantage_and_leave_the_loss():
    # group 0: rewards 1, NaN, 0, 2 -> finite rows 1, 0, 2: mean 1; drgrpo: r - 1 = 0, -1, 1
    # group 1: inf, 3 -> one finite row: a constant group, advantage 0
    # group 2: NaN, NaN -> nothing finite
    rewards = np.array([1.0, NAN, 0.0, 2.0, INF, 3.0, NAN, NAN])
    groups = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    adv, mask = masked_advantages(drgrpo, rewards, groups)
    assert mask.tolist() == [True, False, True, True, False, True, False, False]
    assert adv.tolist() == [0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    # grpo: sample std of (1, 0, 2) is sqrt((0 + 1 + 1) / 2) = 1, so A = (r - 1) / (1 + 1e-6)
    adv, _ = masked_advantages(grpo, rewards, groups)
    assert adv[[0, 2, 3]] == pytest.approx([0.0, -1 / (1 + 1e-6), 1 / (1 + 1e-6)], abs=1e-12)
    assert np.isfinite(adv).all() and (adv[~mask] == 0.0).all()


def test_all_finite_rewards_leave_the_advantage_unchanged():
    rewards, groups = np.array([0.1, 0.4, 0.2, 0.9]), np.array([3, 3, 5, 5])
    adv, mask = masked_advantages(grpo, rewards, groups, std="population")
    assert mask.all()
    assert adv.tolist() == grpo(rewards, groups, std="population").tolist()


def test_the_policy_refuses_rows_with_nonfinite_logprobs_or_advantage():
    behaviour = [[-0.5, -1.0], [-0.2, NAN], [-0.1], [-0.3], [-0.4]]
    ref = [[-0.6, -1.1], [-0.2, -0.1], [-INF], [-0.3], [-0.4]]
    loss_mask = np.array([True, True, True, False, True])
    adv = np.array([0.5, 0.5, 0.5, 0.0, NAN])
    usable, bad_logprobs = usable_rows(loss_mask, adv, behaviour, ref)
    assert usable.tolist() == [True, False, False, False, False]
    assert bad_logprobs == 2                       # rows 1 (behaviour NaN) and 2 (reference -inf)


def test_a_step_is_bad_when_no_row_is_left_or_every_micro_batch_was_skipped():
    some = step_health(np.array([True, False, True, True]), {"masked_rows": 2.0, "nonfinite_logprob_rows": 1.0,
                                                             "microbatches": 2.0, "skipped_microbatches": 1.0})
    assert (some.nonfinite_reward_rows, some.masked_rows, some.bad) == (1, 2, False)
    every_row = step_health(np.array([False, False]), {"microbatches": 1.0})
    assert every_row.bad and every_row.masked_rows == 2   # counted by the driver even if the report lacks it
    skipped = step_health(np.array([True, True]), {"microbatches": 2.0, "skipped_microbatches": 2.0})
    assert skipped.bad
    assert step_health(np.array([True]), {}).metrics() == {
        "nonfinite_reward_rows": 0.0, "nonfinite_logprob_rows": 0.0, "masked_rows": 0.0,
        "skipped_microbatches": 0.0, "bad_step": 0.0}


def test_bad_steps_in_a_row_stop_the_run_with_one_line():
    bad = {"bad_step": 1.0, "masked_rows": 8.0, "nonfinite_reward_rows": 8.0}
    counter = BadSteps(limit=2)
    counter.observe(0, bad)
    counter.observe(1, {"bad_step": 0.0})          # a good step resets the count
    counter.observe(2, bad)
    with pytest.raises(BadValuesError) as err:
        counter.observe(3, bad)
    message = str(err.value)
    assert "\n" not in message
    assert "stopped at step 3: 2 bad steps in a row (run.max_bad_steps=2)" in message
    assert describe(bad) in message and "8 non-finite rewards" in message


def test_max_bad_steps_must_be_at_least_one():
    assert load_config("tiny").run.max_bad_steps == 3
    assert load_config("tiny", ["run.max_bad_steps=1"]).run.max_bad_steps == 1
    with pytest.raises(UserError, match=r"run.max_bad_steps=0: must be >= 1"):
        load_config("tiny", ["run.max_bad_steps=0"])


def test_dynamic_sampling_counts_a_group_informative_by_its_finite_rewards_only():
    from promedical.rollout.sampling import informative_groups

    # group 7: 0.5, NaN, 0.5 -> finite rewards equal: constant; group 8: NaN, 0.2, 0.9 -> informative;
    # group 9: all non-finite -> nothing to learn from; group 10: 0.1, 0.3 -> informative
    rewards = [0.5, NAN, 0.5, NAN, 0.2, 0.9, NAN, INF, 0.1, 0.3]
    groups = [7, 7, 7, 8, 8, 8, 9, 9, 10, 10]
    assert informative_groups(np.array(rewards), np.array(groups)).tolist() == [8, 10]


def test_masked_rows_carry_no_loss_tokens_when_ranks_are_balanced():
    import pyarrow as pa
    from promedical.actors.groups import loss_lengths

    summary = pa.RecordBatch.from_pydict({"response_length": [5, 7, 3, 9], "finish_reason": ["stop", "length",
                                                                                             "stop", "stop"]})
    assert loss_lengths(summary, mask_truncated=False) == [5, 7, 3, 9]
    masked = summary.append_column("loss_mask", pa.array([True, True, False, True]))
    assert loss_lengths(masked, mask_truncated=False) == [5, 7, 0, 9]
    assert loss_lengths(masked, mask_truncated=True) == [5, 0, 0, 9]
