"""The rollout scorer: bounds, the persistent cache, adaptive stopping, and the simulator's truth."""

from __future__ import annotations

import pytest

from knowrl.generation import SamplingParams
from knowrl.grading import Grader
from knowrl.kp import RolloutScorer, ScoringConfig, hoeffding, select_kps, strategy_spec, wilson
from knowrl.kp._simulator import SimGenerator, make_problems


@pytest.fixture(scope="module")
def grader():
    g = Grader(workers=1)
    yield g
    g.close()


def test_bounds():
    lo, hi = wilson(8, 8, 0.8)
    assert hi == 1.0 and lo == pytest.approx(8 / (8 + 1.2815515655446004**2), abs=1e-9)
    assert wilson(0, 0, 0.9) == (0.0, 1.0)
    lo, hi = hoeffding(5, 10, 0.9)
    assert (lo, hi) == (pytest.approx(0.5 - 0.3870, abs=1e-3), pytest.approx(0.5 + 0.3870, abs=1e-3))


def scorer(problems, grader, tmp_path=None, **cfg):
    return RolloutScorer(SimGenerator(problems), grader, ScoringConfig(**cfg), SamplingParams(), cache_dir=tmp_path)


def test_same_trial_same_outcome_and_the_cache_persists(grader, tmp_path):
    probs = make_problems(5, seed=1)
    p = next(x for x in probs if x.p_unlocked < 1.0 or x.critical)
    a = scorer(probs, grader, tmp_path, rollouts_per_subset=16)
    full = tuple(range(len(p.problem.kps)))
    first = a.accuracies(p.problem, [full, ()])
    assert a.spent[p.problem.id] == 32
    again = a.accuracies(p.problem, [full, ()])
    assert again == first and a.spent[p.problem.id] == 32  # cached: no new rollouts
    b = scorer(probs, grader, tmp_path, rollouts_per_subset=16)  # a new run re-reads the cache file
    assert b.accuracies(p.problem, [full, ()]) == first and b.spent.get(p.problem.id, 0) == 0
    c = scorer(probs, grader, None, rollouts_per_subset=16)  # no cache file: the same seeds give the same draws
    assert c.accuracies(p.problem, [full, ()]) == first and c.spent[p.problem.id] == 32


def test_torn_cache_lines_are_ignored(grader, tmp_path):
    probs = make_problems(3, seed=2)
    a = scorer(probs, grader, tmp_path)
    a.accuracies(probs[0].problem, [()])
    path = next(tmp_path.iterdir())
    path.write_text(path.read_text() + '{"p": "sim0", "s": [')
    b = scorer(probs, grader, tmp_path)
    b.accuracies(probs[0].problem, [()])
    assert b.spent.get("sim0", 0) == 0


def test_adaptive_decisions_stop_early_on_clear_cases(grader):
    probs = make_problems(40, seed=3)
    p = next(x for x in probs if x.critical and x.p_locked < 0.05)
    s = scorer(probs, grader, adaptive=True, batch=2, confidence=0.8)
    full = tuple(range(len(p.problem.kps)))
    without_critical = tuple(i for i in full if i != p.critical[0])
    assert s.at_least(p.problem, [(without_critical, 0.8)]) == [False]
    assert s.spent[p.problem.id] <= 4  # a collapse is obvious after a couple of rollouts
    fixed = scorer(probs, grader, adaptive=False)
    assert fixed.at_least(p.problem, [(without_critical, 0.8)]) == [False]
    assert fixed.spent[p.problem.id] == 8


def test_without_reuse_every_question_draws_new_rollouts(grader):
    probs = make_problems(3, seed=4)
    s = RolloutScorer(SimGenerator(probs), grader, ScoringConfig(adaptive=False), SamplingParams(), reuse=False)
    s.accuracies(probs[0].problem, [()])
    s.accuracies(probs[0].problem, [()])
    assert s.spent["sim0"] == 16


def test_simulator_truth_and_strategies_through_the_real_scorer(grader):
    probs = make_problems(60, seed=5)
    s = scorer(probs, grader)
    regrets = []
    for sp in probs:
        sel = select_kps(sp.problem, strategy_spec("css"), s)
        regrets.append(sp.best_minimal()[1] - sp.accuracy(sel.indices))
        assert not sp.fooled(sel.indices)
    assert sum(regrets) / len(regrets) < 0.05
    solved = [sp for sp in probs if sp.p_locked == 1.0]
    assert solved and all(select_kps(sp.problem, strategy_spec("css"), s).indices == () for sp in solved)


def test_comparisons_share_the_reference_and_screen_questions_stop_early(grader):
    probs = make_problems(40, seed=6)
    p = next(x for x in probs if x.p_locked == 1.0 and len(x.problem.kps) >= 3)  # every subset: accuracy 1
    full = tuple(range(len(p.problem.kps)))
    loo = [tuple(i for i in full if i != k) for k in full]
    s = scorer(probs, grader, rollouts_per_subset=8, batch=2, screen=2)
    assert s.not_worse(p.problem, loo, full, screen=True) == [True] * len(full)
    assert s.spent[p.problem.id] == 8 + 2 * len(full)  # the reference once, each screen question one batch
    assert s.not_worse(p.problem, loo[:1], full) == [True]
    # a full question needs lo >= 1 - margin: 6 correct rollouts at confidence 0.8; the reference is not redrawn
    assert s.spent[p.problem.id] == 8 + 2 * len(full) + 4


def test_a_strict_pass_implies_a_lenient_one(grader):
    probs = make_problems(60, seed=7)
    lenient_only = 0
    for sp in probs:
        full = tuple(range(len(sp.problem.kps)))
        loo = [tuple(i for i in full if i != k) for k in full]
        s = scorer(probs, grader)
        hard = s.not_worse(sp.problem, loo, full, strict=True)
        easy = s.not_worse(sp.problem, loo, full)  # the same trials, from the cache
        assert all(b for a, b in zip(hard, easy, strict=True) if a)
        lenient_only += sum(b and not a for a, b in zip(hard, easy, strict=True))
    assert lenient_only > 0  # strictness matters on this simulator


class LoggedGenerator(SimGenerator):
    """The simulator, noting each call's (sampling, n) and the problems its prompts are for."""

    def __init__(self, problems):
        super().__init__(problems)
        self.log = []

    def generate(self, prompts, params, n, seeds):
        self.log.append(((params, n), {m[-1]["content"].split("\n\n", 1)[0] for m in prompts}))
        return super().generate(prompts, params, n, seeds)


def lockstep_calls(order: list[str], calls_of: dict[str, list], lanes: int) -> int:
    """Merged calls when `lanes` problems are always in flight and every round serves all of them:
    one call per distinct (sampling, n) among the lanes' next requests; a lane whose problem is done
    takes the next problem at once."""
    from collections import deque

    queue = iter(order)

    def take():
        return next((deque(calls_of[p]) for p in queue if calls_of[p]), None)

    running, merged = [lane for lane in (take() for _ in range(lanes)) if lane], 0
    while running:
        merged += len({lane.popleft() for lane in running})
        running = [lane for lane in (lane or take() for lane in running) if lane]
    return merged


def test_concurrent_problems_share_generate_calls_and_select_the_same(grader, tmp_path):
    import json

    from knowrl.kp import select_dataset

    probs = make_problems(40, seed=8)
    results, gens = {}, {}
    for k in (1, 8):
        gen = gens[k] = LoggedGenerator(probs)
        hints = strategy_spec("css", concurrency=k)
        s = RolloutScorer(gen, grader, ScoringConfig.from_spec(hints), SamplingParams())
        out = tmp_path / f"sel-{k}.jsonl"
        assert select_dataset([sp.problem for sp in probs], hints, s, out) == 40
        results[k] = {r["id"]: (r["css_kept_kp_index"], r["css_rollouts"]) for r in map(json.loads, out.open())}
        assert s.generator is gen  # the broker is gone afterwards
    assert results[8] == results[1]  # rollouts are seeded per sample: merging changes nothing
    calls_of = {sp.problem.problem: [] for sp in probs}
    for key, (text,) in gens[1].log:  # one problem at a time: each call is one problem's
        calls_of[text].append(key)
    # Every round waits for all 8 problems in flight, and a finished problem's thread starts the next one
    # before the others can go on without it: the merged calls are exactly the lockstep count however the
    # threads are scheduled (a loaded machine once let rounds run short and made 56 calls of 217, not ~30).
    expected = lockstep_calls([sp.problem.problem for sp in probs], calls_of, 8)
    assert gens[8].calls == expected
    assert expected * 4 < gens[1].calls


def test_a_failing_engine_reaches_every_waiting_problem(grader, tmp_path):
    from knowrl.kp import select_dataset

    class Broken(SimGenerator):
        def generate(self, *a, **k):
            raise RuntimeError("engine died")

    probs = make_problems(12, seed=9)
    hints = strategy_spec("css", concurrency=4)
    s = RolloutScorer(Broken(probs), grader, ScoringConfig.from_spec(hints), SamplingParams())
    with pytest.raises(RuntimeError, match="engine died"):
        select_dataset([sp.problem for sp in probs], hints, s, tmp_path / "sel.jsonl")


def test_an_interrupted_concurrent_selection_stops_its_threads(grader, tmp_path):
    from knowrl.kp import select_dataset

    probs = make_problems(40, seed=10)
    gen = SimGenerator(probs)
    hints = strategy_spec("css", concurrency=4)
    s = RolloutScorer(gen, grader, ScoringConfig.from_spec(hints), SamplingParams())
    at_interrupt = []

    def ctrl_c(problem, sel):
        at_interrupt.append(gen.calls)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        select_dataset([sp.problem for sp in probs], hints, s, tmp_path / "sel.jsonl", progress=ctrl_c)
    assert gen.calls <= at_interrupt[0] + 1  # at most the merged call already under way; no problem went on
    assert len((tmp_path / "sel.jsonl").read_text().splitlines()) == 1  # what finished is kept


def test_best_races_the_two_leaders_until_their_intervals_part(grader):
    probs = make_problems(40, seed=8)
    p = next(x for x in probs if x.critical and x.p_locked < 0.05 and len(x.problem.kps) >= 3)
    full = tuple(range(len(p.problem.kps)))
    spare = next(i for i in full if i not in p.critical and not any(i in pair for pair in p.pairs))
    locked = tuple(i for i in full if i != p.critical[0])
    unlocked = tuple(i for i in full if i != spare)
    s = scorer(probs, grader, max_rollouts_per_subset=32)
    with s.selecting(p.problem):
        assert s.best(p.problem, [locked, unlocked], repeat=3) == 1
    assert s.spent[p.problem.id] < 2 * 32  # a collapse parts the intervals early

    solved = next(x for x in probs if x.p_locked == 1.0 and len(x.problem.kps) >= 2)  # every subset: accuracy 1
    ties = [(0,), (1,)]
    with s.selecting(solved.problem):
        assert s.best(solved.problem, ties, repeat=3) == 0  # never parts: both run to the cap, the earlier wins
    assert s.spent[solved.problem.id] == 2 * 32
    fixed = scorer(probs, grader, adaptive=False)
    with fixed.selecting(solved.problem):
        assert fixed.best(solved.problem, ties, repeat=3) == 0 and fixed.spent.get(solved.problem.id, 0) == 0


def test_estimates_pool_only_what_the_current_selection_looked_at(grader):
    import math

    probs = make_problems(3, seed=9)
    p, full = probs[0].problem, tuple(range(len(probs[0].problem.kps)))
    s = scorer(probs, grader, rollouts_per_subset=8)
    with s.selecting(p):  # another strategy's trials
        s.accuracies(p, [full], repeat=1)
    with s.selecting(p):
        assert math.isnan(s.estimate(p, full))
        a = s.accuracies(p, [full])[0]
        assert s.estimate(p, full) == a  # trials 0-7 only, not the earlier 8-15
    assert s._seen == {}  # nothing kept once a selection ends


def test_a_strategy_selects_the_same_whatever_shares_its_cache(grader):
    probs = make_problems(120, seed=1)  # sim104 chose differently when estimates pooled CSS's trials
    alone = [select_kps(sp.problem, strategy_spec("cbrs"), scorer(probs, grader)).indices for sp in probs]
    shared = scorer(probs, grader)
    for sp in probs:
        select_kps(sp.problem, strategy_spec("css"), shared)
    after = [select_kps(sp.problem, strategy_spec("cbrs"), shared) for sp in probs]
    assert [sel.indices for sel in after] == alone
    assert sum(sel.rollouts for sel in after) < sum(  # and the cache still saves rollouts
        select_kps(sp.problem, strategy_spec("cbrs"), scorer(probs, grader)).rollouts for sp in probs
    )
