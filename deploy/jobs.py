"""Ray job submission for training runs: address and token resolution, staging, submit/status/logs/stop.

Every SDK failure a user can fix (wrong address, missing or wrong token, unknown job id) becomes one
`UserError` line; the CLI prints it and exits 2.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shlex
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

from promedical.errors import UserError

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
JOB_CONFIG_NAME = "job_config.yaml"      # the resolved config, at the root of the job's working dir
JOB_RUNS_ROOT = "~/promedical-runs"      # default run dirs on the cluster: JOB_RUNS_ROOT/<job id>
# Not shipped to the cluster: environments, VCS data, caches and local run outputs.
STAGE_IGNORE = (".venv", ".git", "__pycache__", "*.egg-info", "runs", ".cache", "build", ".whl",
                "benchmarks", "*.pyc")
QUIET_LOGGERS = ("ray", "ray.dashboard.modules.job.sdk", "ray.dashboard.modules.dashboard_sdk",
                 "ray._private.runtime_env.packaging")
TOKEN_HELP = ("put the cluster's token (`ray get-auth-token` on the head node) in RAY_AUTH_TOKEN "
              "or ~/.ray/auth_token")


def resolve_address(address: str | None) -> str:
    """The dashboard URL: --address, else RAY_ADDRESS when it is an http(s) URL, else loopback."""
    chosen = address or os.environ.get("RAY_ADDRESS", "") or DEFAULT_ADDRESS
    if not chosen.startswith(("http://", "https://")):
        if address:
            raise UserError(f"--address {chosen!r}: give the dashboard URL, e.g. {DEFAULT_ADDRESS}")
        chosen = DEFAULT_ADDRESS    # RAY_ADDRESS may hold a GCS host:port, which is not the dashboard
    return chosen.rstrip("/")


def load_token() -> str | None:
    """Ray's token sources, in Ray's order: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


@contextmanager
def user_errors(address: str, job_id: str | None = None) -> Iterator[None]:
    """Turn the SDK's connection, authentication and not-found failures into one-line UserErrors."""
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError:
        if load_token() is None:
            raise UserError(f"{address} requires a Ray auth token and none was found; {TOKEN_HELP}") from None
        raise UserError(f"{address} rejected the Ray auth token (wrong token for this cluster); "
                        f"{TOKEN_HELP}") from None
    except ConnectionError:
        raise UserError(f"cannot reach a Ray dashboard at {address}; check --address or RAY_ADDRESS, "
                        f"or open the SSH tunnel (README: Operating runs on a cluster)") from None
    except RuntimeError as exc:
        text = str(exc)
        if job_id is not None and ("does not exist" in text or "404" in text):
            raise UserError(f"no job {job_id!r} on {address}; list jobs with `ray job list "
                            f"--address {address}`") from None
        raise UserError(f"Ray job server at {address}: {text.splitlines()[0] if text else exc!r}") from None


def connect(address: str | None):
    """A JobSubmissionClient for the dashboard at `address`, carrying the auth token when there is one."""
    from ray.job_submission import JobSubmissionClient

    url = resolve_address(address)
    token = load_token()
    for name in QUIET_LOGGERS:                             # the SDK's upload/websocket chatter
        logging.getLogger(name).setLevel(logging.WARNING)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    with user_errors(url):
        client = JobSubmissionClient(url, headers=headers)
        if token:
            client.list_jobs()                  # surfaces a wrong token now, not mid-command
    return client, url


def new_job_id(preset: str) -> str:
    return f"promedical-{preset or 'run'}-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def stage_project(config_yaml: str) -> Path:
    """A temporary working dir holding a copy of the package as `promedical/` and the resolved config."""
    stage = Path(tempfile.mkdtemp(prefix="promedical-job-"))
    shutil.copytree(PROJECT_ROOT, stage / "promedical", ignore=shutil.ignore_patterns(*STAGE_IGNORE))
    (stage / JOB_CONFIG_NAME).write_text(config_yaml, encoding="utf-8")
    return stage


def entrypoint(run_dir: str) -> str:
    """The command the job runs on the cluster, in the job's working dir."""
    return f"python -m promedical.deploy.job_entry --config {JOB_CONFIG_NAME} --run-dir {shlex.quote(run_dir)}"


def submit(address: str | None, config_yaml: str, preset: str, run_dir: str | None) -> tuple[str, str, str]:
    """Submit one training job; returns (job id, dashboard URL, run dir on the cluster)."""
    client, url = connect(address)
    job_id = new_job_id(preset)
    run_dir = run_dir or f"{JOB_RUNS_ROOT}/{job_id}"
    stage = stage_project(config_yaml)
    try:
        with user_errors(url):
            client.submit_job(entrypoint=entrypoint(run_dir), submission_id=job_id,
                              runtime_env={"working_dir": str(stage)},
                              metadata={"promedical_run_dir": run_dir, "promedical_preset": preset})
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return job_id, url, run_dir


def status(address: str | None, job_id: str) -> dict[str, str]:
    """Status, message and run dir of one job."""
    client, url = connect(address)
    with user_errors(url, job_id):
        info = client.get_job_info(job_id)
    return {"job_id": job_id, "status": str(info.status.value), "message": info.message or "",
            "run_dir": (info.metadata or {}).get("promedical_run_dir", ""), "address": url}


def stop(address: str | None, job_id: str) -> bool:
    """Ask Ray to stop the job (SIGTERM, then SIGKILL); True if it was still running."""
    client, url = connect(address)
    with user_errors(url, job_id):
        return bool(client.stop_job(job_id))


def logs(address: str | None, job_id: str) -> str:
    client, url = connect(address)
    with user_errors(url, job_id):
        return client.get_job_logs(job_id)


def follow_lines(address: str | None, job_id: str) -> Iterator[str]:
    """The job's log, line by line, from its start until the job ends (Ray's log websocket)."""
    client, url = connect(address)
    with user_errors(url, job_id):
        client.get_job_info(job_id)             # unknown job ids fail here, before the websocket
    loop = asyncio.new_event_loop()
    chunks = client.tail_job_logs(job_id)
    pending = ""
    try:
        while True:
            try:
                with user_errors(url, job_id):
                    chunk = loop.run_until_complete(chunks.__anext__())
            except StopAsyncIteration:
                break
            *complete, pending = (pending + chunk).split("\n")
            yield from complete
        if pending:
            yield pending
    finally:
        loop.run_until_complete(chunks.aclose())
        loop.close()
