"""A lost node: on a simulated 2-node cluster, removing the node that holds one generator replica mid-run
leaves the run to finish on the remaining node (the replica is replaced where its bundle is re-placed)."""
import threading
import time

import pytest

from promedical.deploy.config import load_config
from promedical.storage.metrics_log import iter_events, read_events

# bundle 0 (policy 0.5 + reference + reward + generator 0) needs 1.25 CPUs: only the 2-CPU head holds it;
# SPREAD puts bundle 1 (generator 1, 0.25 CPU) on the 1-CPU worker, and may re-place it on the head
SETTINGS = ["rollout.steps=5", "rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=12",
            "generator.replicas=2", "placement.roles.policy.num_cpus=0.5", "placement.bundle_strategy=SPREAD",
            "run.checkpoint_every=1", "fault.timeout_s.generator=120", "generator.sync_timeout_s=120"]


@pytest.fixture(scope="module")
def cluster(own_ray):
    import ray
    from ray.cluster_utils import Cluster

    from promedical.deploy.build import start_ray

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    worker = c.add_node(num_cpus=1)
    c.wait_for_nodes()
    start_ray(c.address)
    yield c, worker
    ray.shutdown()
    c.shutdown()


def _generators_by_node() -> dict[str, list[int]]:
    from ray._private.state import actors
    out: dict[str, list[int]] = {}
    for a in actors().values():
        if a["ActorClassName"] == "Generator" and a["State"] == "ALIVE":
            out.setdefault(a["Address"]["NodeID"], []).append(a["Pid"])
    return out


@pytest.mark.slow
def test_the_run_finishes_on_the_remaining_node(cluster, tmp_path):
    from promedical.deploy.run import train

    c, worker = cluster
    cfg = load_config("tiny", SETTINGS + [f"run.address={c.address}"])
    errors = []
    thread = threading.Thread(target=lambda: _run(errors, train, cfg, tmp_path / "run"), daemon=True)
    thread.start()
    log = tmp_path / "run" / "metrics.msgpack"
    deadline = time.time() + 600
    while time.time() < deadline and thread.is_alive():
        if log.exists() and len(read_events(log)[0]) >= 2:
            assert worker.node_id in _generators_by_node(), "no generator replica on the worker node"
            c.remove_node(worker)
            break
        time.sleep(0.05)
    thread.join(timeout=900)
    assert not errors, errors
    assert [e["step"] for e in iter_events(log)] == list(range(5))
    restarts = [e for e in read_events(log)[0] if e.get("event") == "restart"]
    assert restarts and all(e["role"] in ("generator", "reward", "reference", "policy") for e in restarts)


def _run(errors, fn, *args):
    try:
        fn(*args)
    except BaseException as exc:
        errors.append(exc)
