"""Uplift ranking metrics: hand-computed values for both conventions, plus validation.

Notation in the comments: rows sorted by score (highest first); after the top n,
NT/NC = treated/control counts, RT/RC = their outcome sums.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.evaluate import (
    causalml_auuc_score,
    causalml_gain_curve,
    causalml_qini_curve,
    causalml_qini_score,
    per_arm,
    perfect_qini_curve,
    perfect_uplift_curve,
    qini_auc_score,
    qini_curve,
    uplift_at_k,
    uplift_auc_score,
    uplift_curve,
)

# Data A: binary outcome, ties at 0.9 (rows 0, 1) and at 0.4 (rows 3, 4).
#   row:   0    1    2    3    4    5
#   y:     1    0    1    1    0    0
#   t:     1    0    0    1    1    0
#   s:    .9   .9   .5   .4   .4   .1
Y_A = np.array([1, 0, 1, 1, 0, 0])
T_A = np.array([1, 0, 0, 1, 1, 0])
S_A = np.array([0.9, 0.9, 0.5, 0.4, 0.4, 0.1])

# Data B: continuous outcome (revenue), no ties.
Y_B = np.array([10.0, 0.0, 4.0, 2.0])
T_B = np.array([1, 0, 1, 0])
S_B = np.array([0.8, 0.6, 0.4, 0.2])


# ----------------------------------------------------------------- scikit-uplift curves


def test_uplift_curve_groups_ties_by_hand():
    # Blocks: {0,1} -> n=2: NT=1 RT=1 NC=1 RC=0 -> (1 - 0) * 2 = 2
    #         {2}   -> n=3: NT=1 RT=1 NC=2 RC=1 -> (1 - 1/2) * 3 = 1.5
    #         {3,4} -> n=5: NT=3 RT=2 NC=2 RC=1 -> (2/3 - 1/2) * 5 = 5/6
    #         {5}   -> n=6: NT=3 RT=2 NC=3 RC=1 -> (2/3 - 1/3) * 6 = 2
    x, v = uplift_curve(Y_A, T_A, S_A)
    np.testing.assert_allclose(x, [0, 2, 3, 5, 6])
    np.testing.assert_allclose(v, [0, 2, 1.5, 5 / 6, 2])


def test_qini_curve_groups_ties_by_hand():
    # qini = RT - RC * NT/NC at the same block ends as above:
    #   n=2: 1 - 0*1/1 = 1;  n=3: 1 - 1*1/2 = 0.5;  n=5: 2 - 1*3/2 = 0.5;  n=6: 2 - 1*3/3 = 1
    x, v = qini_curve(Y_A, T_A, S_A)
    np.testing.assert_allclose(x, [0, 2, 3, 5, 6])
    np.testing.assert_allclose(v, [0, 1, 0.5, 0.5, 1])


def test_zero_denominator_counts_as_zero():
    # n=1: top row treated, y=1, no control yet: uplift (1/1 - [0/0 -> 0]) * 1 = 1;
    #      qini 1 - 0 * [1/0 -> 0] = 1.
    # n=2: NT=1 RT=1 NC=1 RC=0 -> uplift (1 - 0) * 2 = 2, qini 1 - 0 = 1
    # n=3: NT=1 RT=1 NC=2 RC=1 -> uplift (1 - 1/2) * 3 = 1.5, qini 1 - 1 * 1/2 = 0.5
    y, t, s = [1, 0, 1], [1, 0, 0], [3.0, 2.0, 1.0]
    np.testing.assert_allclose(uplift_curve(y, t, s)[1], [0, 1, 2, 1.5])
    np.testing.assert_allclose(qini_curve(y, t, s)[1], [0, 1, 1, 0.5])


def test_tie_grouping_makes_curves_independent_of_row_order():
    # Reversing the rows changes which tied row comes first; sklift's grouped curve must not
    # change, while causalml's per-unit curve does (see test_causalml_curves_depend_on_tie_order).
    rev = slice(None, None, -1)
    for curve in (uplift_curve, qini_curve):
        x1, v1 = curve(Y_A, T_A, S_A)
        x2, v2 = curve(Y_A[rev], T_A[rev], S_A[rev])
        np.testing.assert_allclose(x1, x2)
        np.testing.assert_allclose(v1, v2)


def test_constant_score_is_one_block_and_scores_exactly_zero():
    # One block: the curve is the straight line (0,0)-(N, curve(N)) = the baseline -> 0.
    s = np.full(6, 0.3)
    x, v = uplift_curve(Y_A, T_A, s)
    np.testing.assert_allclose(x, [0, 6])
    np.testing.assert_allclose(v, [0, 2])
    assert uplift_auc_score(Y_A, T_A, s) == pytest.approx(0.0, abs=1e-12)
    assert qini_auc_score(Y_A, T_A, s) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------- perfect curves and sklift scores


def test_perfect_uplift_curve_by_hand():
    # control responders (y=1,t=0): row 2 -> 1; treated non-responders (y=0,t=1): row 4 -> 1.
    # 1 > 1 is false, so the perfect score is 2*1[y==t] + t: rows -> [3, 2, 0, 3, 1, 2]
    # blocks: {0,3} n=2: NT=2 RT=2 NC=0      -> (1 - 0) * 2 = 2
    #         {1,5} n=4: NT=2 RT=2 NC=2 RC=0 -> 1 * 4 = 4
    #         {4}   n=5: NT=3 RT=2 NC=2 RC=0 -> 2/3 * 5 = 10/3
    #         {2}   n=6: NT=3 RT=2 NC=3 RC=1 -> 1/3 * 6 = 2
    x, v = perfect_uplift_curve(Y_A, T_A)
    np.testing.assert_allclose(x, [0, 2, 4, 5, 6])
    np.testing.assert_allclose(v, [0, 2, 4, 10 / 3, 2])


def test_perfect_qini_curves_by_hand():
    # negative_effect=True ranks by y*t - y*(1-t) = [1, 0, -1, 1, 0, 0]
    #   {0,3} n=2: 2 - 0 = 2;  {1,4,5} n=5: NT=3 RT=2 NC=2 RC=0 -> 2;  {2} n=6: 2 - 1*3/3 = 1
    x, v = perfect_qini_curve(Y_A, T_A, negative_effect=True)
    np.testing.assert_allclose(x, [0, 2, 5, 6])
    np.testing.assert_allclose(v, [0, 2, 2, 1])
    # negative_effect=False: Q = RT - NT*RC/NC = 2 - 3*1/3 = 1 -> (0,0) -> (1,1) -> (6,1)
    x, v = perfect_qini_curve(Y_A, T_A, negative_effect=False)
    np.testing.assert_allclose(x, [0, 1, 6])
    np.testing.assert_allclose(v, [0, 1, 1])


def test_uplift_auc_score_by_hand():
    # model area (trapezoids on x=[0,2,3,5,6], v=[0,2,1.5,5/6,2]):
    #   2 + 1.75 + 7/3 + 17/12 = 7.5;   base = 6 * 2 / 2 = 6   -> 1.5
    # perfect area (x=[0,2,4,5,6], v=[0,2,4,10/3,2]): 2 + 6 + 11/3 + 8/3 = 43/3 -> 43/3 - 6 = 25/3
    # score = 1.5 / (25/3) = 0.18
    assert uplift_auc_score(Y_A, T_A, S_A) == pytest.approx(0.18)


def test_qini_auc_score_by_hand_both_negative_effect_settings():
    # model area (v=[0,1,.5,.5,1] on x=[0,2,3,5,6]): 1 + .75 + 1 + .75 = 3.5; base 6*1/2 = 3 -> .5
    # negative_effect=True:  perfect area 2 + 6 + 1.5 = 9.5 -> 6.5; score = .5/6.5 = 1/13
    # negative_effect=False: perfect area .5 + 5 = 5.5 -> 2.5;     score = .5/2.5 = 0.2
    assert qini_auc_score(Y_A, T_A, S_A) == pytest.approx(1 / 13)
    assert qini_auc_score(Y_A, T_A, S_A, negative_effect=False) == pytest.approx(0.2)


def test_perfect_ranking_scores_one():
    # Data A (summand = t): treated responder 3 > control non-responder 2
    #                       > treated non-responder 1 > control responder 0.
    by_type = {(1, 1): 3, (0, 0): 2, (0, 1): 1, (1, 0): 0}
    s = [by_type[(yi, ti)] for yi, ti in zip(Y_A, T_A, strict=True)]
    assert uplift_auc_score(Y_A, T_A, s) == pytest.approx(1.0)
    # Qini with negative effects: treated responders top, control responders bottom.
    s_q = [
        1 if (yi, ti) == (1, 1) else -1 if (yi, ti) == (1, 0) else 0
        for yi, ti in zip(Y_A, T_A, strict=True)
    ]
    assert qini_auc_score(Y_A, T_A, s_q) == pytest.approx(1.0)
    # Other branch: 2 control responders > 1 treated non-responder, so summand = y and control
    # responders (1) rank above treated non-responders (0).
    y, t = [0, 0, 1, 1], [1, 0, 0, 0]
    assert uplift_auc_score(y, t, [0, 2, 1, 1]) == pytest.approx(1.0)
    assert uplift_auc_score(y, t, [2, 0, 1, 1]) < 1.0


def test_sklift_normalisation_is_not_bounded_by_one():
    # scikit-uplift's "perfect" curve is a heuristic, not the maximum over rankings.
    # y=[0,0,1,1], t=[1,0,0,0]; perfect (summand=y) scores [0,2,1,1]:
    #   x=[0,1,3,4], v=[0, 0, (0-2/3)*3=-2, (0-2/3)*4=-8/3]; area 0 - 2 - 7/3 = -13/3
    #   base = 4 * (-8/3) / 2 = -16/3 -> perfect - base = 1
    # ranking rows 1, 0, 3, 2: v=[0, 0, 0, (0-1/2)*3=-1.5, -8/3]; area -0.75 - 25/12 = -17/6
    #   -> model - base = -17/6 + 32/6 = 2.5 -> score 2.5
    y, t = [0, 0, 1, 1], [1, 0, 0, 0]
    assert uplift_auc_score(y, t, [3, 4, 1, 2]) == pytest.approx(2.5)


# ------------------------------------------------------------------------- uplift_at_k


def test_uplift_at_k_by_hand_overall_and_by_group():
    # sklift order = argsort(s, mergesort)[::-1] = rows [1, 0, 2, 4, 3, 5]
    # (among ties the later row first: 1 before 0, 4 before 3).
    # overall k=0.5 -> floor(3.0)=3 rows {1,0,2}: T {0}: 1; C {1,2}: 0.5 -> 0.5
    assert uplift_at_k(Y_A, T_A, S_A, k=0.5) == pytest.approx(0.5)
    # overall k=4 -> {1,0,2,4}: T {0,4}: 0.5; C {1,2}: 0.5 -> 0 (with row 3 instead of 4: 0.5)
    assert uplift_at_k(Y_A, T_A, S_A, k=4) == pytest.approx(0.0)
    # k=0.6 -> floor(3.6) = 3 rows, same as k=0.5 (ceil would give 4 rows -> 0.0)
    assert uplift_at_k(Y_A, T_A, S_A, k=0.6) == pytest.approx(0.5)
    # by_group k=0.5 -> floor(1.5)=1 per group: T order [0,4,3] -> row 0: 1; C [1,2,5] -> row 1: 0
    assert uplift_at_k(Y_A, T_A, S_A, k=0.5, strategy="by_group") == pytest.approx(1.0)
    # by_group k=2: T {0,4}: 0.5; C {1,2}: 0.5 -> 0
    assert uplift_at_k(Y_A, T_A, S_A, k=2, strategy="by_group") == pytest.approx(0.0)
    # k=1.0 is everyone: ATE = 2/3 - 1/3
    assert uplift_at_k(Y_A, T_A, S_A, k=1.0) == pytest.approx(1 / 3)


# ------------------------------------------------------------------------ causalml family


def test_causalml_curves_by_hand():
    # Plain stable sort = rows 0..5 in input order, one point per unit.
    #   n=1: NT=1 NC=0 -> undefined, interpolated      n=2: lift 1 - 0 = 1       gain 2
    #   n=3: lift 1 - 1/2 = .5   gain 1.5              n=4: lift 2/2 - 1/2 = .5  gain 2
    #   n=5: lift 2/3 - 1/2      gain 5/6              n=6: lift 2/3 - 1/3       gain 2
    #   n=1: lift interpolated between lift(0)=0 and lift(2)=1 -> .5, gain .5
    x, gain = causalml_gain_curve(Y_A, T_A, S_A)
    np.testing.assert_allclose(x, np.arange(7))
    np.testing.assert_allclose(gain, [0, 0.5, 2, 1.5, 2, 5 / 6, 2])
    # qini: n=2: 1; n=3: 1 - 1*1/2 = .5; n=4: 2 - 1*2/2 = 1; n=5: 2 - 1*3/2 = .5; n=6: 2 - 1 = 1
    #   n=1 (no control) interpolated between 0 and 1 -> .5
    _, qini = causalml_qini_curve(Y_A, T_A, S_A)
    np.testing.assert_allclose(qini, [0, 0.5, 1, 0.5, 1, 0.5, 1])
    # normalize divides by |curve(N)| = 2
    np.testing.assert_allclose(
        causalml_gain_curve(Y_A, T_A, S_A, normalize=True)[1], [0, 0.25, 1, 0.75, 1, 5 / 12, 1]
    )


def test_causalml_scores_by_hand():
    # auuc = sum(normalised gain) / 7 = (0 + .25 + 1 + .75 + 1 + 5/12 + 1) / 7 = (53/12) / 7
    assert causalml_auuc_score(Y_A, T_A, S_A) == pytest.approx(53 / 84)
    assert causalml_auuc_score(Y_A, T_A, S_A, normalize=False) == pytest.approx(53 / 42)
    # qini_score = (sum q - sum linspace(0, 1, 7)) / 7 = (4.5 - 3.5) / 7
    assert causalml_qini_score(Y_A, T_A, S_A) == pytest.approx(1 / 7)


def test_causalml_curves_depend_on_tie_order():
    # Reversed rows: order is 5,4,3,2,1,0 reversed -> ties keep input order: 1,0,2,4,3,5
    # n=4 now holds rows {1,0,2,4}: NT=2 RT=1 NC=2 RC=1 -> lift 0, gain 0 (was 2).
    rev = slice(None, None, -1)
    _, gain = causalml_gain_curve(Y_A[rev], T_A[rev], S_A[rev])
    np.testing.assert_allclose(gain, [0, 0.5, 2, 1.5, 0, 5 / 6, 2])


def test_causalml_and_sklift_differ_on_same_data():
    # Same data A, same ranking: different conventions -> different numbers.
    assert uplift_auc_score(Y_A, T_A, S_A) == pytest.approx(0.18)
    assert causalml_auuc_score(Y_A, T_A, S_A) == pytest.approx(53 / 84)
    assert qini_auc_score(Y_A, T_A, S_A) == pytest.approx(1 / 13)
    assert causalml_qini_score(Y_A, T_A, S_A) == pytest.approx(1 / 7)
    # A constant score: sklift groups all ties -> exactly 0; causalml walks the rows in input
    # order (here the same order as S_A) and reports the same 1/7 as for S_A.
    s = np.zeros(6)
    assert qini_auc_score(Y_A, T_A, s) == pytest.approx(0.0, abs=1e-12)
    assert causalml_qini_score(Y_A, T_A, s) == pytest.approx(1 / 7)


# --------------------------------------------------------------------- continuous outcome


def test_continuous_outcome_curves_and_causalml_scores():
    # Y_B = [10, 0, 4, 2], T_B = [1, 0, 1, 0], sorted = input order.
    #   n=1: NT=1 RT=10 NC=0 -> uplift (10 - 0)*1 = 10, qini 10
    #   n=2: NC=1 RC=0       -> uplift 10*2 = 20,       qini 10
    #   n=3: NT=2 RT=14      -> uplift 7*3 = 21,        qini 14
    #   n=4: NC=2 RC=2       -> uplift (7-1)*4 = 24,    qini 14 - 2*2/2 = 12
    x, v = uplift_curve(Y_B, T_B, S_B)
    np.testing.assert_allclose(x, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(v, [0, 10, 20, 21, 24])
    np.testing.assert_allclose(qini_curve(Y_B, T_B, S_B)[1], [0, 10, 10, 14, 12])
    # causalml: n=1 undefined -> lift 5, gain 5; qini 5.  gain = [0,5,20,21,24]
    #   auuc = (0+5+20+21+24)/24 / 5 = 7/12;  unnormalised 70/5 = 14
    #   qini = [0,5,10,14,12]; (41 - (0+3+6+9+12)) / 5 = 2.2 ; normalised by 12 -> 11/60
    assert causalml_auuc_score(Y_B, T_B, S_B) == pytest.approx(7 / 12)
    assert causalml_auuc_score(Y_B, T_B, S_B, normalize=False) == pytest.approx(14.0)
    assert causalml_qini_score(Y_B, T_B, S_B, normalize=False) == pytest.approx(2.2)
    assert causalml_qini_score(Y_B, T_B, S_B) == pytest.approx(11 / 60)
    # uplift_at_k is a difference in means: top 2 = rows 0 (T, 10), 1 (C, 0) -> 10
    assert uplift_at_k(Y_B, T_B, S_B, k=2) == pytest.approx(10.0)


@pytest.mark.parametrize(
    "fn",
    [uplift_auc_score, qini_auc_score],
)
def test_perfect_normalised_scores_reject_continuous_outcome(fn):
    with pytest.raises(ValueError, match="binary outcome"):
        fn(Y_B, T_B, S_B)


@pytest.mark.parametrize("fn", [perfect_uplift_curve, perfect_qini_curve])
def test_perfect_curves_reject_continuous_outcome(fn):
    with pytest.raises(ValueError, match="binary outcome"):
        fn(Y_B, T_B)


# ------------------------------------------------------------------------ random baseline


def test_random_scores_average_to_the_baseline():
    # True uplift 0.3*x; random scores carry no information. Averaged over 200 seeded draws
    # the baseline-corrected scores are ~0 (one draw has sd ~0.03-0.04, so the mean's sd is
    # ~0.003), causalml's uncorrected AUUC is ~0.5, and the true ranking x clearly beats both.
    rng = np.random.default_rng(20240611)
    n = 1000
    x = rng.random(n)
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.1 + 0.3 * x * t).astype(float)
    fns = {
        "uplift_auc": uplift_auc_score,
        "qini_auc": qini_auc_score,
        "cml_qini": causalml_qini_score,
        "cml_auuc": causalml_auuc_score,
    }
    draws = {name: [] for name in fns}
    for _ in range(200):
        s = rng.random(n)
        for name, fn in fns.items():
            draws[name].append(fn(y, t, s))
    means = {name: float(np.mean(v)) for name, v in draws.items()}
    expected = {"uplift_auc": 0.0, "qini_auc": 0.0, "cml_qini": 0.0, "cml_auuc": 0.5}
    for name, fn in fns.items():
        assert means[name] == pytest.approx(expected[name], abs=0.01), name
        assert fn(y, t, x) > means[name] + 0.05, name


# --------------------------------------------------------------------------- multiple arms


ARM = ["A", "ctrl", "B", "A", "ctrl", "B"]
Y_ARM = [1, 0, 0, 0, 0, 1]
S_ARM_A = [0.9, 0.1, 0.5, 0.2, 0.8, 0.95]
S_ARM_B = [0.0, 0.7, 0.6, 0.0, 0.2, 0.1]


def test_per_arm_by_hand():
    # A vs ctrl (rows 0,1,3,4), A's scores, by_group k=1:
    #   treated 0 (.9, y1), 3 (.2, y0) -> row 0: 1;  control 1 (.1, y0), 4 (.8, y0) -> 0  => 1
    #   (with B's scores: treated tie at 0.0 -> row 3 first -> 0; pooling B's rows into control
    #   would put row 5 (.95, y1) top of control -> 0. Both mistakes give 0.)
    # B vs ctrl (rows 1,2,4,5), B's scores:
    #   treated 2 (.6, y0), 5 (.1, y1) -> row 2: 0;  control 1 (.7, y0) -> 0             => 0
    #   (with A's scores row 5 (.95) would lead -> 1.)
    out = per_arm(
        uplift_at_k,
        Y_ARM,
        ARM,
        {"A": S_ARM_A, "B": S_ARM_B},
        "ctrl",
        k=1,
        strategy="by_group",
    )
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == ["A", "B"]
    assert out.loc["A", "value"] == pytest.approx(1.0)
    assert out.loc["B", "value"] == pytest.approx(0.0)
    assert out["n_treated"].tolist() == [2, 2]
    assert out["n_control"].tolist() == [2, 2]


def test_per_arm_matches_manual_subset_with_int_labels():
    rng = np.random.default_rng(3)
    n = 60
    arm = rng.integers(0, 3, n)  # 0 = control, 1 and 2 treated arms
    y = rng.normal(size=n)
    scores = {1: rng.normal(size=n), 2: rng.normal(size=n)}
    out = per_arm(causalml_qini_score, y, arm, scores, 0, normalize=False)
    for label in (1, 2):
        keep = (arm == label) | (arm == 0)
        expected = causalml_qini_score(
            y[keep], (arm[keep] == label).astype(int), scores[label][keep], normalize=False
        )
        assert out.loc[label, "value"] == pytest.approx(expected)
        assert out.loc[label, "n_control"] == int((arm == 0).sum())


@pytest.mark.parametrize(
    ("arm", "scores", "control", "match"),
    [
        (ARM, {"A": S_ARM_A}, "placebo", "control_label"),
        (ARM, {"C": S_ARM_A}, "ctrl", "does not occur"),
        (ARM, {"A": S_ARM_A[:5]}, "ctrl", "shape"),
        (ARM, {"ctrl": S_ARM_A}, "ctrl", "control label"),
        (ARM, {}, "ctrl", "empty"),
        (ARM[:5], {"A": S_ARM_A}, "ctrl", "length mismatch"),
        (["A", None, "B", "A", "ctrl", "B"], {"A": S_ARM_A}, "ctrl", "missing"),
    ],
)
def test_per_arm_validation(arm, scores, control, match):
    with pytest.raises(ValueError, match=match):
        per_arm(uplift_at_k, Y_ARM, arm, scores, control)


# ------------------------------------------------------------------------ input validation

SCORE_FNS = [
    uplift_curve,
    qini_curve,
    uplift_auc_score,
    qini_auc_score,
    uplift_at_k,
    causalml_gain_curve,
    causalml_qini_curve,
    causalml_auuc_score,
    causalml_qini_score,
]


@pytest.mark.parametrize("fn", SCORE_FNS)
@pytest.mark.parametrize(
    ("y", "t", "s", "match"),
    [
        ([1, 0, 1], [1, 0, 1, 0], [1, 2, 3], "length mismatch"),
        ([1, 0, 1, 0], [1, 0, 2, 0], [1, 2, 3, 4], "treatment must be 0/1"),
        ([1, np.nan, 1, 0], [1, 0, 1, 0], [1, 2, 3, 4], "y contains 1 NaN"),
        ([1, 0, 1, 0], [1, 0, np.nan, 0], [1, 2, 3, 4], "treatment contains 1 NaN"),
        ([1, 0, 1, 0], [1, 0, 1, 0], [1, np.nan, 3, 4], "score contains 1 NaN"),
        ([1, 0, 1, 0], [1, 0, 1, 0], [1, np.inf, 3, 4], "score contains 1 NaN or infinite"),
        ([1, 0, 1, 0], [1, 1, 1, 1], [1, 2, 3, 4], "no control rows"),
        ([1, 0, 1, 0], [0, 0, 0, 0], [1, 2, 3, 4], "no treated rows"),
        ([], [], [], "empty"),
        ([[1, 0], [1, 0]], [[1, 0], [1, 0]], [[1, 2], [3, 4]], "one-dimensional"),
        ([1, 0, 1, 0], ["a", "b", "a", "b"], [1, 2, 3, 4], "numeric"),
    ],
)
def test_input_validation(fn, y, t, s, match):
    with pytest.raises(ValueError, match=match):
        fn(y, t, s)


def test_accepts_lists_series_and_bool_treatment():
    expected = uplift_curve(Y_A, T_A, S_A)[1]
    got = uplift_curve(pd.Series(Y_A), pd.Series(T_A.astype(bool)), list(S_A))[1]
    np.testing.assert_allclose(got, expected)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"strategy": "first"}, ValueError, "strategy"),
        ({"k": 0.0}, ValueError, r"\(0, 1\]"),
        ({"k": 1.5}, ValueError, r"\(0, 1\]"),
        ({"k": 0}, ValueError, "between 1 and"),
        ({"k": 7}, ValueError, "between 1 and"),
        ({"k": 4, "strategy": "by_group"}, ValueError, "treated rows"),
        ({"k": 0.1}, ValueError, "selects no rows"),
        ({"k": 1}, ValueError, "no treated rows"),  # top row (sklift order) is row 1: control
        ({"k": True}, TypeError, "bool"),
        ({"k": "30%"}, TypeError, "k must be"),
    ],
)
def test_uplift_at_k_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        uplift_at_k(Y_A, T_A, S_A, **kwargs)


def test_degenerate_normalisations_raise():
    y0 = np.zeros(6)
    with pytest.raises(ValueError, match="undefined"):
        uplift_auc_score(y0, T_A, S_A)
    with pytest.raises(ValueError, match="undefined"):
        qini_auc_score(y0, T_A, S_A)
    with pytest.raises(ValueError, match=r"curve\(N\) == 0"):
        causalml_auuc_score(y0, T_A, S_A)
    with pytest.raises(ValueError, match=r"curve\(N\) == 0"):
        causalml_qini_score(y0, T_A, S_A)
    # Unnormalised causalml scores stay defined (all zeros).
    assert causalml_auuc_score(y0, T_A, S_A, normalize=False) == 0.0


def test_perfect_qini_without_negative_effect_needs_positive_overall_qini():
    # y = t flipped: RT = 0, RC = 2 -> Q = 0 - 2*2/2 = -2 < 0
    y, t = [0, 0, 1, 1], [1, 1, 0, 0]
    with pytest.raises(ValueError, match="non-negative overall Qini"):
        perfect_qini_curve(y, t, negative_effect=False)
    with pytest.raises(TypeError, match="negative_effect must be bool"):
        qini_auc_score(Y_A, T_A, S_A, negative_effect=1)
