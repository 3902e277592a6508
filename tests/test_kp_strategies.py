"""Each strategy's rule, pinned on hand-made problems with an exact (deterministic) scorer."""

from __future__ import annotations

import contextlib

import pytest

from knowrl.data import Problem
from knowrl.kp import select_kps, strategy_spec


class ExactScorer:
    """Answers from a known accuracy function; each question 'costs' k rollouts."""

    def __init__(self, acc, k=8, by_repeat=None):
        self.acc, self.k, self.by_repeat, self.spent = acc, k, by_repeat, {}

    def _a(self, s, repeat):
        return self.by_repeat(s, repeat) if self.by_repeat else self.acc(s)

    def _pay(self, problem, n):
        self.spent[problem.id] = self.spent.get(problem.id, 0) + n * self.k

    def accuracies(self, problem, subsets, repeat=0):
        self._pay(problem, len(subsets))
        return [self._a(tuple(s), repeat) for s in subsets]

    def at_least(self, problem, queries, repeat=0):
        self._pay(problem, len(queries))
        return [self._a(tuple(s), repeat) >= t - 1e-12 for s, t in queries]

    def not_worse(self, problem, subsets, reference, delta=0.0, repeat=0, **how):
        self._pay(problem, len(subsets) + 1)
        a_ref = self._a(tuple(reference), repeat)
        return [self._a(tuple(s), repeat) >= a_ref - delta - 1e-12 for s in subsets]

    def best(self, problem, subsets, repeat):
        self._pay(problem, len(subsets))
        return max(range(len(subsets)), key=lambda j: (self.acc(tuple(subsets[j])), -j))

    def selecting(self, problem):
        return contextlib.nullcontext()

    def estimate(self, problem, subset):
        return self.acc(tuple(subset))


def problem(n):
    return Problem(id=f"p{n}", benchmark="t", problem="P", answer="1", kps=tuple(f"kp{i}" for i in range(n)))


def unlock(critical=(), pairs=(), harmful=(), locked=0.0, unlocked=0.9, harm=0.2):
    def acc(s):
        s = set(s)
        ok = set(critical) <= s and all(a in s or b in s for a, b in pairs)
        return max(0.0, (unlocked if ok else locked) - harm * len(s & set(harmful)))

    return acc


def run(strategy, n, acc, **params):
    return select_kps(problem(n), strategy_spec(strategy, **params), ExactScorer(acc))


def test_trivial_strategies():
    p = problem(5)
    assert select_kps(p, strategy_spec("none"), None).indices == ()
    assert select_kps(p, strategy_spec("all"), None).indices == (0, 1, 2, 3, 4)
    a = select_kps(p, strategy_spec("random", size=2, seed=3), None).indices
    assert len(a) == 2 and a == select_kps(p, strategy_spec("random", size=2, seed=3), None).indices
    assert select_kps(p, strategy_spec("random", size=9), None).indices == (0, 1, 2, 3, 4)


def test_random_matches_a_reference_mean():
    sizes = [
        len(
            select_kps(
                Problem(id=str(i), benchmark="t", problem="P", answer="1", kps=tuple("abcdef")),
                strategy_spec("random", match_mean=2.53),
                None,
            ).indices
        )
        for i in range(4000)
    ]
    assert sum(sizes) / len(sizes) == pytest.approx(2.53, abs=0.05) and set(sizes) == {2, 3}


def test_empty_and_single_kp_lists():
    for strategy in ("none", "all", "max_score", "s_loo", "t_loo", "cbrs", "css"):
        assert run(strategy, 0, lambda s: 0.5).indices == ()
    helpful = unlock(critical=(0,))
    assert run("css", 1, helpful).indices == (0,)
    assert run("css", 1, lambda s: 0.5).indices == ()  # the KP does nothing: removable
    assert run("s_loo", 1, helpful).indices == (0,)


def test_max_score_picks_the_best_and_breaks_ties_towards_fewer_kps():
    table = {(): 0.1, (0, 1, 2): 0.6, (1, 2): 0.8, (0, 2): 0.8, (0, 1): 0.5}
    sel = run("max_score", 3, lambda s: table[s])
    assert sel.indices == (1, 2)  # tied with (0, 2) and as small: the earlier candidate
    table[(0, 1, 2)] = 0.8
    assert run("max_score", 3, lambda s: table[s]).indices == (1, 2)  # full ties at 0.8: fewer KPs win
    table[()] = 0.8
    assert run("max_score", 3, lambda s: table[s]).indices == ()


def test_s_loo_drops_every_kp_whose_removal_does_not_lower_accuracy():
    acc = unlock(critical=(0,), harmful=(2,))  # 1 is redundant, 2 hurts
    assert run("s_loo", 3, acc).indices == (0,)


def test_t_loo_tolerates_small_drops():
    def acc(s):
        return 0.9 - (0.1 if 1 not in s else 0) - (0.3 if 2 not in s else 0) - (0.9 if 0 not in s else 0)

    assert run("s_loo", 3, acc).indices == (0, 1, 2)
    assert run("t_loo", 3, acc, delta=0.125).indices == (0, 2)


def test_loo_is_fooled_by_the_interaction_paradox_and_css_is_not():
    acc = unlock(critical=(0,), pairs=((1, 2),))  # 1 and 2 are substitutes
    assert run("s_loo", 4, acc).indices == (0,)  # drops 1 and 2 together: accuracy collapses
    assert acc((0,)) == 0.0
    css = run("css", 4, acc)
    assert css.indices in ((0, 1), (0, 2)) and acc(css.indices) == pytest.approx(0.9)
    joint = [t for t in css.trace if t["step"].startswith("joint")]
    assert joint[0]["subset"] == [0] and joint[0]["passed"] is False  # removing all of {1,2,3} re-checked, rejected


def test_css_returns_the_smallest_subset_and_empty_when_solved():
    acc = unlock(critical=(2,))
    assert run("css", 5, acc).indices == (2,)
    assert run("css", 5, unlock(locked=1.0, unlocked=1.0)).indices == ()
    assert run("css", 5, unlock(critical=(1, 3))).indices == (1, 3)


def test_css_respects_its_delta():
    base = unlock(critical=(0,))

    def with_slope(s):
        return base(s) - (0.05 if 1 not in s else 0.0)

    assert run("css", 3, with_slope, delta=0.0).indices == (0, 1)
    assert run("css", 3, with_slope, delta=0.1).indices == (0,)


def test_css_budget_exhaustion_returns_the_full_set():
    acc = unlock(critical=(0,), pairs=((1, 2),))
    sel = run("css", 6, acc, budget=8 * 8)  # enough for solved + full + 6 LOO, not for the joint search
    assert sel.trace[-1]["step"] == "budget-exhausted"
    assert sel.indices == tuple(range(6))  # no smaller subset was verified jointly


def test_cbrs_removes_at_most_one_consistently_harmless_kp():
    acc = unlock(critical=(0,), harmful=(3,))
    assert run("cbrs", 4, acc).indices == (0, 1, 2)  # 3 is the best single removal (it hurts when present)
    assert run("cbrs", 4, unlock(locked=1.0, unlocked=1.0)).indices == ()

    def flaky(s, repeat):  # removing 3 -- the best removal -- looks harmless in repeat 0 only
        a = acc(s)
        return 0.0 if (3 not in s and repeat == 1) else a

    # Consensus: only KPs harmless in every repeat may go, so 3 stays and 1 (tied with 2, lower index) goes.
    # One repeat alone (no consensus) would drop 3, as the first case does.
    sel = select_kps(problem(4), strategy_spec("cbrs", repeats=2), ExactScorer(acc, by_repeat=flaky))
    assert sel.indices == (0, 2, 3)
    alone = select_kps(problem(4), strategy_spec("cbrs", repeats=1), ExactScorer(acc, by_repeat=flaky))
    assert alone.indices == (0, 1, 2)
    acc2 = unlock(critical=(0,))
    assert run("cbrs", 3, acc2).indices == (0, 2)  # 1 and 2 tie: the lower index goes


def test_strategies_without_a_scorer_say_so():
    with pytest.raises(ValueError, match="needs a scorer"):
        select_kps(problem(3), strategy_spec("css"), None)


def test_bad_parameters_are_reported():
    from knowrl import KnowrlError

    with pytest.raises(KnowrlError, match="budget"):
        strategy_spec("s_loo", budget=5)
