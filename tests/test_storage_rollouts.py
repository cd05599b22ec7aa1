"""The rollout schema, column merging, the run directory and the metric log."""
import pyarrow as pa
import pytest

from promedical.storage.metrics_log import MetricsLog, read_events
from promedical.storage.run_dir import RunDir
from promedical.storage.schema import (GENERATION_FIELDS, REFERENCE_FIELDS, REWARD_FIELDS, ROLLOUT_SCHEMA,
                                       TRAINING_FIELDS, check_complete, columns_batch, merge_columns)


def _fill(fields, n):
    values = {pa.int64(): 1, pa.int32(): 2, pa.float32(): 0.5, pa.string(): "x", pa.bool_(): True}
    cols = {}
    for f in fields:
        if pa.types.is_list(f.type):
            item = values.get(f.type.value_type, 0)
            cols[f.name] = [[item, item]] * n
        else:
            cols[f.name] = [values[f.type]] * n
    return columns_batch(fields, cols)


def full_batch(n=3):
    gen = _fill(GENERATION_FIELDS, n)
    return merge_columns(gen, _fill(REWARD_FIELDS, n), _fill(REFERENCE_FIELDS, n), _fill(TRAINING_FIELDS, n))


def test_merge_orders_columns_by_schema_and_shares_buffers():
    gen = _fill(GENERATION_FIELDS, 3)
    # reference arrives before reward: the merged batch is still in schema order
    merged = merge_columns(gen, _fill(REFERENCE_FIELDS, 3), _fill(REWARD_FIELDS, 3), _fill(TRAINING_FIELDS, 3))
    check_complete(merged)
    assert merged.column("response_ids").buffers()[1].address == gen.column("response_ids").buffers()[1].address


def test_merge_rejects_duplicates_and_row_mismatch():
    gen = _fill(GENERATION_FIELDS, 3)
    with pytest.raises(ValueError, match="added twice"):
        merge_columns(gen, _fill(REWARD_FIELDS, 3), _fill(REWARD_FIELDS, 3))
    with pytest.raises(ValueError, match="row count"):
        merge_columns(gen, _fill(REWARD_FIELDS, 2))


def test_incomplete_batch_is_not_written(tmp_path):
    run = RunDir(tmp_path)
    run.create("a: 1\n")
    with pytest.raises(ValueError, match="missing"):
        run.write_rollouts(0, _fill(GENERATION_FIELDS, 2))
    assert list(run.rollouts_dir.iterdir()) == []


def test_rollouts_round_trip_with_pyarrow_and_pandas(tmp_path):
    run = RunDir(tmp_path)
    run.create("a: 1\n")
    run.write_rollouts(0, full_batch(3))
    run.write_rollouts(1, full_batch(2))
    table = run.read_rollouts()
    assert table.schema.equals(ROLLOUT_SCHEMA) and table.num_rows == 5
    import pyarrow.ipc as ipc
    direct = ipc.open_file(str(run.rollouts_dir / "step_000001.arrow")).read_all()
    assert direct.num_rows == 2
    assert direct.to_pandas()["response_ids"].iloc[0].tolist() == [2, 2]


def test_metrics_log_survives_a_torn_last_frame(tmp_path):
    path = tmp_path / "metrics.msgpack"
    log = MetricsLog(path)
    log.append({"step": 0, "policy_version": 1, "reward_mean": 0.5})
    log.append({"step": 1, "policy_version": 2, "reward_mean": 0.7})
    log.close()
    with open(path, "ab") as f:
        f.write(b"\x83\xa4step")       # a crash mid-write: the start of a third map
    events, offset = read_events(path)
    assert [e["step"] for e in events] == [0, 1]
    more, _ = read_events(path, offset)
    assert more == []
    with pytest.raises(ValueError):
        MetricsLog(tmp_path / "m2").append({"reward_mean": 1.0})
