"""Replacing dead or hung replicas: a role group settles its calls through `settle`, which swaps a replica
that died (process killed, node lost) or did not answer within the role's timeout for a fresh actor in
the same bundle and issues its call again. Calls are deterministic (sampling is seeded per GRPO group),
so the re-issued call returns exactly the rows the lost one would have.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import ray

from promedical.actors.errors import ReplicaError, gather


@dataclass
class Healing:
    """How replicas are replaced and what was replaced; shared by every group of a run."""

    replace: Callable[[str, int], Any]     # (role, replica) -> a new actor in that replica's bundle
    max_restarts: int = 10                 # over the whole run; past it a failure ends the run
    startup_timeout_s: float = 600.0       # a replacement must be up (model loaded) within this
    events: list[dict] = field(default_factory=list)   # restarts not yet written to the metric log
    total: int = 0

    def swap(self, role: str, replica: int, old: Any, error: ReplicaError) -> Any:
        if self.total >= self.max_restarts:
            raise ReplicaError(role, replica, f"{error}; not replaced: fault.max_restarts={self.max_restarts} "
                                              f"restarts already made (raise it to heal more)", error.cause)
        self.total += 1
        try:
            ray.kill(old, no_restart=True)   # a hung (stopped) process is killed, its bundle freed
        except Exception:                    # already gone
            pass
        new = self.replace(role, replica)
        try:            # a fresh actor loads its model first: that is not the call's time to answer
            ray.get(new.__ray_ready__.remote(), timeout=self.startup_timeout_s)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            raise ReplicaError(role, replica, f"{error}; its replacement did not start within "
                                              f"fault.startup_timeout_s={self.startup_timeout_s:g}s: {exc}",
                               "failed") from exc
        return new

    def record(self, role: str, replica: int, cause: str, seconds_lost: float) -> None:
        self.events.append({"role": role, "replica": replica, "cause": cause,
                            "seconds_lost": round(float(seconds_lost), 3)})

    def drain(self) -> list[dict]:
        out, self.events = self.events, []
        return out


class Healable(Protocol):
    role: str
    handles: list[Any]
    timeout_s: float
    healing: Healing | None


def settle(group: Healable, items: list[tuple[int, Any]], what: str,
           reissue: Callable[[int], Any], issued: list[Any] | None = None) -> list[Any]:
    """Values of the (replica, ref) calls in order. A replica that died or hung is replaced and
    `reissue(k)` makes call k again on `group.handles[replica]` (a new ref), until one answers.

    `issued[k]`, when given, is the actor call k went to. A call made before its replica was replaced
    (a batch generated ahead of training) is lost with the old actor: it is made again on the
    replacement, without replacing the replica a second time or counting a second restart.
    """
    out = []
    for k, (replica, ref) in enumerate(items):
        start = time.perf_counter()
        try:
            out.append(gather(group.role, [(replica, ref)], group.timeout_s, what)[0])
            continue
        except ReplicaError as err:
            if err.cause == "failed" or group.healing is None:
                raise
            failure = err
        replaced_since = issued is not None and issued[k] is not None and issued[k] is not group.handles[replica]
        out.append(_reissue_until_answered(group, replica, k, what, reissue, None if replaced_since else failure,
                                           start))
    return out


def _reissue_until_answered(group: Healable, replica: int, k: int, what: str, reissue: Callable[[int], Any],
                            failure: ReplicaError | None, since: float) -> Any:
    """Make call k again until a replica answers it. `failure`: why the replica must be replaced first
    (None: it already was). A replacement that dies or hangs in turn is replaced too, each counted
    against fault.max_restarts (which ends the loop), each recorded with the seconds it cost."""
    while True:
        if failure is not None:
            group.handles[replica] = group.healing.swap(group.role, replica, group.handles[replica], failure)
        issued_at = time.perf_counter()
        try:
            value = gather(group.role, [(replica, reissue(k))], group.timeout_s, what)[0]
        except ReplicaError as err:
            if err.cause == "failed":
                raise
            if failure is not None:
                group.healing.record(group.role, replica, failure.cause, issued_at - since)
            failure, since = err, issued_at
            continue
        if failure is not None:
            group.healing.record(group.role, replica, failure.cause, time.perf_counter() - since)
        return value
