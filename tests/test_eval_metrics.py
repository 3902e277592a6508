"""Metric unit tests against closed forms and hand cases."""

from __future__ import annotations

from math import comb

import pytest

from knowrl.eval import (
    Sample,
    correct_count_distribution,
    ks_for,
    majority_correct,
    pass_at_k,
    shard_metrics,
    suite_means,
)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 32])
def test_pass_at_k_equals_the_closed_form(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            closed = 1 - comb(n - c, k) / comb(n, k)
            assert pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12)


def test_pass_at_k_hand_cases():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 4, 1) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_ks():
    assert ks_for(32) == [1, 2, 4, 8, 16, 32] and ks_for(8) == [1, 2, 4, 8] and ks_for(6) == [1, 2, 4, 6]
    assert ks_for(1) == [1]


def test_majority_merges_equivalent_correct_answers():
    # three correct spellings outvote two identical wrong answers
    assert majority_correct(["1/2", "0.5", "\\frac12", "3", "3"], [True, True, True, False, False]) == 1.0
    assert majority_correct(["3", "3", "3", "0.5"], [False, False, False, True]) == 0.0


def test_majority_ties_count_as_a_fair_coin():
    assert majority_correct(["1", "2"], [True, False]) == 0.5
    assert majority_correct(["1", "2", "3"], [True, False, False]) == pytest.approx(1 / 3)
    assert majority_correct(["2", "2", "1", "1"], [False, False, True, True]) == 0.5


def test_majority_ignores_missing_answers():
    assert majority_correct([None, None, "5"], [False, False, True]) == 1.0
    assert majority_correct([None, None], [False, False]) == 0.0


def test_majority_normalises_wrong_answers():
    assert majority_correct(["\\frac{1}{3}", "\\dfrac{1}{3}", "2"], [False, False, True]) == 0.0


def samples(pid, correct, tokens=10, truncated=0, kps=2):
    return [Sample(pid, c, str(int(c)), tokens, i < truncated, kps) for i, c in enumerate(correct)]


def test_shard_metrics_by_hand():
    rows = (
        samples("a", [1, 1, 1, 1], tokens=4, kps=3)
        + samples("b", [0, 0, 0, 0], tokens=8, truncated=2, kps=1)
        + samples("c", [1, 0, 0, 0], tokens=6, kps=2)
    )
    m = shard_metrics(rows)
    assert m["accuracy"] == m["avg@4"] == pytest.approx(5 / 12)
    assert m["pass@1"] == pytest.approx(5 / 12)
    assert m["pass@2"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert m["pass@4"] == pytest.approx(2 / 3)
    assert m["maj"] == pytest.approx((1 + 0 + 0) / 3)
    assert (m["mean_length"], m["truncation_rate"], m["mean_kps"]) == (6.0, pytest.approx(2 / 12), 2.0)
    assert (m["zero_correct"], m["all_correct"]) == (pytest.approx(1 / 3), pytest.approx(1 / 3))


def test_uneven_sample_counts_are_an_error():
    with pytest.raises(ValueError, match="different sample counts"):
        shard_metrics(samples("a", [1, 1]) + samples("b", [1]))


def test_sparsity_buckets():
    rows = samples("a", [0, 0, 0]) + samples("b", [1, 0, 0]) + samples("c", [1, 1, 1]) + samples("d", [0, 0, 0])
    assert correct_count_distribution(rows) == {0: 2, 1: 1, 2: 0, 3: 1}


def test_suite_mean_is_unweighted_over_benchmarks():
    per = {
        "AIME24": {"accuracy": 0.5, "pass@32": 0.9, "problems": 30.0},
        "MATH-500": {"accuracy": 0.9, "problems": 500.0},
    }
    means = suite_means(per)
    assert means == {"accuracy": pytest.approx(0.7)}  # not (0.5*30 + 0.9*500) / 530; pass@32 not common
