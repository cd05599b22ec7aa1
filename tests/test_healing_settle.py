"""`settle` on real Ray actors: a replica that dies is replaced once, and a call made on it before it was
replaced (a batch generated ahead of training) is made again on the replacement, not counted twice."""
import os
import signal
import time

import pytest
import ray

from promedical.actors.errors import ReplicaError
from promedical.actors.healing import Healing, settle


@ray.remote(num_cpus=0)
class Echo:
    def pid(self) -> int:
        return os.getpid()

    def echo(self, x: int, delay: float = 0.0) -> int:
        time.sleep(delay)
        return x


class Group:
    role, timeout_s = "generator", 30.0

    def __init__(self, handles, healing):
        self.handles, self.healing = handles, healing


def _started() -> tuple:
    handle = Echo.remote()
    return handle, ray.get(handle.pid.remote())


def test_a_call_issued_before_its_replica_was_replaced_is_reissued_without_a_second_restart(local_ray):
    replaced = []
    healing = Healing(replace=lambda role, replica: replaced.append(replica) or Echo.remote())
    old, pid = _started()
    group = Group([old], healing)
    issued = [old, old]
    refs = [old.echo.remote(1, 5.0), old.echo.remote(2, 5.0)]
    os.kill(pid, signal.SIGKILL)

    def reissue(k):
        issued[k] = group.handles[0]
        return group.handles[0].echo.remote(k + 1)

    assert settle(group, [(0, refs[0]), (0, refs[1])], "echo", reissue, issued=issued) == [1, 2]
    assert replaced == [0] and healing.total == 1
    assert [(e["role"], e["replica"], e["cause"]) for e in healing.drain()] == [("generator", 0, "died")]
    assert all(h is group.handles[0] for h in issued) and group.handles[0] is not old


def test_without_issued_handles_each_lost_call_replaces_the_replica(local_ray):
    # the behaviour `issued` corrects: the second lost call would replace a healthy replacement
    healing = Healing(replace=lambda role, replica: Echo.remote())
    old, pid = _started()
    group = Group([old], healing)
    refs = [old.echo.remote(1, 5.0), old.echo.remote(2, 5.0)]
    os.kill(pid, signal.SIGKILL)
    settle(group, [(0, refs[0]), (0, refs[1])], "echo", lambda k: group.handles[0].echo.remote(k + 1))
    assert healing.total == 2


def test_past_max_restarts_the_failure_ends_the_call(local_ray):
    healing = Healing(replace=lambda role, replica: Echo.remote(), max_restarts=0)
    old, pid = _started()
    ref = old.echo.remote(1, 5.0)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ReplicaError, match="fault.max_restarts=0"):
        settle(Group([old], healing), [(0, ref)], "echo", lambda k: None)


def test_a_replacement_lost_on_the_reissued_call_is_replaced_in_turn(local_ray):
    # two faults close together (the healing test's killed-then-frozen generator): the call re-made on a
    # replacement that dies too is made again on a third actor, each replacement counted and recorded
    healing = Healing(replace=lambda role, replica: Echo.remote())
    old, pid = _started()
    group = Group([old], healing)
    ref = old.echo.remote(1, 5.0)
    os.kill(pid, signal.SIGKILL)
    tries = []

    def reissue(k):
        handle = group.handles[0]
        tries.append(handle)
        if len(tries) == 1:                      # the first replacement dies while it makes the call
            pid = ray.get(handle.pid.remote())
            call = handle.echo.remote(k + 1, 5.0)
            os.kill(pid, signal.SIGKILL)
            return call
        return handle.echo.remote(k + 1)

    assert settle(group, [(0, ref)], "echo", reissue) == [1]
    assert healing.total == 2 and len({id(h) for h in tries}) == 2 and group.handles[0] is tries[-1]
    assert [e["cause"] for e in healing.drain()] == ["died", "died"]
