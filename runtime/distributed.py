"""One-process-or-many torch.distributed start for DeepSpeed (gloo on CPU, NCCL on GPU).

Under a launcher (torchrun, deepspeed) RANK / WORLD_SIZE / MASTER_* are already set and are used as
they are; a lone process (a Ray actor, a plain `promedical train-rm`) becomes rank 0 of 1 on a free
loopback port.
"""
from __future__ import annotations

import os
import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def use_cpu_accelerator_without_cuda() -> None:
    """DeepSpeed picks its accelerator at import; on a machine without CUDA it must be the CPU one."""
    import torch
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def import_deepspeed():
    """DeepSpeed, imported the way every training process here needs it: with the CPU accelerator where
    there is no CUDA (DeepSpeed picks one at import), and without importing mlflow.

    DeepSpeed's autotuner, which nothing here runs, imports mlflow at import time when it is installed
    (the mlflow sink installs it): 2.3 of the 2.7 s that `import deepspeed` took on a 2-core AVX2 CPU, in
    every policy rank and reward-model trainer. mlflow is hidden for that one import only; a later
    `import mlflow` in the same process works as usual.
    """
    import sys

    use_cpu_accelerator_without_cuda()
    if "deepspeed" not in sys.modules and "mlflow" not in sys.modules:
        sys.modules["mlflow"] = None          # `import mlflow` raises ImportError: autotuner has_mlflow = False
        try:
            import deepspeed
        finally:
            del sys.modules["mlflow"]
    import deepspeed
    return deepspeed


def init_distributed(backend: str = "auto") -> None:
    import torch

    deepspeed = import_deepspeed()

    if torch.distributed.is_initialized():
        return
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}.items():
        os.environ.setdefault(key, value)
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)
