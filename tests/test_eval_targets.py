"""--model PATH_OR_RUN resolution: checkpoint dirs, run dirs (latest checkpoint or base policy), bad input."""
import json
from pathlib import Path

import pytest

from promedical.errors import UserError
from promedical.evaluation.targets import latest_checkpoint, resolve_target


def hf_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return path


def test_checkpoint_dir_results_saved_beside_it(tmp_path):
    ckpt = hf_dir(tmp_path / "my-model")
    target = resolve_target(str(ckpt))
    assert target.model_path == str(ckpt.resolve())
    assert target.results_root == ckpt / "eval"


def test_run_dir_uses_highest_step_with_a_policy(tmp_path):
    run = tmp_path / "run"
    hf_dir(run / "checkpoints" / "step_000002" / "policy")
    hf_dir(run / "checkpoints" / "step_000010" / "policy")
    (run / "checkpoints" / "step_000011").mkdir()          # still being written: no policy yet
    (run / "config.yaml").write_text("model:\n  policy: tiny\n")
    assert latest_checkpoint(run) == run / "checkpoints" / "step_000010" / "policy"
    target = resolve_target(str(run))
    assert target.model_path.endswith("step_000010/policy")
    assert target.label == "run@step_000010" and target.results_root == run / "eval"


def test_run_dir_without_checkpoints_falls_back_to_base_policy(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model:\n  policy: tiny\n")
    target = resolve_target(str(run))
    assert "base policy 'tiny'" in target.note and target.label == "run@base"
    assert (Path(target.model_path) / "config.json").is_file()


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_bad_model_argument_is_a_one_line_user_error(tmp_path, make):
    with pytest.raises(UserError) as err:
        resolve_target(str(make(tmp_path)))
    assert "--model" in str(err.value) and "\n" not in str(err.value)
