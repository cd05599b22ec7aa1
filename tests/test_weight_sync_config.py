"""Weight-sync methods the placement cannot carry are refused with one line naming the key and the fix,
exit 2, before Ray or any actor starts; the ones it can carry are accepted, and auto picks from the plan."""
import pytest

from promedical.cli.main import main
from promedical.deploy.config import load_config
from promedical.deploy.sync_plan import choose

# a refused config must not start Ray: these tests check ray.is_initialized(), so no shared Ray here
pytestmark = pytest.mark.usefixtures("own_ray")

QWEN_SPLIT = ["placement.strategy=split", "trainer.zero_stage=2"]


@pytest.mark.parametrize("preset, sets, line", [
    ("tiny", ["placement.weight_sync=cuda_ipc"],
     "placement.weight_sync=cuda_ipc needs each generator on its policy rank's GPU, but policy and generators hold no GPU"),
    ("qwen3-8b", [*QWEN_SPLIT, "placement.weight_sync=cuda_ipc"],
     "placement.weight_sync=cuda_ipc needs each generator on its policy rank's GPU, but generator replica 0 is not"),
    ("qwen3-8b", ["placement.weight_sync=collective", "generator.tensor_parallel_size=2", "placement.strategy=split",
                  "placement.roles.generator.num_gpus=2"],
     "placement.weight_sync=collective with generator.tensor_parallel_size=2: every TP worker"),
    ("tiny", ["placement.weight_sync_bucket_mb=0"], "placement.weight_sync_bucket_mb=0 must be > 0"),
    ("tiny", ["placement.weight_sync=nccl"], "placement.weight_sync=nccl needs GPUs"),
    ("tiny", ["placement.weight_sync=collective", "placement.roles.policy.num_gpus=0.5",
              "placement.roles.generator.num_gpus=0.5"], "policy rank 0 and generator replica 0 can share a GPU"),
])
def test_a_sync_the_placement_cannot_carry_exits_2_with_one_line(preset, sets, line, capsys, tmp_path):
    import ray

    args = ["train", "--config", preset, "--run-dir", str(tmp_path / "run")]
    assert main(args + [a for s in sets for a in ("--set", s)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and line in err, err
    assert "use " in err or "set " in err                     # the line says the fix
    assert not ray.is_initialized() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("preset, sets, method", [
    ("tiny", [], "object_store"),                                    # CPU: the suite's path (README)
    ("tiny", ["placement.weight_sync=collective", "trainer.zero_stage=3", "placement.roles.policy.replicas=2"],
     "collective"),
    ("qwen3-8b", [], "collective"),                                  # ZeRO-3, each generator on a GPU of its own
    ("qwen3-8b", [*QWEN_SPLIT, "placement.roles.generator.num_gpus=1"], "collective"),    # split, whole GPUs
    ("qwen3-8b", QWEN_SPLIT, "object_store"),         # split, 0.5-GPU generators: two could share one GPU
    ("qwen3-8b", ["trainer.zero_stage=2", "placement.roles.generator.num_gpus=1",
                  "placement.roles.policy.num_gpus=0.5", "placement.roles.reference.num_gpus=0.25",
                  "placement.roles.reward.num_gpus=0.25"], "collective"),     # a 2-GPU bundle: a GPU each
    ("qwen3-8b", ["placement.roles.policy.num_gpus=0.5", "placement.roles.generator.num_gpus=0.25",
                  "placement.roles.reference.num_gpus=0.125", "placement.roles.reward.num_gpus=0.125"],
     "object_store"),                                 # ZeRO-3 on one GPU per bundle: no NCCL, no IPC of partitions
    ("qwen3-8b", ["generator.tensor_parallel_size=2", "placement.roles.generator.num_gpus=2", "placement.strategy=split"],
     "object_store"),
])
def test_auto_picks_from_the_plan(preset, sets, method):
    cfg = load_config(preset, sets)
    assert choose(cfg.placement, cfg.generator.replicas, zero_stage=cfg.trainer.zero_stage,
                  tensor_parallel_size=cfg.generator.tensor_parallel_size, adapters=False) == method


def test_auto_maps_the_policy_gpu_when_each_generator_shares_its_rank_bundle():
    sets = ["trainer.zero_stage=2", "placement.roles.policy.num_gpus=0.5", "placement.roles.generator.num_gpus=0.25",
            "placement.roles.reference.num_gpus=0.125", "placement.roles.reward.num_gpus=0.125"]
    cfg = load_config("qwen3-8b", sets)
    assert choose(cfg.placement, cfg.generator.replicas, zero_stage=2, tensor_parallel_size=1, adapters=False) == "cuda_ipc"
    load_config("qwen3-8b", sets + ["placement.weight_sync=cuda_ipc"])        # and it is accepted
