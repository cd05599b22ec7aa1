"""Reward-model training on a tiny random BERT (local WordPiece tokenizer): BT loss, save, calibrate, grade."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from promedical.cli.main import main
from promedical.reward_model.graders import TrainedGrader
from promedical.reward_model.rm_train import TrainConfig, freeze_lower, load_scorer, train_reward_model
from promedical.reward.rubric import Criterion, Tier
from promedical.reward.rubric_io import load_records

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny_bert")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator((DATA / "pairs_heldout.jsonl").read_text().splitlines()[:20],
                            trainers.WordPieceTrainer(vocab_size=800, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(s, tok.token_to_id(s)) for s in ("[CLS]", "[SEP]")])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(out)
    config = BertConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertForSequenceClassification(config).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def train_records():
    return load_records(DATA / "pairs_train.jsonl")[:6]


@pytest.fixture(scope="module")
def trained(tiny_bert, train_records, tmp_path_factory):
    out = tmp_path_factory.mktemp("rm") / "model"
    cfg = TrainConfig(max_pairs=16, batch_size=16, epochs=12, lr=1e-2, max_length=384, calibration_points=64)
    return out, train_reward_model(tiny_bert, train_records, out, cfg, log=lambda m: None)


def test_bradley_terry_loss_falls_on_a_repeated_batch(trained):
    _, summary = trained
    assert summary["steps"] == 12 and summary["pairs"] == 16
    assert summary["first_loss"] == pytest.approx(np.log(2), abs=0.1)    # untrained head: margin ~ 0
    assert summary["last_loss"] < summary["first_loss"] - 0.1


def test_checkpoint_is_hf_format_with_calibration(trained):
    out, summary = trained
    assert {"config.json", "model.safetensors", "tokenizer.json", "promedical_calibration.json"} <= {
        p.name for p in out.iterdir()}
    calib = json.loads((out / "promedical_calibration.json").read_text())
    assert calib["use_criterion"] is True and calib["temperature"] > 0 and calib["veto_temperature"] > 0
    assert calib == summary["calibration"] | {"max_length": 384, "backbone": calib["backbone"], "layout": "pair"}
    assert not out.with_name(out.name + ".partial").exists()


def test_trained_grader_is_criterion_sensitive_and_batched(trained):
    out, _ = trained
    grader = TrainedGrader(str(out), max_length=384, batch_size=4)
    a = Criterion("a", "Mentions the dose.", Tier.PROFICIENCY, 1.0)
    b = Criterion("b", "Claims to be a doctor.", Tier.VETO)
    v = grader.grade(["q"] * 3, ["Take 200 mg.", "Take 200 mg.", "Take 200 mg."], [a, b, a])
    assert v.shape == (3,) and ((v > 0) & (v < 1)).all()
    assert v[0] == v[2] and v[0] != v[1]
    raw = grader.raw_scores([("q", "x", "y")] * 5 + [("q", "x", "z")])
    assert len(set(raw[:5])) == 1 and raw[5] != raw[0]


def test_no_criterion_baseline_ignores_the_criterion(tiny_bert, train_records, tmp_path):
    cfg = TrainConfig(use_criterion=False, max_pairs=8, batch_size=8, max_length=64, calibration_points=16)
    summary = train_reward_model(tiny_bert, train_records, tmp_path / "base", cfg, log=lambda m: None)
    assert summary["calibration"]["use_criterion"] is False
    grader = TrainedGrader(str(tmp_path / "base"), max_length=64)
    crits = [Criterion("a", "Mentions the dose.", Tier.PROFICIENCY, 1.0), Criterion("c", "Is polite.", Tier.BONUS)]
    v = grader.grade(["q", "q"], ["Take 200 mg.", "Take 200 mg."], crits)
    assert v[0] == v[1]


def test_freeze_lower_layers(tiny_bert):
    _, model = load_scorer(tiny_bert)
    assert freeze_lower(model, 1) > 0
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any("layer.0." in n for n in frozen) and any("embeddings" in n for n in frozen)
    assert not any("layer.1." in n or "classifier" in n for n in frozen)


def test_train_rm_cli_refuses_bad_input(tmp_path, capsys, tiny_bert):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep me")
    assert main(["train-rm", "--backbone", tiny_bert, "--out", str(tmp_path / "busy")]) == 2
    assert "not an empty directory" in capsys.readouterr().err
    assert main(["train-rm", "--backbone", tiny_bert, "--out", str(tmp_path / "o"), "--lr", "0"]) == 2
    assert "--lr: 0.0 must be > 0" in capsys.readouterr().err
    assert main(["train-rm", "--backbone", tiny_bert, "--out", str(tmp_path / "o"),
                 "--train", str(DATA / "medical.jsonl")]) == 2
    assert "no pairwise preferences" in capsys.readouterr().err
    assert (tmp_path / "busy" / "x").read_text() == "keep me" and not (tmp_path / "o").exists()


def test_eval_rm_cli_prints_the_table_and_writes_json(trained, tmp_path, capsys):
    from promedical.reward.rubric_io import save_records
    out, _ = trained
    save_records(load_records(DATA / "pairs_heldout.jsonl")[:3], tmp_path / "held.jsonl")
    assert main(["eval-rm", "--model", str(out), "--heldout", str(tmp_path / "held.jsonl"),
                 "--max-length", "384", "--json", str(tmp_path / "r.json")]) == 0
    assert "pairwise acc proficiency" in capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())[str(out)]
    assert set(report["pairwise"]) == {"proficiency", "bonus", "veto"}
    assert all(0.0 <= v <= 1.0 for v in report["pairwise"].values())
    from promedical.reward.pairs import SAFETY_PER_RECORD
    # 3 prompts x SAFETY_PER_RECORD vetoes x (vs reference, vs the safe hard negative, swap)
    assert report["counts"]["veto"]["pairwise"] == 3 * SAFETY_PER_RECORD * 3
