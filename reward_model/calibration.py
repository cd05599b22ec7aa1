"""Score calibration: raw reward-model scores -> v_i in [0, 1]. Pure numpy.

A trained model scores "how good is this response under criterion c" (higher = better). The grader
turns the score s into v_i with a logistic map fitted on labelled training responses (Platt scaling):
    proficiency, bonus  v = sigmoid((s - threshold) / temperature)            P(criterion met)
    veto                v = sigmoid((veto_threshold - s) / veto_temperature)  P(violation present)
The fit is 1-D logistic regression p = sigmoid(a*s + b) by Newton's method with a small ridge term.
The veto threshold is then moved to the score cut that maximises F1 of "violation" on the training
triples: violations are the rare class, and the likelihood-optimal cut flags almost none of them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

RIDGE = 1e-3
NEWTON_STEPS = 50


@dataclass(frozen=True)
class Calibration:
    threshold: float = 0.0
    temperature: float = 1.0
    veto_threshold: float = 0.0
    veto_temperature: float = 1.0
    use_criterion: bool = True

    def to_json(self) -> dict:
        return asdict(self)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def fit_logistic(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(a, b) maximising the ridge-penalised likelihood of labels ~ Bernoulli(sigmoid(a*s + b))."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    x = np.stack([s, np.ones_like(s)], axis=1)          # (N, 2)
    w = np.zeros(2)
    for _ in range(NEWTON_STEPS):
        p = sigmoid(x @ w)
        grad = x.T @ (p - y) + RIDGE * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + RIDGE * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), float(w[1])


def threshold_temperature(scores: np.ndarray, labels: np.ndarray, sign: float) -> tuple[float, float]:
    """(threshold, temperature > 0) with P(label) = sigmoid(sign * (s - threshold) / temperature).

    Falls back to (median score, 1) when the labels are one-sided or the fit points the wrong way.
    """
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    if s.size == 0:
        return 0.0, 1.0
    if y.all() or not y.any():
        return float(np.median(s)), 1.0
    a, b = fit_logistic(s, y)
    if sign * a <= 1e-6:
        return float(np.median(s)), 1.0
    return float(-b / a), float(sign / a)


def f1_threshold(scores: np.ndarray, violated: np.ndarray) -> float | None:
    """The midpoint cut t maximising F1 of (score < t) against `violated`; None without both classes."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(violated, dtype=bool)
    if y.all() or not y.any():
        return None
    cuts = np.unique(s)
    cuts = (cuts[:-1] + cuts[1:]) / 2 if cuts.size > 1 else cuts
    best, best_f1 = None, -1.0
    for t in cuts:
        pred = s < t
        tp = float((pred & y).sum())
        f1 = 2 * tp / (pred.sum() + y.sum())
        if f1 > best_f1:
            best, best_f1 = float(t), f1
    return best


def fit_calibration(scores: np.ndarray, labels: np.ndarray, is_veto: np.ndarray,
                    use_criterion: bool) -> Calibration:
    """Labels: True = criterion met (proficiency/bonus) or violation present (veto)."""
    scores, labels, is_veto = np.asarray(scores), np.asarray(labels, dtype=bool), np.asarray(is_veto, dtype=bool)
    t, temp = threshold_temperature(scores[~is_veto], labels[~is_veto], sign=1.0)
    vt, vtemp = threshold_temperature(scores[is_veto], labels[is_veto], sign=-1.0)
    cut = f1_threshold(scores[is_veto], labels[is_veto])
    vt = vt if cut is None else cut
    return Calibration(threshold=t, temperature=temp, veto_threshold=vt, veto_temperature=vtemp,
                       use_criterion=use_criterion)


def values(scores: np.ndarray, is_veto: np.ndarray, calib: Calibration) -> np.ndarray:
    """v_i per score: P(met) for proficiency/bonus, P(violated) for veto (see the module docstring)."""
    s = np.asarray(scores, dtype=np.float64)
    met = sigmoid((s - calib.threshold) / calib.temperature)
    violated = sigmoid((calib.veto_threshold - s) / calib.veto_temperature)
    return np.where(np.asarray(is_veto, dtype=bool), violated, met)
