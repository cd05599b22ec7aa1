"""Decoder reward models: criterion-last shared-prefix scoring, and train-rm with DeepSpeed (one rank, two ranks).

A tiny random 2-layer Llama (local BPE tokenizer, actors/models.py) stands in for Qwen3-8B; the maths
and the DeepSpeed code path are the same.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from promedical.actors.models import resolve_model
from promedical.reward_model.graders import TrainedGrader
from promedical.reward.injection import instruction_text
from promedical.reward_model.prefix_scoring import (PrefixBatch, SegmentLimits, SegmentTokenizer, check_fusion,
                                              score_prefix_batch, score_sequences)
from promedical.reward_model.rm_train import load_scorer
from promedical.reward.rubric_io import load_records

DATA = Path(__file__).resolve().parents[1] / "data"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def tiny_scorer():
    tokenizer, model = load_scorer(resolve_model("tiny"))
    return SegmentTokenizer(tokenizer, SegmentLimits(instruction=40, response=30, criterion=12)), model.eval()


@pytest.fixture(scope="module")
def triples():
    """3 prompts x 3 responses x 4 criteria of the held-out pairs, plus repeats (lengths all differ)."""
    records = load_records(DATA / "pairs_heldout.jsonl")[:3]
    out = [(instruction_text(r), x.text, c.text) for r in records for x in r.responses[:3] for c in r.criteria[:4]]
    return out + out[:5]


def test_batch_keeps_each_distinct_segment_once(tiny_scorer, triples):
    tokens, _ = tiny_scorer
    batch, rows = PrefixBatch.of(tokens, triples)
    assert (len(batch.instructions), len(batch.responses), len(batch.criteria), len(batch.rows)) == (3, 9, 12, 36)
    assert rows[-5:] == rows[:5]
    assert all(batch.response_owner[r] == batch.criterion_owner[c] for r, c in batch.rows)


def test_shared_prefix_scores_equal_whole_sequences(tiny_scorer, triples):
    tokens, model = tiny_scorer
    batch, rows = PrefixBatch.of(tokens, triples)
    with torch.inference_mode():
        staged = score_prefix_batch(model, batch, fusion_layers=0, chunk_rows=7)[torch.tensor(rows)]
        whole = score_sequences(model, [tokens.sequence(*t) for t in triples])
    assert whole.std() > 1e-3                                   # a head that says something
    assert torch.allclose(staged, whole, atol=1e-5)


def test_partial_fusion_is_batch_invariant_and_a_different_model(tiny_scorer, triples):
    tokens, model = tiny_scorer
    with torch.inference_mode():
        batch, rows = PrefixBatch.of(tokens, triples)
        together = score_prefix_batch(model, batch, fusion_layers=1, chunk_rows=5)[torch.tensor(rows)]
        alone = torch.cat([score_prefix_batch(model, PrefixBatch.of(tokens, [t])[0], fusion_layers=1)
                           for t in triples[:8]])
        whole = score_sequences(model, [tokens.sequence(*t) for t in triples])
    assert torch.allclose(together[:8], alone, atol=1e-5)
    assert (together - whole).abs().max() > 1e-3


def test_partial_fusion_keeps_lower_layers_blind_to_the_response(tiny_scorer):
    """With fusion in the top layer only, the criterion's layer-0 states ignore the response: a model
    whose top layer cannot read anything from earlier positions then scores every response alike."""
    tokens, model = tiny_scorer
    import copy
    blind = copy.deepcopy(model)
    blind.model.layers[1].self_attn.v_proj.weight.data.zero_()      # top layer: attention adds nothing
    ts = [("q: dose?", "Take 200 mg twice a day.", "Gives a dose."), ("q: dose?", "No idea.", "Gives a dose.")]
    with torch.inference_mode():
        late = score_prefix_batch(blind, PrefixBatch.of(tokens, ts)[0], fusion_layers=1)
        full = score_prefix_batch(blind, PrefixBatch.of(tokens, ts)[0], fusion_layers=0)
    assert late[0] == pytest.approx(float(late[1]), abs=1e-6)
    assert abs(float(full[0] - full[1])) > 1e-4


def test_fusion_depth_is_checked(tiny_scorer):
    _, model = tiny_scorer
    assert check_fusion(model, 0) == 2 and check_fusion(model, 1) == 1
    with pytest.raises(ValueError, match="the model has 2 layers"):
        check_fusion(model, 3)


def _cli(*args: str, launcher: list[str] | None = None, timeout: int = 420) -> subprocess.CompletedProcess:
    cmd = (launcher or [sys.executable, "-m"]) + ["promedical.cli.main", *args]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


TRAIN = ("train-rm", "--backbone", "tiny", "--max-pairs", "8", "--batch-size", "8", "--epochs", "10",
         "--lr", "1e-2", "--freeze-layers", "0", "--fusion-layers", "1", "--seed", "3",
         "--calibration-points", "64")      # not the recipe's 800: scoring those took 20 s of each run here


@pytest.fixture(scope="module")
def zero3_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("rm") / "zero3"
    proc = _cli(*TRAIN, "--deepspeed", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads(proc.stdout[proc.stdout.index("{"):])


def test_train_rm_decoder_with_deepspeed_zero3(zero3_model):
    out, summary = zero3_model
    assert summary["layout"] == "prefix" and summary["ranks"] == 1 and summary["steps"] == 10
    assert summary["last_loss"] < summary["first_loss"] - 0.05          # one repeated batch is learnt
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    meta = json.loads((out / "promedical_calibration.json").read_text())
    assert meta["layout"] == "prefix" and meta["fusion_layers"] == 1


def test_trained_decoder_grader_scores_a_group_like_one_triple_at_a_time(zero3_model):
    out, _ = zero3_model
    grader = TrainedGrader(str(out), batch_size=256)
    assert grader.layout == "prefix" and grader.scorer.fusion_layers == 1
    record = load_records(DATA / "pairs_heldout.jsonl")[0]
    items = [(instruction_text(record), x.text, c) for x in record.responses for c in record.criteria]
    ins, resp, crit = (list(col) for col in zip(*items))
    together = grader.grade(ins, resp, crit)
    alone = np.array([grader.grade([i], [r], [c])[0] for i, r, c in items[:10]])
    assert together.shape == (len(items),) and ((together > 0) & (together < 1)).all()
    np.testing.assert_allclose(together[:10], alone, atol=1e-5)
    assert np.ptp(together) > 1e-4


def test_two_ranks_train_the_same_model_as_one(tmp_path):
    """torchrun, 2 CPU ranks, ZeRO-2: each rank takes half of every batch; the result scores held-out
    triples like the single-process model trained on the same batches."""
    one, two = tmp_path / "one", tmp_path / "two"
    args = [*TRAIN, "--deepspeed", "2", "--max-pairs", "16", "--epochs", "4", "--lr", "3e-3"]
    proc = _cli(*args, "--out", str(one))
    assert proc.returncode == 0, proc.stderr[-3000:]
    alone = json.loads(proc.stdout[proc.stdout.index("{"):])
    proc = _cli(*args, "--out", str(two), launcher=[str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2",
                                                    "-m"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert summary["ranks"] == 2 and proc.stdout.count('"ranks"') == 1       # rank 0 alone reports
    assert summary["first_loss"] != pytest.approx(alone["first_loss"], abs=1e-4)   # rank 0 saw half the batch
    record = load_records(DATA / "pairs_heldout.jsonl")[1]
    triples = [(instruction_text(record), x.text, c.text) for x in record.responses for c in record.criteria]
    a, b = (TrainedGrader(str(d)).raw_scores(triples) for d in (one, two))
    assert np.abs(a - b).max() < 0.01 * np.ptp(a) and np.corrcoef(a, b)[0, 1] > 0.9999   # measured 0.4%, 0.999997


def test_train_rm_refuses_what_the_backbone_cannot_do(tmp_path, capsys):
    from promedical.cli.main import main

    for extra, message in ((("--fusion-layers", "3"), "fusion_layers 3: the model has 2 layers"),
                           (("--dtype", "bfloat16"), "--dtype bfloat16: trains through DeepSpeed"),
                           (("--backbone", "minilm", "--layout", "prefix"), "Llama-style decoder"),
                           (("--calibration-points", "0"), "--calibration-points: 0 must be > 0")):
        code = main([*TRAIN, "--out", str(tmp_path / "o"), *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err, err[-2000:]
        assert len(err.strip().splitlines()) == 1
        assert not (tmp_path / "o").exists()


class _ByteTokenizer:
    """Bytes as token ids: enough to drive random decoders of any family."""
    bos_token_id = None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(text.encode())[:200]}


@pytest.mark.parametrize("family", ["Qwen3Config", "Qwen2Config", "MistralConfig", "LlamaConfig"])
def test_decoder_families_share_prefixes_exactly(family):
    import transformers
    from transformers import AutoModelForSequenceClassification

    config = getattr(transformers, family)(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                                           num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_labels=1,
                                           pad_token_id=0)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    tokens = SegmentTokenizer(_ByteTokenizer())
    ts = [("what dose?", "take 200 mg", "gives a dose"), ("what dose?", "no", "gives a dose"),
          ("another question", "yes indeed", "is polite")]
    batch, rows = PrefixBatch.of(tokens, ts)
    with torch.inference_mode():
        staged = score_prefix_batch(model, batch)[torch.tensor(rows)]
        whole = score_sequences(model, [tokens.sequence(*t) for t in ts])
        partial = score_prefix_batch(model, batch, fusion_layers=1)
    assert torch.allclose(staged, whole, atol=1e-5) and partial.shape == (3,)


def test_bf16_grader_on_cpu_is_close_to_fp32(zero3_model):
    out, _ = zero3_model
    record = load_records(DATA / "pairs_heldout.jsonl")[2]
    items = [(instruction_text(record), x.text, c) for x in record.responses for c in record.criteria]
    ins, resp, crit = (list(col) for col in zip(*items))
    full, half = (TrainedGrader(str(out), dtype=d) for d in ("float32", "bfloat16"))
    assert full.model.dtype == torch.float32 and half.model.dtype == torch.bfloat16
    a, b = full.grade(ins, resp, crit), half.grade(ins, resp, crit)
    assert np.abs(a - b).max() < 0.05 and not np.array_equal(a, b)
