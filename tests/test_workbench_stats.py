"""Agreement and rate statistics against hand-worked numbers."""
import math

import pytest

from promedical.workbench.stats import cohen_kappa, confusion, rate_by, time_summary, weighted_kappa

# Ten criteria rated by two reviewers on the ordinal scale reject=0 < edited=1 < accepted as drafted=2.
A = [2, 2, 2, 2, 2, 1, 1, 1, 0, 0]
B = [2, 2, 2, 2, 1, 1, 1, 0, 0, 2]
# Joint counts (row A, column B): (2,2)=4 (2,1)=1 (1,1)=2 (1,0)=1 (0,0)=1 (0,2)=1.
# Marginals: A and B both 0.2, 0.3, 0.5 for categories 0, 1, 2.
# Unweighted: p_o = 7/10 = 0.7; p_e = 0.2^2 + 0.3^2 + 0.5^2 = 0.38; kappa = 0.32 / 0.62 = 0.516129.
KAPPA = 0.32 / 0.62
# Linear weights |i-j|/2: observed = (0.5 + 0.5 + 1) / 10 = 0.2;
# expected = 0.5 * 2 * (0.2*0.3 + 0.3*0.5) + 1 * 2 * (0.2*0.5) = 0.21 + 0.2 = 0.41; kappa_w = 1 - 0.2/0.41.
LINEAR = 1 - 0.2 / 0.41
# Quadratic weights (|i-j|/2)^2: observed = (0.25 + 0.25 + 1) / 10 = 0.15; expected = 0.105 + 0.2 = 0.305.
QUADRATIC = 1 - 0.15 / 0.305


def test_confusion_is_joint_proportions():
    c = confusion(A, B, 3)
    assert c[2, 2] == pytest.approx(0.4) and c[0, 2] == pytest.approx(0.1) and c.sum() == pytest.approx(1.0)


def test_kappa_hand_worked():
    assert cohen_kappa(A, B, 3) == pytest.approx(KAPPA)
    assert weighted_kappa(A, B, 3) == pytest.approx(LINEAR)
    assert weighted_kappa(A, B, 3, "quadratic") == pytest.approx(QUADRATIC)


def test_kappa_edges():
    assert cohen_kappa([0, 1, 1, 0], [0, 1, 1, 0], 2) == pytest.approx(1.0)
    # Perfect disagreement with balanced marginals: p_o = 0, p_e = 0.5 -> kappa = -1.
    assert cohen_kappa([0, 1, 0, 1], [1, 0, 1, 0], 2) == pytest.approx(-1.0)
    # Both raters always say the same single category: expected disagreement 0, kappa undefined.
    assert math.isnan(cohen_kappa([1, 1, 1], [1, 1, 1], 2))
    assert math.isnan(weighted_kappa([], [], 3))
    with pytest.raises(ValueError):
        cohen_kappa([0, 1], [0], 2)
    with pytest.raises(ValueError):
        weighted_kappa(A, B, 3, "cubic")


def test_rates_and_times():
    # round 1: 2 of 4 accepted; round 2: 3 of 3
    rates = rate_by([(1, True), (1, False), (2, True), (1, True), (1, False), (2, True), (2, True)])
    assert rates == {1: (2, 4, 0.5), 2: (3, 3, 1.0)}
    assert time_summary([10.0, 30.0, 20.0, 100.0]) == (25.0, 40.0, 4)
    median, mean, n = time_summary([])
    assert n == 0 and math.isnan(median) and math.isnan(mean)
