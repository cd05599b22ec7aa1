"""Errors of remote calls to a role's replicas, each naming the role, the replica and the cause."""
from __future__ import annotations

import time
from typing import Any, Sequence

import ray


class ReplicaError(RuntimeError):
    """A replica failed or did not answer; the message names the role, the replica and the cause."""

    def __init__(self, role: str, replica: int, message: str, cause: str = "failed") -> None:
        super().__init__(f"{role} replica {replica}: {message}")
        self.role, self.replica, self.cause = role, replica, cause


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def gather(role: str, refs: Sequence[tuple[int, Any]], timeout_s: float, what: str) -> list[Any]:
    """Values of (replica, ref) pairs in order; ReplicaError for the first replica that fails or is late.

    Fails as soon as one call fails, without waiting for the others (ranks of a collective hang when
    one of them dies); "hung" when `timeout_s` passes with calls still unanswered.
    """
    if not refs:
        return []
    replica_of = {ref: replica for replica, ref in refs}
    pending, values = [ref for _, ref in refs], {}
    deadline = time.monotonic() + timeout_s
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            raise ReplicaError(role, replica_of[pending[0]], f"no answer to {what} within {timeout_s:g}s "
                                                             f"(fault.timeout_s.{role})", cause="hung")
        ref = ready[0]
        try:
            values[ref] = ray.get(ref)
        except ray.exceptions.RayError as exc:
            dead = isinstance(exc, (ray.exceptions.ActorDiedError, ray.exceptions.ActorUnavailableError))
            raise ReplicaError(role, replica_of[ref], f"{what} failed: {_last_line(exc)}",
                               cause="died" if dead else "failed") from exc
    return [values[ref] for _, ref in refs]
