"""Metric sinks fed one step event at a time: TensorBoard, Prometheus (Ray metrics), W&B offline, MLflow.

    sinks = make_sinks(run_dir, ["tensorboard", "prometheus"])   # after Ray is started; also "wandb", "mlflow"
    for sink in sinks: sink.write(event)                          # each on_step, event as logged
    for sink in sinks: sink.close()                               # when the run ends

Only finite scalar values are exported; nested values (staleness_hist) stay in the msgpack log.
"""
from __future__ import annotations

import math
import re
import socket
import struct
import time
from pathlib import Path
from typing import Any, Callable, Protocol

TENSORBOARD_DIR = "tensorboard"          # RUN_DIR/tensorboard/events.out.tfevents.<time>.<host>
PROMETHEUS_PREFIX = "promedical_"        # Ray exports these as ray_promedical_<key>


class Sink(Protocol):
    def write(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def scalars(event: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of one event (bools as 0/1), keyed as in the log."""
    out = {}
    for key, value in event.items():
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[key] = float(value)
    return out


# --- TensorBoard: TFRecord framing of hand-encoded `tensorflow.Event` protos (no TF dependency) ---

def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: the CRC rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    """uint64 length, masked CRC of the length, the payload, masked CRC of the payload (little endian)."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint(number << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def event_proto(wall_time: float, step: int, values: dict[str, float] | None = None,
                file_version: str | None = None) -> bytes:
    """Event{1: wall_time double, 2: step int64, 3: file_version, 5: Summary{1: Value{1: tag, 2: float}}}."""
    out = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
    if file_version is not None:
        out += _field(3, 2, file_version.encode())
    if values:
        summary = b"".join(_field(1, 2, _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", v)))
                           for tag, v in values.items())
        out += _field(5, 2, summary)
    return out


class TensorBoardSink:
    """One scalar per metric per step, in an event file TensorBoard reads from RUN_DIR/tensorboard/."""

    def __init__(self, run_dir: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.dir = Path(run_dir) / TENSORBOARD_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        now = clock()
        self.path = self.dir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}"
        self._file = open(self.path, "ab")
        self._file.write(tfrecord(event_proto(now, 0, file_version="brain.Event:2")))
        self._file.flush()

    def write(self, event: dict[str, Any]) -> None:
        values = {k: v for k, v in scalars(event).items() if k != "step"}
        self._file.write(tfrecord(event_proto(self.clock(), int(event["step"]), values)))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# --- Prometheus: Ray's metrics agent exports gauges to the node's Prometheus endpoint ---

def gauge_name(key: str) -> str:
    return PROMETHEUS_PREFIX + re.sub(r"[^a-zA-Z0-9_]", "_", key)


class PrometheusSink:
    """A Ray gauge per metric, tagged with the run name; Ray's dashboard and Grafana read them."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run = Path(run_dir).name
        self._gauges: dict[str, Any] = {}

    def _gauge(self, key: str):
        if key not in self._gauges:
            from ray.util.metrics import Gauge
            self._gauges[key] = Gauge(gauge_name(key), description=f"ProMedical step metric {key}",
                                      tag_keys=("run",))
        return self._gauges[key]

    def write(self, event: dict[str, Any]) -> None:
        for key, value in scalars(event).items():
            self._gauge(key).set(value, tags={"run": self.run})

    def close(self) -> None:
        self._gauges.clear()


# --- Weights & Biases (offline) and MLflow (local file store): the trackers teams already look at ---

WANDB_DIR = "wandb"                      # RUN_DIR/wandb/offline-run-<time>-<id>/run-<id>.wandb; `wandb sync` uploads
MLFLOW_DIR = "mlruns"                    # RUN_DIR/mlruns; `mlflow ui --backend-store-uri RUN_DIR/mlruns` reads it
EXPERIMENT = "promedical"                # the W&B project and the MLflow experiment


def _optional(module: str, pip_name: str):
    """An optional sink's library, or one line saying how to install it."""
    import importlib

    from promedical.errors import UserError
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"run.sinks names {module.split('.')[0]}, which is not installed; "
                        f"pip install {pip_name} (setup.sh does), or drop it from run.sinks") from None


class WandbSink:
    """A W&B run in offline mode (no network, no login): one history row per step, keyed as in the log."""

    def __init__(self, run_dir: str | Path) -> None:
        wandb = _optional("wandb", "wandb")
        root = Path(run_dir)
        (root / WANDB_DIR).mkdir(parents=True, exist_ok=True)
        # console="off": the run's terminal output is the console's, not a copy in W&B
        self._run = wandb.init(mode="offline", dir=str(root), project=EXPERIMENT, name=root.name,
                               settings=wandb.Settings(silent=True, console="off"))

    def write(self, event: dict[str, Any]) -> None:
        values = {k: v for k, v in scalars(event).items() if k != "step"}
        self._run.log(values, step=int(event["step"]))

    def close(self) -> None:
        self._run.finish()


class MlflowSink:
    """An MLflow run in a file store under the run directory: every scalar as a metric at its step."""

    def __init__(self, run_dir: str | Path, clock: Callable[[], float] = time.time) -> None:
        import os

        # MLflow 3 refuses a file store unless asked: a database store needs SQLAlchemy and a server-side
        # schema, which a local, per-run record does not; the file store stays readable by MlflowClient
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        MlflowClient = _optional("mlflow.tracking", "mlflow-skinny").MlflowClient

        root = Path(run_dir).resolve()
        self.client = MlflowClient(tracking_uri=(root / MLFLOW_DIR).as_uri())
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(EXPERIMENT)
        self.run_id = self.client.create_run(experiment_id, run_name=root.name).info.run_id
        self.clock = clock

    def write(self, event: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now, step = int(self.clock() * 1000), int(event["step"])
        metrics = [Metric(k, v, now, step) for k, v in scalars(event).items() if k != "step"]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


SINKS: dict[str, Callable[[Path], Sink]] = {"tensorboard": TensorBoardSink, "prometheus": PrometheusSink,
                                           "wandb": WandbSink, "mlflow": MlflowSink}


def make_sinks(run_dir: str | Path, enabled: list[str]) -> list[Sink]:
    """The named sinks for one run; an unknown name is a config mistake."""
    from promedical.errors import UserError

    unknown = [name for name in enabled if name not in SINKS]
    if unknown:
        raise UserError(f"unknown metric sink {unknown[0]!r}; choose from {sorted(SINKS)}")
    return [SINKS[name](Path(run_dir)) for name in enabled]
