"""The run directory: resolved config, metric log, per-step rollouts (Arrow IPC) and checkpoints.

    RUN_DIR/config.yaml           the resolved config the run used
    RUN_DIR/metrics.msgpack       append-only metric events (storage.metrics_log)
    RUN_DIR/rollouts/step_000001.arrow   the rollouts trained on at that step, ROLLOUT_SCHEMA
    RUN_DIR/checkpoints/step_000010/     policy (HF format), optimizer, RNG, data position, buffer
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from promedical.storage.atomic import atomic_write_bytes
from promedical.storage.schema import ROLLOUT_SCHEMA, check_complete


def write_batch_file(path: Path, batch: pa.RecordBatch) -> Path:
    """One record batch as an Arrow IPC file, written atomically."""
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return path


class RunDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.msgpack"

    @property
    def rollouts_dir(self) -> Path:
        return self.root / "rollouts"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def create(self, config_yaml: str) -> None:
        self.rollouts_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.config_path, config_yaml.encode())

    def rollout_path(self, step: int) -> Path:
        return self.rollouts_dir / f"step_{step:06d}.arrow"

    def write_rollouts(self, step: int, batch: pa.RecordBatch) -> Path:
        check_complete(batch)
        return write_batch_file(self.rollout_path(step), batch)

    def rewind(self, step: int) -> None:
        """Forget what steps >= `step` wrote (metric events, rollouts): a resumed run redoes those steps."""
        from promedical.storage.metrics_log import truncate_before

        truncate_before(self.metrics_path, step)
        for path in self.rollouts_dir.glob("step_*.arrow"):
            if int(path.stem.split("_")[1]) >= step:
                path.unlink()

    def read_rollouts(self) -> pa.Table:
        """Every stored rollout row of the run, in step order."""
        files = sorted(self.rollouts_dir.glob("step_*.arrow"))
        tables = [ipc.open_file(pa.memory_map(str(p))).read_all() for p in files]
        return pa.concat_tables(tables) if tables else ROLLOUT_SCHEMA.empty_table()
