"""evaluate_in_training on a real generator (tiny model, in-process) and held-out rule-graded rubrics."""
import pytest

from promedical.actors.generator import Generator
from promedical.actors.models import resolve_model
from promedical.evaluation.generation import generator_kwargs
from promedical.evaluation.grading import ThresholdVerdicts
from promedical.evaluation.runner import evaluate_in_training
from promedical.evaluation.suites import DATA_DIR
from promedical.reward_model.graders import RuleGrader
from promedical.reward.rubric_io import load_records


@pytest.mark.slow
def test_held_out_metrics_for_the_metric_stream():
    kwargs = generator_kwargs(resolve_model("tiny"), max_new_tokens=12, dtype="float32")
    kwargs["temperature"] = 1.0                      # as the training generator samples
    generator = Generator(**kwargs)
    held_out = load_records(DATA_DIR / "tiny.jsonl")[-6:]
    metrics = evaluate_in_training(generator, held_out, ThresholdVerdicts(RuleGrader()), prefix="heldout/")
    assert metrics["heldout/n"] == 6.0 and metrics["heldout/invalid_verdicts"] == 0.0
    assert "heldout/healthbench" not in metrics     # tiny rubrics carry no HealthBench points
    for key in ("s1", "s2", "s3", "veto_rate", "reward"):
        low, value, high = (metrics[f"heldout/{key}{s}"] for s in ("_low", "", "_high"))
        assert low <= value <= high
    assert 0.0 <= metrics["heldout/s1"] <= 1.0 and 0.0 <= metrics["heldout/veto_rate"] <= 1.0
    assert all(isinstance(v, float) for v in metrics.values())
