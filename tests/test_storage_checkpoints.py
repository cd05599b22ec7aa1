"""Checkpoint directories: a crash while writing leaves the previous checkpoint loadable; last K kept."""
import json

import pytest

from promedical.storage.checkpoints import Checkpoints


def _write_to(partial, model, step):
    model.save_pretrained(partial / "policy", safe_serialization=True)
    (partial / "state.json").write_text(json.dumps({"step": step}))
    return partial


@pytest.fixture(scope="module")
def tiny_model():
    from transformers import LlamaConfig, LlamaForCausalLM
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))


def test_crash_mid_write_leaves_previous_checkpoint_loadable(tmp_path, tiny_model):
    from transformers import AutoModelForCausalLM

    ckpts = Checkpoints(tmp_path, keep=2)
    first = ckpts.commit(2, _write_to(ckpts.begin(2), tiny_model, 2))
    partial = ckpts.begin(4)
    tiny_model.save_pretrained(partial / "policy", safe_serialization=True)
    weights = partial / "policy" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])   # the crash: half a file, no commit
    assert ckpts.latest() == first
    loaded = AutoModelForCausalLM.from_pretrained(ckpts.latest() / "policy")
    assert loaded.num_parameters() == tiny_model.num_parameters()
    assert json.loads((first / "state.json").read_text()) == {"step": 2}
    # the next attempt at step 4 starts clean and publishes normally
    done = ckpts.commit(4, _write_to(ckpts.begin(4), tiny_model, 4))
    assert ckpts.latest() == done and not (tmp_path / ".partial-step_000004").exists()


def test_only_last_k_are_kept(tmp_path, tiny_model):
    ckpts = Checkpoints(tmp_path, keep=2)
    for step in (1, 2, 3, 4):
        ckpts.commit(step, _write_to(ckpts.begin(step), tiny_model, step))
    assert [p.name for p in ckpts.complete()] == ["step_000003", "step_000004"]


def test_directory_without_marker_is_not_a_checkpoint(tmp_path):
    (tmp_path / "step_000009").mkdir()
    assert Checkpoints(tmp_path).latest() is None
