"""runtime/distributed.import_deepspeed: DeepSpeed without its autotuner's mlflow import (seconds of every
policy rank's start), while mlflow stays importable in the same process (the mlflow sink)."""
from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
from promedical.runtime.distributed import import_deepspeed
deepspeed = import_deepspeed()
from deepspeed.autotuning import autotuner
assert "mlflow" not in sys.modules and not autotuner.has_mlflow, "DeepSpeed imported mlflow"
import mlflow
from mlflow.entities import Metric
print("ok", deepspeed.__name__, mlflow.__name__)
"""


def test_deepspeed_imports_without_mlflow_and_mlflow_still_imports_after():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok", "deepspeed", "mlflow"]
