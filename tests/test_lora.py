"""LoRA GRPO (model.lora): only the adapters train, the base with adapters off is the reference, the
adapter alone travels to a vLLM generator serving LoRA, checkpoints hold the adapter in PEFT format."""
import numpy as np
import pyarrow as pa
import pytest

from promedical.deploy.build import generator_kwargs, policy_kwargs, reference_kwargs
from promedical.deploy.config import load_config
from promedical.errors import UserError

# policy vs reference: the same fp32 code on the same weights, so equal up to summation order
SAME_CODE = 1e-5
# policy (torch) vs generator (vLLM CPU kernels, LoRA by punica): fp32 on both sides
ENGINES = 2e-3


@pytest.fixture(scope="module")
def actors(local_ray, tmp_path_factory):
    import ray
    from promedical.actors.generator import Generator
    from promedical.actors.interfaces import PromptRequest
    from promedical.actors.models import resolve_model
    from promedical.actors.policy import Policy
    from promedical.actors.reference import Reference

    # the tiny preset's targets: every linear layer and the (tied) LM head, so vLLM serves a head adapter too
    cfg = load_config("tiny", ["model.lora.rank=8", "model.lora.lr=0.05", "algo.mini_batches=1"])
    assert "lm_head" in cfg.model.lora.target_modules
    path = resolve_model("tiny")
    policy = ray.remote(Policy).options(num_cpus=0.5).remote(**policy_kwargs(cfg, path))
    reference = ray.remote(Reference).options(num_cpus=0.25).remote(**reference_kwargs(cfg, path))
    generator = ray.remote(Generator).options(num_cpus=0.5).remote(**generator_kwargs(cfg, path))
    requests = [PromptRequest(prompt_id=f"p{i}", group_id=i, messages=(("user", f"question {i} about fever"),))
                for i in range(cfg.rollout.prompts_per_step)]
    batch = ray.get(generator.generate.remote(requests, cfg.rollout.group_size))
    before = _base_digest(ray, policy)
    ray.get(policy.train_step.remote(_training_batch(batch)))
    return ray, policy, reference, generator, batch, before, tmp_path_factory.mktemp("lora")


def _base_digest(ray, policy) -> float:
    """Sum of |w| over the frozen base weights (every parameter but the adapters)."""
    return ray.get(policy.__ray_call__.remote(
        lambda p: float(sum(t.detach().abs().sum() for n, t in p.engine.module.named_parameters() if "lora_" not in n))))


def _training_batch(batch):
    n = batch.num_rows
    rng = np.random.default_rng(0)
    extra = {"advantage": pa.array(rng.standard_normal(n), pa.float32()),
             "ref_logprobs": batch.column("behaviour_logprobs"), "loss_mask": pa.array([True] * n)}
    return pa.RecordBatch.from_arrays(list(batch.columns) + list(extra.values()), names=batch.schema.names + list(extra))


def _generator_logprobs(ray, generator, batch):
    seqs = [p + r for p, r in zip(batch.column("prompt_ids").to_pylist(), batch.column("response_ids").to_pylist())]
    full = ray.get(generator.score_sequences.remote(seqs))
    lengths = batch.column("response_length").to_pylist()
    return [lp[len(lp) - n:] if n else [] for lp, n in zip(full, lengths)]


def _max_gap(a, b):
    return max(float(np.max(np.abs(np.subtract(x, y)))) for x, y in zip(a, b) if len(x))


def test_only_adapters_train_and_the_base_stays_frozen(actors):
    ray, policy, _, _, _, before, _ = actors
    trainable = ray.get(policy.__ray_call__.remote(
        lambda p: [n for n, t in p.engine.module.named_parameters() if t.requires_grad]))
    assert trainable and all("lora_" in n for n in trainable)
    assert _base_digest(ray, policy) == before


def test_adapters_off_equal_the_reference_model(actors):
    ray, policy, reference, _, batch, _, _ = actors
    base = ray.get(policy.reference_logprobs.remote(batch)).column("ref_logprobs").to_pylist()
    old_reference = ray.get(reference.logprobs.remote(batch)).column("ref_logprobs").to_pylist()
    trained = ray.get(policy.logprobs.remote(batch))
    assert _max_gap(base, old_reference) < SAME_CODE
    assert _max_gap(trained, old_reference) > 100 * SAME_CODE     # the adapters did move the policy


def test_adapter_sync_makes_the_generator_match_the_policy(actors):
    ray, policy, _, generator, batch, _, _ = actors
    trained = ray.get(policy.logprobs.remote(batch))
    assert _max_gap(_generator_logprobs(ray, generator, batch), trained) > 10 * ENGINES   # still the base
    adapter = policy.export_weights.remote()
    ray.get(generator.load_weights.remote(1, adapter))
    assert _max_gap(_generator_logprobs(ray, generator, batch), trained) < ENGINES
    assert ray.get(generator.version.remote()) == 1
    sent = ray.get(adapter).nbytes
    model_bytes = ray.get(policy.__ray_call__.remote(
        lambda p: sum(t.numel() * 4 for n, t in p.engine.module.named_parameters() if "lora_" not in n)))
    assert 0 < sent < model_bytes / 5                              # an adapter, not the model


def test_checkpoint_holds_a_peft_adapter(actors):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ray, policy, _, _, batch, _, tmp = actors
    ray.get(policy.save.remote(str(tmp)))
    model_path = ray.get(policy.__ray_call__.remote(lambda p: p.model_path))
    trained = ray.get(policy.logprobs.remote(batch.slice(0, 1)))[0]
    prompt, response = batch.column("prompt_ids")[0].as_py(), batch.column("response_ids")[0].as_py()
    with torch.no_grad():
        adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_path), tmp / "policy")
        logits = adapter(input_ids=torch.tensor([prompt + response])).logits[0, len(prompt) - 1:-1]
        temperature = load_config("tiny").rollout.temperature
        logp = torch.log_softmax(logits / temperature, -1).gather(-1, torch.tensor(response)[:, None])[:, 0]
    assert not (tmp / "policy-merged").exists()                   # only on request (model.lora.save_merged)
    assert float(np.max(np.abs(logp.numpy() - np.array(trained)))) < SAME_CODE * 10


def test_merged_export_equals_the_adapter_and_a_tied_head_adapter_cannot_merge(tmp_path):
    """model.lora.save_merged writes base + B A alpha/r as a Hugging Face model (actors/policy.py
    _save_lora); on hidden layers it computes what the adapter does. A tied LM head cannot carry it."""
    import torch
    from transformers import AutoModelForCausalLM

    from promedical.actors.lora import LoraSettings, merged_weights, target_problem, wrap
    from promedical.actors.models import resolve_model

    path = resolve_model("tiny")
    model = wrap(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), LoraSettings(rank=8))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)               # B starts at 0: move it so the adapter changes the logits
    model.get_base_model().save_pretrained(tmp_path / "merged", state_dict=dict(merged_weights(model, torch.float32)),
                                           safe_serialization=True)
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    with torch.no_grad():
        a = model(input_ids=ids).logits
        m = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")(input_ids=ids).logits
        with model.disable_adapter():
            b = model(input_ids=ids).logits
    assert float((a - m).abs().max()) < 1e-4 and float((a - b).abs().max()) > 1e-3
    assert target_problem(path, ["q_proj", "lm_head"]) is None
    assert "lm_head shares its weight with the input embeddings" in target_problem(path, ["q_proj", "lm_head"], True)


def test_lora_parameter_count_in_the_memory_plan_is_peft_s():
    import torch
    from transformers import AutoModelForCausalLM

    from promedical.actors.lora import LoraSettings, wrap
    from promedical.actors.models import resolve_model
    from promedical.deploy.memory_plan import KNOWN_SHAPES, lora_params

    model = wrap(AutoModelForCausalLM.from_pretrained(resolve_model("tiny"), dtype=torch.float32),
                 LoraSettings(rank=8, target_modules=("q_proj", "v_proj", "down_proj")))
    counted = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # tiny: hidden 128, 2 heads x 64, ffn 256, 2 layers; q and v 128 + 128 each, down 256 + 128:
    # rank 8 x (256 + 256 + 384) x 2 layers
    assert counted == lora_params(KNOWN_SHAPES["tiny"], 8, ["q_proj", "v_proj", "down_proj"]) == 14336


def test_qwen3_8b_fits_one_node_with_lora_but_not_full_parameter():
    from promedical.deploy.machine import check_plan
    from promedical.deploy.placement import described_cluster

    nodes = described_cluster("1x8")
    with pytest.raises(UserError, match="needs an estimated"):
        check_plan(load_config("qwen3-8b"), nodes, "1x8", 80.0)
    table, memory = check_plan(load_config("qwen3-8b", ["model.lora.rank=64"]), nodes, "1x8", 80.0)
    assert "reference" not in table.split("ranks:")[0] and memory.count("/80") == 8


@pytest.mark.parametrize("override, message", [
    ("model.lora.rank=-1", "model.lora.rank=-1: must be >= 0"),
    ("placement.weight_sync=cuda_ipc", "placement.weight_sync=cuda_ipc cannot move LoRA adapters"),
])
def test_bad_lora_config_is_one_line(override, message):
    sets = [override] if "rank" in override else ["model.lora.rank=8", override]
    with pytest.raises(UserError, match=message):
        load_config("tiny", sets)


def test_a_target_module_the_model_lacks_exits_2_before_any_actor(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "promedical.cli.main", "train", "--config", "tiny",
                          "--set", "model.lora.rank=8", "--set", "model.lora.target_modules=[q_proj,qkv_proj]",
                          "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    lines = [line for line in out.stderr.splitlines() if line.startswith("promedical")]
    assert out.returncode == 2, out.stderr[-2000:]
    assert len(lines) == 1 and "model.lora.target_modules: qkv_proj not a linear layer" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def lora_run(local_ray, tmp_path_factory):
    """`promedical train --config tiny --set model.lora.rank=8`: the tiny preset's 6 steps, as the
    full-parameter end-to-end test runs them."""
    from promedical.deploy.run import train
    from promedical.storage.run_dir import RunDir

    run_dir = tmp_path_factory.mktemp("lora-run") / "run"
    train(load_config("tiny", ["model.lora.rank=8"]), run_dir)
    return RunDir(run_dir)


def test_lora_run_has_no_reference_actor_and_trains_every_step(lora_run):
    from promedical.storage.metrics_log import iter_events

    logs = sorted(p.name for p in (lora_run.root / "logs").iterdir())
    assert "policy-0.log" in logs and not [n for n in logs if n.startswith("reference-")]
    events = list(iter_events(lora_run.metrics_path))
    assert [e["step"] for e in events] == list(range(6))
    assert all(e["grad_norm"] > 0 for e in events)
    rewards = [e["reward_mean"] for e in events]          # the bar of tests/test_e2e_tiny.py, full-parameter
    assert np.mean(rewards[-2:]) > np.mean(rewards[:2]) + 0.05, rewards
    assert events[-1]["kl"] > events[0]["kl"] > 0           # the adapters move the policy off the base
    table = lora_run.read_rollouts()
    assert all(len(r) == n for r, n in zip(table["ref_logprobs"].to_pylist(), table["response_length"].to_pylist()))
