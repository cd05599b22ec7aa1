"""Metric sinks: TensorBoard event files decoded with protobuf's own parser; the sink registry."""
from __future__ import annotations

import struct

import pytest

from promedical.observe import sinks
from promedical.errors import UserError


def event_class():
    """tensorflow.Event / Summary / Summary.Value with TensorFlow's field numbers, built by protobuf."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="tb_event_test.proto", package="tbtest", syntax="proto3")
    value = fdp.message_type.add(name="Value")
    value.field.add(name="tag", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    value.field.add(name="simple_value", number=2, type=F.TYPE_FLOAT, label=F.LABEL_OPTIONAL)
    summary = fdp.message_type.add(name="Summary")
    summary.field.add(name="value", number=1, type=F.TYPE_MESSAGE, type_name=".tbtest.Value",
                      label=F.LABEL_REPEATED)
    event = fdp.message_type.add(name="Event")
    event.field.add(name="wall_time", number=1, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    event.field.add(name="step", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    event.field.add(name="file_version", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    event.field.add(name="summary", number=5, type=F.TYPE_MESSAGE, type_name=".tbtest.Summary",
                    label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tbtest.Event"))


def read_records(data: bytes) -> list[bytes]:
    """TFRecord framing, checking both checksums of every record."""
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        assert struct.unpack_from("<I", data, pos + 8)[0] == sinks.masked_crc32c(data[pos:pos + 8])
        payload = data[pos + 12:pos + 12 + length]
        assert struct.unpack_from("<I", data, pos + 12 + length)[0] == sinks.masked_crc32c(payload)
        out.append(payload)
        pos += 16 + length
    return out


def test_crc32c_matches_the_castagnoli_check_value():
    assert sinks.crc32c(b"123456789") == 0xE3069283       # the standard CRC-32C check value
    assert sinks.crc32c(b"") == 0


def test_tensorboard_sink_writes_decodable_scalars(tmp_path):
    clock = iter([1000.0, 1001.5, 1003.0]).__next__
    sink = sinks.TensorBoardSink(tmp_path, clock=clock)
    sink.write({"step": 0, "policy_version": 1, "reward_mean": 0.25, "kl": 0.5, "staleness_hist": {"0": 4}})
    sink.write({"step": 1, "policy_version": 2, "reward_mean": -0.75, "kl": float("nan"), "veto_rate": 0.125})
    sink.close()
    files = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    Event = event_class()
    events = [Event.FromString(r) for r in read_records(files[0].read_bytes())]
    assert events[0].file_version == "brain.Event:2" and events[0].wall_time == 1000.0
    first = {v.tag: v.simple_value for v in events[1].summary.value}
    second = {v.tag: v.simple_value for v in events[2].summary.value}
    assert (events[1].step, events[2].step, events[2].wall_time) == (0, 1, 1003.0)
    assert first == {"policy_version": 1.0, "reward_mean": 0.25, "kl": 0.5}      # nested hist left out
    assert second == {"policy_version": 2.0, "reward_mean": -0.75, "veto_rate": 0.125}  # NaN left out


def test_make_sinks_by_name_and_unknown_name(tmp_path):
    made = sinks.make_sinks(tmp_path, ["tensorboard", "prometheus"])
    assert [type(s).__name__ for s in made] == ["TensorBoardSink", "PrometheusSink"]
    for s in made:
        s.close()
    with pytest.raises(UserError, match="unknown metric sink 'comet'"):
        sinks.make_sinks(tmp_path, ["comet"])


def test_gauge_names_are_prometheus_safe():
    assert sinks.gauge_name("time_step") == "promedical_time_step"
    assert sinks.gauge_name("s1/mean-x") == "promedical_s1_mean_x"
