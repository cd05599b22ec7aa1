"""GPU memory estimates (deploy/memory_plan.py) with hand-worked numbers, and their check on plans."""
import json
import struct

import pytest

from promedical.deploy.config import load_config
from promedical.deploy.gpu_fit import check_memory, check_total, model_shape, slot_gpus
from promedical.deploy.memory_plan import (
    GIB, KNOWN_SHAPES, Estimate, decoder_params, generator_replica, inference_replica, kv_cache_needed,
    policy_rank, sequences_per_replica)
from promedical.deploy.placement import described_cluster, fit, make_plan
from promedical.errors import UserError

WORK_TRAIN, WORK_INFER, WORK_GEN = 8 * GIB, 4 * GIB, 2 * GIB


def test_qwen3_8b_parameter_count_by_hand():
    # per layer: q,o 4096x4096 each = 33_554_432; k,v 4096x1024 each = 8_388_608; MLP 3x4096x12288 =
    # 150_994_944; norms 8192 -> 192_946_176; x36 = 6_946_062_336; embeddings + LM head 2x151936x4096 =
    # 1_244_659_712; final norm 4096
    assert KNOWN_SHAPES["qwen3-8b"].params == 6_946_062_336 + 1_244_659_712 + 4096 == 8_190_726_144
    tied = decoder_params(vocab=10, hidden=4, layers=1, heads=2, kv_heads=1, head_dim=2, ffn=8, tied=True)
    # q,o 4x4 = 32; k,v 4x2 = 16; MLP 3x4x8 = 96; norms 8 -> 152; embeddings 40; final norm 4
    assert tied == 152 + 40 + 4


def test_kv_cache_bytes_per_token_and_a_step_share():
    # 36 layers x 8 kv heads x 128 x 2 (K, V) x 2 bytes = 147_456 B = 144 KiB per token
    assert KNOWN_SHAPES["qwen3-8b"].kv_bytes_per_token(2) == 147_456
    # 64 sequences x 2048 tokens x 144 KiB = 18 GiB; over tp=2 GPUs 9 GiB each
    need = kv_cache_needed(KNOWN_SHAPES["qwen3-8b"], dtype="bfloat16", tokens=2048, sequences=64,
                           tensor_parallel_size=1)
    assert need == 18 * GIB
    assert kv_cache_needed(KNOWN_SHAPES["qwen3-8b"], dtype="bfloat16", tokens=2048, sequences=64,
                           tensor_parallel_size=2) == 9 * GIB
    assert sequences_per_replica(64, 8, 8) == 64 and sequences_per_replica(10, 3, 4) == 8   # ceil(7.5)


@pytest.mark.parametrize("stage, weights, grads, optimizer", [
    (0, 16e9, 16e9, 96e9),     # 8e9 params x (2 + 2 + 12) B, nothing partitioned
    (1, 16e9, 16e9, 6e9),      # optimizer 96e9 / 16 ranks
    (2, 16e9, 1e9, 6e9),       # + gradients 16e9 / 16
    (3, 1e9, 1e9, 6e9),        # + weights 16e9 / 16
])
def test_zero_stages_partition_over_16_ranks_with_bf16(stage, weights, grads, optimizer):
    e = policy_rank(8_000_000_000, zero_stage=stage, ranks=16, train_dtype="bfloat16")
    assert (e.weights, e.gradients, e.optimizer, e.working) == (weights, grads, optimizer, WORK_TRAIN)
    assert e.total == weights + grads + optimizer + WORK_TRAIN


def test_fp32_training_has_no_master_copy():
    e = policy_rank(1_000_000_000, zero_stage=0, ranks=1, train_dtype="float32")
    assert (e.weights, e.gradients, e.optimizer) == (4e9, 4e9, 8e9)   # 4 + 4 + Adam m, v 4 + 4


def test_inference_and_generator_replicas():
    assert inference_replica(8_000_000_000, dtype="bfloat16") == Estimate(weights=16e9, working=WORK_INFER)
    # vLLM takes 0.5 x 80 GiB = 40 GiB per GPU; tp=2 holds half of 16e9 weights; the rest is KV cache
    g = generator_replica(8_000_000_000, dtype="bfloat16", gpu_memory_utilization=0.5, gpu_bytes=80 * GIB,
                          tensor_parallel_size=2)
    assert (g.weights, g.working, g.kv_cache) == (8e9, WORK_GEN, 40 * GIB - 8e9 - WORK_GEN)
    assert g.total == 40 * GIB


def _placed(overrides: list[str], cluster: str = "2x8"):
    cfg = load_config("qwen3-8b", overrides)
    plan = make_plan(cfg.placement, cfg.generator.replicas)
    nodes = described_cluster(cluster)
    return cfg, plan, nodes, fit(plan, nodes, "test")


def test_colocated_preset_seats_the_policy_on_its_own_gpu_and_sums_the_rest():
    cfg, plan, nodes, assignment = _placed([])
    seats = slot_gpus(plan, assignment, nodes)
    assert seats[("policy", 0)] == [("node0", 0)]
    assert seats[("reference", 0)] == seats[("reward", 0)] == seats[("generator", 0)] == [("node0", 1)]
    assert seats[("policy", 7)] == [("node1", 6)] and seats[("generator", 7)] == [("node1", 7)]
    table = check_memory(cfg, plan, assignment, nodes, 80.0)
    # policy: 8_190_726_144 x 16 B / 8 ranks = 16_381_452_288 B = 15.26 GiB, + 8 working = 23.26 GiB
    assert "node0:0  policy#0" in table and "23.3/80" in table
    # reference and reward: 2 x (16_381_452_288 + 4 GiB) = 41_352_839_168; generator 0.45 x 80 GiB =
    # 38_654_705_664; sum 80_007_544_832 B = 74.51 GiB
    assert "reference#0 reward#0 generator#0" in table and "74.5/80" in table


def test_split_preset_gives_each_policy_rank_a_gpu():
    cfg, plan, nodes, assignment = _placed(["placement.strategy=split"])
    seats = slot_gpus(plan, assignment, nodes)
    assert sorted(seats[("policy", k)][0] for k in range(8)) == [("node0", i) for i in range(8)]
    assert {seats[("reference", k)][0] for k in range(4)} == {("node1", 0)}     # 4 x 0.25 GPU
    assert {seats[("generator", k)][0] for k in range(2)} == {("node1", 4)}     # 2 x 0.5 GPU
    table = check_memory(cfg, plan, assignment, nodes, 80.0)
    assert "77.0/80" in table   # 4 x (15.26 + 4) GiB
    assert "72.0/80" in table   # 2 x 0.45 x 80 GiB


def test_two_policy_ranks_on_one_gpu_are_refused_under_nccl():
    cfg, plan, nodes, assignment = _placed(["placement.strategy=split", "placement.roles.policy.num_gpus=0.25"])
    with pytest.raises(UserError, match=r"node0 GPU 0 holds 4 policy ranks .*NCCL allows one rank"):
        check_memory(cfg, plan, assignment, nodes, 80.0)


def test_a_gpu_over_its_memory_is_refused_naming_roles_and_numbers():
    cfg, plan, nodes, assignment = _placed(["generator.gpu_memory_utilization=0.6"])
    with pytest.raises(UserError) as err:
        check_memory(cfg, plan, assignment, nodes, 80.0)
    # 2 x 19.26 + 0.6 x 80 = 86.5 GiB on the GPU that the reference, reward and generator share
    text = str(err.value)
    assert "\n" not in text
    assert "node0 GPU 1: estimated 86.5 GiB > 80.0 GiB (reference#0 19.3 + reward#0 19.3 + generator#0 48.0" in text


def test_too_little_kv_cache_for_a_step_share_is_refused():
    cfg, plan, nodes, assignment = _placed(["generator.gpu_memory_utilization=0.3"])
    # 0.3 x 80 = 24 GiB - 15.26 weights - 2 working = 6.7 GiB < 18 GiB for 64 x 2048 tokens
    with pytest.raises(UserError, match=r"leaves 6\.7 GiB of KV cache .* 64 sequences x 2048 tokens .* need 18\.0"):
        check_memory(cfg, plan, assignment, nodes, 80.0)


def test_one_eight_gpu_node_is_refused_by_total_memory():
    cfg = load_config("qwen3-8b")
    plan = make_plan(cfg.placement, cfg.generator.replicas)
    with pytest.raises(UserError, match=r"needs an estimated 782\.2 GiB .* 8 GPUs x 80 GiB = 640\.0 GiB"):
        check_total(cfg, plan, described_cluster("1x8"), "1x8", 80.0)
    # 120-GiB GPUs: 8 x 23.26 + 16 x 19.26 + 8 x 0.45 x 120 = 926.2 GiB of 960: the total alone would fit
    check_total(cfg, plan, described_cluster("1x8"), "1x8", 120.0)


def test_shape_from_a_local_checkpoint_counts_safetensors_parameters(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 128, "vocab_size": 100}))
    header = json.dumps({"a": {"dtype": "F32", "shape": [10, 7], "data_offsets": [0, 280]},
                         "b": {"dtype": "F32", "shape": [5], "data_offsets": [280, 300]},
                         "__metadata__": {"format": "pt"}}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(300))
    shape = model_shape("model.policy", str(tmp_path), "model.shape", "auto")
    assert (shape.params, shape.layers, shape.kv_heads, shape.head_dim) == (75, 3, 2, 16)   # 70 + 5; 64 / 4
    assert model_shape("model.policy", str(tmp_path), "model.shape", "qwen3-8b") == KNOWN_SHAPES["qwen3-8b"]
    with pytest.raises(UserError, match=r"model\.policy=/nowhere: no checkpoint config\.json .* set model\.shape"):
        model_shape("model.policy", "/nowhere", "model.shape", "auto")


@pytest.mark.parametrize("override, key", [
    (["generator.tensor_parallel_size=2"], "generator.tensor_parallel_size=2 needs 2 GPUs"),   # tiny: CPU
    (["generator.tensor_parallel_size=0"], "generator.tensor_parallel_size=0 must be >= 1"),
    (["trainer.zero_stage=3", "placement.weight_sync=nccl"], "placement.weight_sync=nccl"),
    (["trainer.zero_stage=3", "placement.weight_sync=cuda_ipc"], "placement.weight_sync=cuda_ipc"),
    (["model.shape=qwen9"], "model.shape='qwen9' is unknown"),
    (["reward.model_shape=big"], "reward.model_shape='big' is unknown"),
])
def test_bad_scale_settings_name_the_key(override, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.").replace("(", r"\(")):
        load_config("tiny", override)


def test_scale_settings_that_hold_are_accepted():
    load_config("tiny", ["trainer.zero_stage=3", "placement.weight_sync=object_store"])
    load_config("tiny", ["trainer.zero_stage=3"])                        # auto gathers: object_store
    load_config("qwen3-8b", ["generator.tensor_parallel_size=2", "placement.roles.generator.num_gpus=2",
                             "placement.strategy=split"])
    with pytest.raises(UserError, match="num_gpus=0.5; set num_gpus=2"):
        load_config("qwen3-8b", ["generator.tensor_parallel_size=2"])


def test_fractions_that_cannot_share_a_bundles_gpus_are_refused():
    # bundle of 2 GPUs: policy 0.75 -> GPU 0, reference 0.75 -> GPU 1, reward 0.5 fits neither (0.25 left each)
    cfg, plan, nodes, assignment = _placed(["placement.roles.policy.num_gpus=0.75",
                                            "placement.roles.reference.num_gpus=0.75",
                                            "placement.roles.reward.num_gpus=0.5",
                                            "placement.roles.generator.num_gpus=0"])
    with pytest.raises(UserError, match=r"reward replica 0 asks 0\.5 GPU but no GPU of bundle shared#0"):
        slot_gpus(plan, assignment, nodes)
