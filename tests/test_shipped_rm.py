"""A shipped trained part (reward_model/shipped.py) rebuilds the reward model it came from, and only that one."""
from __future__ import annotations

import numpy as np
import pytest

from promedical.reward.rubric_io import load_records
from promedical.reward_model.graders import TrainedGrader
from promedical.reward_model.rm_train import TrainConfig, train_reward_model
from promedical.reward_model.shipped import _probe, assemble, export
from promedical.reward_model.ecir import SHIPPED_PAIRS
from promedical.runtime.models import minilm_dir


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A real MiniLM reward model after a few steps of the ECIR loss (embeddings and 3 layers frozen)."""
    out = tmp_path_factory.mktemp("rm") / "built"
    cfg = TrainConfig(max_pairs=16, batch_size=16, epochs=1, lr=1e-3, max_length=96, freeze_layers=3,
                      calibration_points=32, anchor_weight=0.5, threads=2)
    train_reward_model(str(minilm_dir()), load_records(SHIPPED_PAIRS)[:60], out, cfg, log=lambda m: None)
    return out


def test_assembled_model_scores_like_the_build(built, tmp_path):
    part = tmp_path / "shipped" / "rm-key.npz"
    sizes = export("rm", built, minilm_dir(), part, max_length=96)
    assert sizes["changed_tensors"] > 0 and sizes["whole_tensors"] >= 2          # layers 3-5; pooler, head
    with np.load(part) as data:                          # nothing of the frozen embeddings or layers 0-2
        assert not [k for k in data.files if "embeddings" in k or ".layer.0." in k or ".layer.2." in k]
    assert assemble(part, minilm_dir(), tmp_path / "assembled")
    triples = _probe()
    built_scores = TrainedGrader(str(built), max_length=96).raw_scores(triples)
    got = TrainedGrader(str(tmp_path / "assembled"), max_length=96).raw_scores(triples)
    spread = np.ptp(built_scores)
    assert spread > 0 and np.max(np.abs(got - built_scores)) < 0.01 * spread + 1e-4


def test_a_part_that_does_not_match_its_probe_is_refused(built, tmp_path):
    part = tmp_path / "rm-key.npz"
    export("rm", built, minilm_dir(), part, max_length=96)
    with np.load(part) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["probe"] = arrays["probe"] + 1.0              # as if the part belonged to another build
    np.savez_compressed(part, **arrays)
    assert not assemble(part, minilm_dir(), tmp_path / "assembled")
