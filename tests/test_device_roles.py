"""Every tensor a role builds is on its model's device: the roles run with their model on PyTorch's `meta`
device (no GPU needed), under a guard that raises when one op mixes a CPU tensor with the model's.

Meta tensors hold no values, so the guard answers the few value reads the roles make (`float(loss)`,
`.tolist()`, `.cpu().numpy()`) with zeros of the right shape (flags with True); everything else runs as written. The
guard is stricter than CUDA in one way only (CUDA accepts a CPU index tensor); 0-dim CPU scalars mix
with any device, as on CUDA.
"""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from promedical.actors.logprobs import forward_logprobs, forward_logprobs_entropy, make_group_micro_batch

META = torch.device("meta")
_VALUE_READS = {"item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__"}


class DeviceGuard(TorchFunctionMode):
    """Raises on any op whose tensor arguments (0-dim ones aside) sit on more than one device."""

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        devices: set[str] = set()

        def visit(x):
            if isinstance(x, torch.Tensor):
                if x.dim() > 0:
                    devices.add(str(x.device))
            elif isinstance(x, (list, tuple)):
                for y in x:
                    visit(y)

        for a in (*args, *kwargs.values()):
            visit(a)
        if len(devices) > 1:
            raise RuntimeError(f"{name} mixes devices {sorted(devices)}: a tensor was built off the model's device")
        if name in _VALUE_READS and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            # a flag reads True (so `finite` checks pass and the real loss is backpropagated), a number 0
            fill = torch.ones if args[0].dtype == torch.bool else torch.zeros
            stand_in = fill(args[0].shape, dtype=args[0].dtype)
            return stand_in if name == "cpu" else getattr(stand_in, name)()
        return func(*args, **kwargs)


@pytest.fixture(scope="module")
def tiny_path():
    from promedical.actors.models import resolve_model
    return resolve_model("tiny")


@pytest.fixture
def meta_lm(tiny_path):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32).to(META)


def _batch():
    """A scored batch of 2 GRPO groups of 4 rows (what the trainer hands the policy)."""
    from promedical.storage.schema import (GENERATION_FIELDS, REFERENCE_FIELDS, TRAINING_FIELDS, columns_batch,
                                           merge_columns)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(10, 500, size=6).tolist() for _ in range(2)]
    lengths = [int(n) for n in rng.integers(1, 8, size=8)]
    cols = {f.name: [] for f in GENERATION_FIELDS}
    for row, n in enumerate(lengths):
        values = dict(prompt_id=f"p{row // 4}", group_id=row // 4, sample_index=row % 4, prompt_ids=prompts[row // 4],
                      response_ids=rng.integers(10, 500, size=n).tolist(), response_length=n, response_text="",
                      finish_reason="stop", behaviour_logprobs=(-rng.random(n)).tolist(), policy_version=0,
                      generate_seconds=0.0, generator_replica=0)
        for key, v in values.items():
            cols[key].append(v)
    ref = {"ref_logprobs": [(-rng.random(n)).tolist() for n in lengths], "reference_seconds": [0.0] * 8}
    training = {"advantage": rng.normal(size=8).tolist(), "trained_version": [0] * 8, "step": [0] * 8,
                "loss_mask": [True] * 8}
    return merge_columns(columns_batch(GENERATION_FIELDS, cols), columns_batch(REFERENCE_FIELDS, ref),
                         columns_batch(TRAINING_FIELDS, training))


def test_guard_catches_a_cpu_tensor_next_to_a_meta_model(meta_lm):
    """The guard itself: a CPU index into meta embeddings raises (plain meta kernels would let it pass)."""
    with DeviceGuard(), pytest.raises(RuntimeError, match="mixes devices"):
        meta_lm.get_input_embeddings()(torch.tensor([[1, 2]]))


@pytest.mark.parametrize("shared_prefix", [True, False])
def test_logprob_path_runs_on_the_model_device(meta_lm, shared_prefix):
    mb = make_group_micro_batch([[5, 6, 7, 8]] * 3, [[9, 10, 11], [12], []], [0, 1, 2])
    with DeviceGuard():
        logp = forward_logprobs(meta_lm, mb, 0.7, shared_prefix=shared_prefix)
        logp2, entropy = forward_logprobs_entropy(meta_lm, mb, 1.0, shared_prefix=shared_prefix)
    assert logp.device == META and logp.shape == (3, 3)
    assert logp2.device == META and entropy is not None and entropy.device == META


def test_reference_forward_runs_on_its_model_device(tiny_path):
    from promedical.actors.reference import Reference
    ref = Reference(model_path=tiny_path, temperature=1.0, micro_batch_size=4, dtype="bfloat16", device="meta")
    assert next(ref.model.parameters()).device == META
    batch = _batch()
    with DeviceGuard():
        out = ref.logprobs(batch)
    lengths = [len(r) for r in batch.column("response_ids").to_pylist()]
    assert [len(r) for r in out.column("ref_logprobs").to_pylist()] == lengths


class _MetaEngine:
    """What Policy.train_step uses of a DeepSpeed engine, around a module on the meta device."""

    def __init__(self, module, bf16: bool) -> None:
        self.module, self.bf16, self.device = module, bf16, META
        self.optimizer = types.SimpleNamespace(param_groups=[{}])
        self.backwards = 0

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def bfloat16_enabled(self) -> bool:
        return self.bf16

    def train(self) -> None:
        self.module.train()

    def backward(self, loss) -> None:
        loss.backward()
        self.backwards += 1

    def step(self) -> None:
        pass

    def get_global_grad_norm(self):
        return None


def _meta_policy(monkeypatch, tiny_path, *, zero_stage: int, bf16: bool):
    """Policy.__init__ as written, DeepSpeed's start replaced by _MetaEngine (the model moved to meta)."""
    import deepspeed

    import promedical.actors.policy as policy_module
    from promedical.deploy.build import policy_kwargs
    from promedical.deploy.config import load_config

    def initialize(*, model, optimizer, config):
        assert config["bf16"]["enabled"] == bf16
        return _MetaEngine(model.to(META), bf16), optimizer, None, None

    monkeypatch.setattr(deepspeed, "initialize", initialize)
    monkeypatch.setattr(policy_module, "init_distributed", lambda backend: None)
    settings = ["rollout.prompts_per_step=2", "rollout.group_size=4", "algo.micro_batch_size=4",
                "algo.mini_batches=1", f"trainer.zero_stage={zero_stage}",
                f"model.train_dtype={'bfloat16' if bf16 else 'float32'}"]
    return policy_module.Policy(**policy_kwargs(load_config("tiny", settings), tiny_path))


@pytest.mark.parametrize("zero_stage,bf16", [(0, False), (2, True), (3, False)])
def test_policy_logprobs_and_train_step_run_on_the_model_device(monkeypatch, tiny_path, zero_stage, bf16):
    policy = _meta_policy(monkeypatch, tiny_path, zero_stage=zero_stage, bf16=bf16)
    batch = _batch()
    with DeviceGuard():
        values = policy.logprobs(batch)
        stats = policy.train_step(batch)
    assert [len(v) for v in values] == [len(r) for r in batch.column("response_ids").to_pylist()]
    assert policy.engine.backwards == 2 and stats["microbatches"] == 2.0 and stats["skipped_microbatches"] == 0.0
    grads = [p.grad for p in policy.engine.module.parameters() if p.grad is not None]
    assert grads and all(g.device == META for g in grads)


def test_reward_scorers_run_on_the_model_device(tiny_path):
    """The decoder reward model's criterion-last scorer, staged and whole-sequence, on its model's device."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from promedical.reward_model.scorers import make_scorer
    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_path, num_labels=1).to(META).eval()
    model.config.pad_token_id = tokenizer.pad_token_id
    triples = [("ask", "answer one", "is short"), ("ask", "answer two", "is short"), ("ask", "answer one", None)]
    for fusion in (0, 1):
        scorer = make_scorer(tokenizer, model, "prefix", fusion_layers=fusion)
        with DeviceGuard():
            scores = scorer.score_batched(triples, batch_size=8)
        assert isinstance(scores, np.ndarray) and scores.shape == (3,)


def test_similarity_grader_runs_on_its_model_device():
    from promedical.reward.rubric import Criterion, Tier
    from promedical.reward_model.graders import SimilarityGrader
    from promedical.runtime.models import minilm_dir

    grader = SimilarityGrader(str(minilm_dir()), max_length=32, batch_size=4)
    grader.model.to(META)
    criteria = [Criterion(id="c1", text="mentions a doctor", tier=Tier.PROFICIENCY, weight=1.0)]
    with DeviceGuard():
        values = grader.grade(["q"], ["see a doctor"], criteria)
    assert values.shape == (1,)


def test_autocast_follows_the_device_type():
    import contextlib
    import warnings

    from promedical.runtime.devices import autocast
    assert isinstance(autocast(META, True), contextlib.nullcontext)            # meta has no autocast
    assert isinstance(autocast(torch.device("cpu"), False), contextlib.nullcontext)
    cpu = autocast(torch.device("cpu"), True)
    assert (cpu.device, cpu.fast_dtype) == ("cpu", torch.bfloat16)
    with warnings.catch_warnings():            # without CUDA torch warns and disables it; the type still holds
        warnings.simplefilter("ignore")
        assert autocast(torch.device("cuda", 0), True).device == "cuda"
