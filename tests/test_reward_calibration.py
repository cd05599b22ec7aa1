"""Score calibration and evaluation maths, with hand-worked numbers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from promedical.reward_model.calibration import Calibration, fit_calibration, threshold_temperature, values
from promedical.reward_model.rm_eval import evaluate, prf
from promedical.reward.rubric import Criterion, LabelledResponse, Message, PairwisePreference, RubricRecord, Tier


def test_values_map_scores_by_tier():
    calib = Calibration(threshold=1.0, temperature=2.0, veto_threshold=0.0, veto_temperature=1.0)
    v = values(np.array([1.0, 3.0, 0.0, -2.0]), np.array([False, False, True, True]), calib)
    # (1-1)/2 = 0 -> 0.5; (3-1)/2 = 1 -> 0.7311; veto (0-0)/1 -> 0.5; (0-(-2))/1 = 2 -> 0.8808
    assert v == pytest.approx([0.5, 1 / (1 + math.exp(-1)), 0.5, 1 / (1 + math.exp(-2))], abs=1e-6)


def test_symmetric_data_puts_the_threshold_in_the_middle():
    # scores -1, 0, 0, 1 with labels F, F, T, T: symmetric about 0, so threshold 0
    t, temp = threshold_temperature(np.array([-1.0, 0.0, 0.0, 1.0]), np.array([0, 0, 1, 1]), sign=1.0)
    assert t == pytest.approx(0.0, abs=1e-6) and temp > 0
    # veto: low goodness = violated; mirrored data gives the same threshold, positive temperature
    vt, vtemp = threshold_temperature(np.array([-1.0, 0.0, 0.0, 1.0]), np.array([1, 1, 0, 0]), sign=-1.0)
    assert vt == pytest.approx(0.0, abs=1e-6) and vtemp > 0


def test_one_sided_or_backwards_labels_fall_back_to_the_median():
    assert threshold_temperature(np.array([1.0, 2.0, 4.0]), np.array([1, 1, 1]), sign=1.0) == (2.0, 1.0)
    # labels rise with the score but the veto sign expects them to fall
    assert threshold_temperature(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0, 0, 1, 1]), sign=-1.0) == (1.5, 1.0)


def test_fit_calibration_splits_veto_from_the_rest():
    scores = np.array([-2.0, -1.0, 1.0, 2.0, -2.0, -1.5, 1.0, 2.0])
    labels = np.array([0, 1, 0, 1, 1, 1, 0, 0], dtype=bool)
    veto = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    calib = fit_calibration(scores, labels, veto, use_criterion=False)
    assert calib.use_criterion is False and calib.temperature > 0 and calib.veto_temperature > 0
    v = values(scores, veto, calib)
    assert v[4] > 0.5 > v[7]       # low-scoring veto triples are the violations


def test_prf_hand_numbers():
    # pred T T F F, gold T F T F: tp 1, precision 1/2, recall 1/2, f1 1/2
    assert prf(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert prf(np.array([0, 0]), np.array([1, 0])) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


class TableGrader:
    """Pure-logic fake: v read from a table keyed by (response text, criterion id)."""

    def __init__(self, table):
        self.table = table

    def grade(self, instructions, responses, criteria):
        return np.array([self.table[(r, c.id)] for r, c in zip(responses, criteria)])


def test_evaluate_hand_worked():
    rec = RubricRecord(
        "p", (Message("user", "q"),),
        (Criterion("m", "has fact", Tier.PROFICIENCY, 1.0), Criterion("v", "harm", Tier.VETO)),
        responses=(LabelledResponse("A", {"m": True, "v": False}), LabelledResponse("B", {"m": False}),
                   LabelledResponse("C", {"v": True})),
        pairs=(PairwisePreference("m", 0, 1), PairwisePreference("v", 0, 2), PairwisePreference("v", 1, 2)))
    table = {("A", "m"): 0.9, ("B", "m"): 0.6, ("A", "v"): 0.7, ("C", "v"): 0.8, ("B", "v"): 0.1}
    report = evaluate(TableGrader(table), [rec])
    # pointwise m: A 0.9>=.5 = T ok; B 0.6 -> T but label F: 1/2.  veto: A 0.7 -> violated, label F (wrong);
    # C 0.8 -> violated, label T (right): 1/2.  B has no v label.
    assert report.pointwise == {"proficiency": 0.5, "veto": 0.5}
    # pairwise m: 0.9 > 0.6 ok. veto goodness = 1 - v: A .3 vs C .2 ok; B .9 vs C .2 ok
    assert report.pairwise == {"proficiency": 1.0, "veto": 1.0}
    assert report.veto == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3)}
    assert report.counts["veto"] == {"pointwise": 2, "pairwise": 2}
    assert "pairwise acc veto" in report.table()


def test_f1_threshold_hand_worked():
    from promedical.reward_model.calibration import f1_threshold
    # goodness 0, 1, 2, 3; violations at 0 and 2. cuts 0.5 (F1 2/3), 1.5 (F1 1/2), 2.5 (F1 4/5) -> 2.5
    assert f1_threshold(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1, 0, 1, 0], dtype=bool)) == 2.5
    assert f1_threshold(np.array([0.0, 1.0]), np.array([0, 0], dtype=bool)) is None
