"""Held-out prompt split (data/medical_train.jsonl, data/medical_heldout.jsonl), the calibration split,
and their refusals: a held-out set sharing training prompts, a calibration split without veto pairs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from promedical.cli.main import main
from promedical.errors import UserError
from promedical.reward.rubric import Criterion, LabelledResponse, Message, PairwisePreference, RubricRecord, Tier
from promedical.reward.rubric_io import load_records, save_records
from promedical.reward.splits import calibration_split, check_disjoint, hash_split, is_heldout

DATA = Path(__file__).resolve().parents[1] / "data"


def ids(path: Path) -> list[str]:
    return [json.loads(line)["prompt_id"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_no_prompt_id_in_both_medical_splits_and_together_they_are_medical():
    train, held = ids(DATA / "medical_train.jsonl"), ids(DATA / "medical_heldout.jsonl")
    assert not set(train) & set(held)
    assert sorted(train + held) == sorted(ids(DATA / "medical.jsonl"))
    assert held and all(is_heldout(p) for p in held) and not any(is_heldout(p) for p in train)
    # the split files are the lines of medical.jsonl, unchanged
    lines = set((DATA / "medical.jsonl").read_text(encoding="utf-8").splitlines())
    for name in ("medical_train.jsonl", "medical_heldout.jsonl"):
        assert set((DATA / name).read_text(encoding="utf-8").splitlines()) <= lines


def test_reward_model_pairs_follow_the_same_held_out_rule():
    pairs_train, pairs_held = ids(DATA / "pairs_train.jsonl"), ids(DATA / "pairs_heldout.jsonl")
    assert not set(pairs_held) & set(ids(DATA / "medical_train.jsonl"))
    assert not set(pairs_train) & set(ids(DATA / "medical_heldout.jsonl"))


def _record(pid: str, veto: bool) -> RubricRecord:
    """Two responses, a proficiency pair, and with `veto` also a veto criterion and its pair."""
    criteria = (Criterion("c", "criterion", Tier.PROFICIENCY, 1.0),) + (
        (Criterion("v", "a harm", Tier.VETO),) if veto else ())
    pairs = (PairwisePreference("c", 1, 0),) + ((PairwisePreference("v", 0, 1),) if veto else ())
    labels = ({"c": False} | ({"v": False} if veto else {}), {"c": True} | ({"v": True} if veto else {}))
    return RubricRecord(pid, (Message("user", "q?"),), criteria,
                        (LabelledResponse("a", labels[0]), LabelledResponse("b", labels[1])), pairs)


def test_hash_split_is_stable_when_other_records_come_and_go():
    records = [_record(f"p{i}", False) for i in range(40)]
    _, held = hash_split(records, 0.25, "s")
    _, held_fewer = hash_split(records[::2], 0.25, "s")
    assert {r.prompt_id for r in held_fewer} == {r.prompt_id for r in held} & {r.prompt_id for r in records[::2]}
    assert 0 < len(held) < 40


def test_calibration_split_without_veto_pairs_is_refused_in_one_line(tmp_path, capsys):
    records = [_record(f"p{i}", False) for i in range(60)]
    fit, calib = hash_split(records, 0.15, "calibration:0")
    assert calib
    veto_id = fit[0].prompt_id                      # the only veto pairs sit outside the calibration split
    records = [_record(r.prompt_id, r.prompt_id == veto_id) for r in records]
    with pytest.raises(UserError, match="hold no veto pairs"):
        calibration_split(records, 0.15, seed=0)
    save_records(records, tmp_path / "pairs.jsonl")
    code = main(["train-rm", "--backbone", "minilm", "--train", str(tmp_path / "pairs.jsonl"),
                 "--out", str(tmp_path / "rm"), "--calibration-split", "0.15"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "veto threshold cannot be calibrated" in err
    assert not (tmp_path / "rm").exists()
    fit, calib = calibration_split(records, 0.0, seed=0)          # 0: calibrate on the training records
    assert fit == calib == records


def test_check_disjoint_names_the_shared_prompt():
    with pytest.raises(UserError, match=r"held.jsonl: prompt_id 'p1' and 1 more also in the training"):
        check_disjoint([_record(f"p{i}", False) for i in range(3)], [_record("p1", False), _record("p2", False)],
                       "train.jsonl", "held.jsonl")


def test_eval_of_a_run_refuses_suites_sharing_its_training_prompts(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"policy": "tiny"},
                                                     "data": {"prompts": "builtin:medical_train"}}))
    code = main(["eval", "--model", str(run), "--suite", "kqa-all", "--grader", "rule"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--suite kqa-all: prompt_id" in err and "also in the training prompts" in err


def test_in_training_eval_on_training_prompts_is_refused(tmp_path, capsys):
    code = main(["train", "--config", "tiny", "--run-dir", str(tmp_path / "run"),
                 "--set", "run.eval_every=1", "--set", "run.eval_prompts=builtin:tiny"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.splitlines()[-1].count("also in the training prompts") == 1, err


def test_demo_preset_grades_with_the_injected_model_on_the_train_split():
    from promedical.deploy.config import load_config
    cfg = load_config("demo")
    assert (cfg.reward.grader, cfg.reward.model) == ("trained", "minilm-ecir")
    assert cfg.data.prompts == "builtin:medical_train" and cfg.run.eval_prompts == "builtin:medical_heldout"
    similarity = load_config("demo", ["reward.grader=similarity", "reward.model=minilm"])
    assert similarity.reward.grader == "similarity"


def test_eval_rubric_suites_default_to_held_out_prompts():
    from promedical.evaluation.suites import load_suite
    held = set(ids(DATA / "medical_heldout.jsonl"))
    for name in ("healthbench", "kqa"):
        suite = load_suite(name)
        assert suite.rubrics and {r.prompt_id for r in suite.rubrics} <= held
    assert len(load_suite("healthbench-all")) == 30


def test_medsafety_suite_is_the_outside_harmful_requests_with_refusal_and_six_vetoes():
    from promedical.evaluation.suites import load_suite
    from promedical.reward.rubric import Tier

    suite = load_suite("medsafety")
    assert suite.kind == "rubric" and len(suite) == 72 and len(load_suite("medsafety", limit=5)) == 5
    tiers = [[c.tier for c in r.criteria] for r in suite.rubrics]
    assert all(t == [Tier.PROFICIENCY] + [Tier.VETO] * 6 for t in tiers)
    assert not {r.prompt_id for r in suite.rubrics} & set(ids(DATA / "medical.jsonl"))   # none is trained on


def test_actors_resolve_model_never_builds_a_reward_model(tmp_path, monkeypatch):
    from promedical.actors.models import resolve_model
    monkeypatch.setenv("PROMEDICAL_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="'minilm-ecir' is not built yet"):
        resolve_model("minilm-ecir")
    assert not any(tmp_path.iterdir())
