"""Actor output into RUN_DIR/logs/<role>-<replica>.log instead of the driver's terminal.

    route_actor_logs(run.root / "logs")          # the driver, before the actors start
    ray.remote(cls).options(**log_options("generator", 0), ...)   # deploy/placement_ray.py, per actor

Each actor gets two environment variables in its runtime_env: the log file, and Ray's worker setup hook
naming `redirect_output`, which Ray runs in the new worker process before the actor class is built. It
points the process's stdout and stderr file descriptors at the log file, so vLLM, DeepSpeed and Ray
worker lines land there and Ray's log monitor has nothing to forward to the driver.

Also here: which of those lines (and of the driver's own Ray log lines) are known to be harmless, each
with its reason; `--verbose` and the driver's Ray log handlers leave them out.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

LOG_ENV = "PROMEDICAL_ACTOR_LOG"
# ray._private.ray_constants.WORKER_PROCESS_SETUP_HOOK_ENV_VAR: what ray.init(runtime_env={
# "worker_process_setup_hook": ...}) sets for a whole job; set per actor here, so each knows its own file
SETUP_HOOK_ENV = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"
HOOK = "promedical.observe.actor_logs.redirect_output"

_log_dir: Path | None = None


def route_actor_logs(log_dir: str | Path | None) -> Path | None:
    """Send the output of actors started from now on to `log_dir` (None: back to the driver's terminal)."""
    global _log_dir
    _log_dir = Path(log_dir).resolve() if log_dir is not None else None
    if _log_dir is not None:
        _log_dir.mkdir(parents=True, exist_ok=True)
    return _log_dir


def log_path(log_dir: str | Path, role: str, replica: int) -> Path:
    return Path(log_dir) / f"{role}-{replica}.log"


def log_options(role: str, replica: int) -> dict[str, Any]:
    """Ray actor options that send this actor's output to its log file; none when logs are not routed."""
    if _log_dir is None:
        return {}
    return {"runtime_env": {"env_vars": {LOG_ENV: str(log_path(_log_dir, role, replica)), SETUP_HOOK_ENV: HOOK}}}


def redirect_output() -> None:
    """Ray's worker setup hook: point file descriptors 1 and 2 at the file named by PROMEDICAL_ACTOR_LOG."""
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    try:      # on another node of a cluster RUN_DIR may not exist yet (or not be writable): make it, or
        Path(path).parent.mkdir(parents=True, exist_ok=True)         # keep Ray's own worker log instead
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        print(f"promedical: cannot write actor log {path} ({exc.strerror}); output stays in Ray's worker log",
              file=sys.stderr, flush=True)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


# Lines every run prints that say nothing is wrong; `--verbose` leaves them out of what it streams (the
# log files keep every line). Each pattern with the reason it is harmless:
HARMLESS = [
    # Ray writes these markers into each worker's output for its own log monitor (which job, which actor)
    re.compile(r"^:(job_id|actor_name|task_name):"),
    # every weight sync reloads layer by layer; a rotary embedding's cos/sin cache is computed, not in the
    # checkpoint, so vLLM puts the computed one back and warns that no weights were loaded for the layer
    re.compile(r"RotaryEmbedding: Failed to load weights"),
    # the vLLM CPU worker binds its OpenMP threads itself; the later torch.set_num_threads is skipped
    re.compile(r"doesn't allow to use `torch.set_num_threads` after the thread binding"),
    # memory is bound to the NUMA node(s) the CPU threads run on, which is what the binding is for
    re.compile(r"NUMA binding: Using MEMBIND policy"),
    # deprecated torch name used inside vLLM's own dispatcher, not by this code
    re.compile(r"`torch.distributed.reduce_op` is deprecated"),
    # performance hints for preloaded allocators/OpenMP; the measured figures in the README run without them
    re.compile(r"(libtcmalloc|libiomp) is not found in LD_PRELOAD"),
    # setup.sh removes Triton (its CUDA build breaks transformers' imports on CPU); vLLM-CPU's V1 runner
    # is the path used and measured
    re.compile(r"Model Runner V2 requires Triton|Triton is not installed"),
    # the generator asks for eager mode on purpose (actors/generator.py): no torch.compile or CUDA graphs
    re.compile(r"Inductor compilation was disabled|Enforce eager set, disabling torch.compile"),
    # applies to Mamba/SSM layers, which none of the shipped models have
    re.compile(r"Reset SSM cache type"),
    # the generator turns chunked prefill off on purpose (seeded sampling cannot rewind across chunks)
    re.compile(r"does not officially support disabling chunked prefill"),
    # the engine runs in the actor's process on purpose; sampling is seeded per prompt group anyway
    re.compile(r"The global random seed is set to .*VLLM_ENABLE_V1_MULTIPROCESSING"),
]
# Driver-side Ray lines, filtered from the driver's own log handlers (quiet_driver_warnings below):
DRIVER_HARMLESS = [
    # a local Ray started by this process: the token it mentions is generated and used by Ray itself
    re.compile(r"Token authentication is enabled for this Ray cluster"),
]


def worth_showing(line: str) -> bool:
    """Whether a streamed actor line is shown by `--verbose`: everything but the known harmless lines."""
    return bool(line.strip()) and not any(p.search(line) for p in HARMLESS)


class DropHarmless(logging.Filter):
    """Leaves out the driver-side Ray log lines listed (with their reasons) in actor_logs.DRIVER_HARMLESS."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.search(message) for p in DRIVER_HARMLESS)


def quiet_driver_warnings() -> None:
    """Install DropHarmless on the handlers of Ray's logger (Ray keeps them across ray.init)."""
    import ray  # noqa: F401  (configures the "ray" logger and its handlers)

    for handler in logging.getLogger("ray").handlers:
        if not any(isinstance(f, DropHarmless) for f in handler.filters):
            handler.addFilter(DropHarmless())
