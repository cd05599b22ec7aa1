"""Whole tiny runs under the collective weight sync, on CPU over gloo: the code NCCL runs on a GPU (the
same sender, buckets, ZeRO-3 gathers, rendezvous and vLLM receiving path; only the backend differs).

Two ZeRO-3 policy ranks and two generators, trained for three steps with the collective sync and with
the object store: the weights each sync delivered are the same, so the runs are the same run.
"""
import pytest

from promedical.deploy.config import load_config
from promedical.storage.run_dir import RunDir

SETTINGS = ["rollout.steps=3", "generator.replicas=2", "placement.roles.policy.replicas=2", "trainer.zero_stage=3",
            "rollout.max_new_tokens=12"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, local_ray):
    from promedical.deploy.run import train

    root = tmp_path_factory.mktemp("sync")
    return {m: RunDir(train(load_config("tiny", SETTINGS + [f"placement.weight_sync={m}",
                                                            "placement.weight_sync_bucket_mb=0.25"]), root / m))
            for m in ("object_store", "collective")}


@pytest.mark.slow
def test_a_zero3_two_rank_collective_run_is_the_object_store_run(runs, same_run):
    same_run(runs["collective"], runs["object_store"])
    # every step sampled with the weights the previous step's sync delivered, on both generators
    rollouts = runs["collective"].read_rollouts()
    assert sorted(set(zip(rollouts["policy_version"].to_pylist(), rollouts["generator_replica"].to_pylist()))) == [
        (v, g) for v in range(3) for g in range(2)]
